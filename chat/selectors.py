"""Reads, always scoped to the user who asks."""

from dataclasses import dataclass
from functools import cached_property

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from chat.models import Attachment, Conversation, Message, ToolSetting


def conversation_for_user(user, conversation_id) -> Conversation:
    """The conversation if `user` owns it, else 404: the one door to a conversation and what hangs off it."""
    return get_object_or_404(Conversation, pk=conversation_id, owner=user)


def conversations_for_user(user) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner=user).only("id", "title", "updated_at")


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


def messages_matching(
    user_id: int, query: str, *, exclude_conversation_id: int, limit: int, scanned: int
) -> list[Message]:
    """The user's newest messages whose text contains `query` (case-insensitive), outside one conversation.

    Only `user_id`'s own conversations are read. Matching happens here rather than in SQL because messages are
    JSON blocks whose text the databases escape differently; `scanned` bounds the work to the newest messages.
    """
    needle = query.casefold()
    recent = (
        Message.objects.filter(conversation__owner_id=user_id)
        .exclude(conversation_id=exclude_conversation_id)
        .exclude(status=Message.Status.STREAMING)
        .select_related("conversation")
        .order_by("-id")[:scanned]
    )
    return [message for message in recent if needle in message.text.casefold()][:limit]


def tool_names_enabled(names) -> list[str]:
    """`names` minus the tools an admin switched off (no row: on)."""
    disabled = set(ToolSetting.objects.filter(enabled=False).values_list("name", flat=True))
    return [name for name in names if name not in disabled]
