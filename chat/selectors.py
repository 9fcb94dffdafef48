"""Reads, always scoped to the user who asks."""

from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Exists, OuterRef, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from chat.models import Attachment, Conversation, Message, ToolSetting


def conversation_for_user(user, conversation_id) -> Conversation:
    """The conversation if `user` owns it, else 404: the one door to a conversation and what hangs off it."""
    return get_object_or_404(Conversation, pk=conversation_id, owner=user)


def conversations_for_user(user) -> QuerySet[Conversation]:
    """The user's conversations in the sidebar (not archived), most recently active first (index
    conversation_sidebar)."""
    return Conversation.objects.filter(owner=user, archived_at__isnull=True).only(
        "id", "title", "updated_at", "pinned_at"
    )


def conversation_unwritten_locked(user, conversation_id: int) -> Conversation | None:
    """The user's conversation `conversation_id` if it is still a blank new chat (no messages, not archived,
    in no project), its row locked until the transaction ends; else None, also for another user's id. What a
    new chat page's retried first message reuses (chat/views.py `conversation_create_view`)."""
    return (
        conversations_for_user(user)
        .select_for_update()
        .filter(
            ~Exists(Message.objects.filter(conversation=OuterRef("pk"))), pk=conversation_id, project=None
        )
        .only("id", "title", "updated_at", "pinned_at", "model")
        .first()
    )


def conversations_archived(user) -> QuerySet[Conversation]:
    """The user's archived conversations, most recently archived first (index conversation_archived)."""
    return Conversation.objects.filter(owner=user, archived_at__isnull=False).order_by("-archived_at", "-id").only(
        "id", "title", "updated_at", "archived_at"
    )


@dataclass(frozen=True)
class SidebarGroup:
    label: str
    conversations: list[Conversation]


def sidebar_groups(conversations, *, time_zone: str, now: datetime | None = None) -> list[SidebarGroup]:
    """`conversations` (newest activity first, as `conversations_for_user` reads them in one query) under the
    sidebar's headings: Pinned (newest pin first), Today, Yesterday, Previous 7 days, Previous 30 days, then one
    per month ("November 2026"), by calendar day in the user's time zone. Empty groups are left out."""
    zone = _zone(time_zone)
    today = (now or timezone.now()).astimezone(zone).date()
    pinned = sorted((c for c in conversations if c.pinned_at), key=lambda c: c.pinned_at, reverse=True)
    groups = [SidebarGroup("Pinned", pinned)] if pinned else []
    for conversation in conversations:
        if conversation.pinned_at:
            continue
        label = _day_label(conversation.updated_at.astimezone(zone).date(), today)
        if not groups or groups[-1].label != label:
            groups.append(SidebarGroup(label, []))
        groups[-1].conversations.append(conversation)
    return groups


def _day_label(day: date, today: date) -> str:
    days = (today - day).days
    if days <= 0:
        return "Today"  # a clock a little ahead of the database's is still today
    if days == 1:
        return "Yesterday"
    if days <= 7:
        return "Previous 7 days"
    if days <= 30:
        return "Previous 30 days"
    return f"{day:%B %Y}"


def _zone(name: str) -> ZoneInfo:
    """The user's time zone; UTC for a name this system does not know (the settings form only offers known
    ones, but a zone can disappear from the tz database)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def conversation_messages(conversation: Conversation) -> QuerySet[Message]:
    """Every message of the conversation, every branch of it, oldest first."""
    return conversation.messages.prefetch_related("attachments")


@dataclass(frozen=True)
class Tree:
    """A conversation's shape: each message's parent, read in one query of two integer columns (never the
    content), so finding a path costs the same whatever the messages hold."""

    parents: dict[int, int | None]

    @classmethod
    def of(cls, conversation_id: int) -> "Tree":
        rows = Message.objects.filter(conversation_id=conversation_id).order_by("id").values_list("id", "parent_id")
        return cls(dict(rows))

    @cached_property
    def _children_of(self) -> dict[int | None, list[int]]:
        """Each message's children, oldest first, built once per tree: every path entry of a tree frame asks
        for its versions, so a conversation of n messages costs O(n), not O(n) per message."""
        children_of: dict[int | None, list[int]] = {}
        for child, parent in sorted(self.parents.items()):
            children_of.setdefault(parent, []).append(child)
        return children_of

    def children(self, message_id: int | None) -> list[int]:
        """The messages answering `message_id` (None: the roots), oldest first."""
        return list(self._children_of.get(message_id, ()))

    def siblings(self, message_id: int) -> list[int]:
        """The versions of a message (itself included), oldest first: what "< 2 / 3 >" counts."""
        return self.children(self.parents[message_id])

    def path_to(self, message_id: int | None) -> list[int]:
        """The ids from the root down to `message_id` (empty for None or an id not in the tree)."""
        path = []
        while message_id is not None and message_id in self.parents:
            path.append(message_id)
            message_id = self.parents[message_id]
        return path[::-1]

    def subtree(self, message_id: int) -> set[int]:
        """`message_id` and every message under it: what deleting it deletes."""
        subtree, frontier = {message_id}, [message_id]
        while frontier:
            found = self._children_of.get(frontier.pop(), [])
            subtree.update(found)
            frontier.extend(found)
        return subtree

    def newest_leaf_under(self, message_id: int) -> int:
        """The most recently written message in the subtree of `message_id`: where switching to a version
        lands. A child always has a larger id than its parent, so the largest id of a subtree is a leaf."""
        return max(self.subtree(message_id))

    def with_messages(self, *messages: Message) -> "Tree":
        """The tree once `messages` (just stored) are in it, without reading it again."""
        return Tree({**self.parents, **{message.pk: message.parent_id for message in messages}})

    def without(self, message_ids: set[int]) -> "Tree":
        """The tree once `message_ids` (a deleted subtree) are gone, without reading it again."""
        return Tree({child: parent for child, parent in self.parents.items() if child not in message_ids})


def active_path(conversation: Conversation, tree: Tree | None = None) -> list[Message]:
    """The messages the conversation shows and sends: from the root down to its current leaf, in order, with
    their attachments. Two queries (the tree, the path's rows) and one for attachments, however long."""
    return path_messages(conversation, conversation.current_leaf_id, tree)


def path_messages(conversation: Conversation, leaf_id: int | None, tree: Tree | None = None) -> list[Message]:
    """The messages from the root down to `leaf_id`, in order, with their attachments (empty when `leaf_id` is
    None or not a message of the conversation). Queries as `active_path`."""
    tree = tree or Tree.of(conversation.pk)
    return messages_in_order(conversation, tree.path_to(leaf_id))


def messages_in_order(conversation: Conversation, message_ids: list[int]) -> list[Message]:
    """The conversation's messages with these ids, in this order, with their attachments: two queries however
    many (none for no ids), and only the rows asked for, so a caller that needs a few messages of a long path
    reads those few."""
    if not message_ids:
        return []
    by_id = conversation.messages.filter(pk__in=message_ids).prefetch_related("attachments").in_bulk()
    return [by_id[message_id] for message_id in message_ids if message_id in by_id]


def streaming_message(conversation_id: int) -> Message | None:
    return Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING).first()


def streaming_message_id(conversation_id: int, message_id: int | None) -> int | None:
    """The reply streaming in the conversation: the one named, if it is that one, else any."""
    streaming = Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING)
    if message_id is not None:
        streaming = streaming.filter(pk=message_id)
    return streaming.values_list("pk", flat=True).first()


def message_in_conversation(conversation: Conversation, message_id: int) -> Message | None:
    return conversation.messages.filter(pk=message_id).first()


def attachment_for_user(user, attachment_id) -> Attachment:
    """The attachment if `user` uploaded it, else 404: the door every view of an attachment goes through.

    Claims are scoped to the owner the same way, in bulk (`attachments_for_turn`).
    """
    return get_object_or_404(Attachment, pk=attachment_id, owner=user)


def tool_names_enabled(names) -> list[str]:
    """`names` minus the tools an admin switched off (no row: on)."""
    disabled = set(ToolSetting.objects.filter(enabled=False).values_list("name", flat=True))
    return [name for name in names if name not in disabled]
