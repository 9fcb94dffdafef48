"""A path of one conversation copied into a new one: "fork from here", and a share viewer's "continue in my own
chats" (shares/views.py). The new conversation is its owner's from its first message: what is sent in it from
then on is billed to them."""

from django.db import transaction

from chat import citations, services
from chat.attachments.services import attachments_copy
from chat.llm.tools import context_results_withheld
from chat.models import Conversation, Message

# What a copy of a message keeps: everything that says what it is, nothing that says who paid for it (its
# usage and cost stay zero: the ledger keeps the originals' rows, with the original messages) or which process
# wrote it.
COPIED_FIELDS = (
    "role", "status", "error", "stop_reason", "model", "seq", "route_reason", "notices", "first_token_ms",
    "duration_ms", "context_tokens", "context_window",
)


def path_settled(messages: list[Message]) -> list[Message]:
    """The path without a reply still being written (always its last message): a fork never copies half a
    reply that the original goes on writing."""
    return [message for message in messages if message.status != Message.Status.STREAMING]


def conversation_fork(*, messages: list[Message], owner, title: str) -> Conversation:
    """A new conversation of `owner` holding copies of `messages` (a path, root to leaf, none streaming), each
    the child of the copy before it, with the last copy as its current leaf.

    The model and thinking level come from the source conversation; its system prompt and project only when
    `owner` owns it, since they are the owner's (another user's fork starts from their own default system
    prompt, and without the results of the tools that read the owner's data: `context_results_withheld`).
    Attachments are new rows of `owner` naming the same stored files (`attachments_copy`), and each copy's
    content refers to its own rows. The caller passes messages with their attachments prefetched
    (`chat.selectors.active_path` does).

    The copies are one INSERT (bulk_create hands back their ids on PostgreSQL and SQLite 3.35 or later), then
    one UPDATE for their parents; a copy with attachments adds one INSERT for its attachment rows, and those
    copies one UPDATE together for the attachment ids in their content.
    """
    source = messages[0].conversation if messages else None
    foreign = source is not None and source.owner_id != owner.pk
    with transaction.atomic():
        fork = services.conversation_create(owner=owner)
        fork.title = title[: Conversation._meta.get_field("title").max_length]
        if source is not None:
            fork.model, fork.thinking = source.model, source.thinking
            if not foreign:
                fork.system_prompt, fork.project_id = source.system_prompt, source.project_id
        copies = Message.objects.bulk_create(
            Message(
                conversation=fork,
                content=context_results_withheld(message.content) if foreign else message.content,
                **{field: getattr(message, field) for field in COPIED_FIELDS},
            )
            for message in messages
        )
        parent, with_attachments, copied_ids = None, [], {}
        for message, copy in zip(messages, copies):
            copy.parent = parent
            attachments = list(message.attachments.all())
            if attachments:
                copied = attachments_copy(attachments=attachments, message=copy, owner=owner)
                copy.content = [_referring_to(block, copied) for block in copy.content]
                copied_ids.update((original, row.pk) for original, row in copied.items())
                with_attachments.append(copy)
            parent = copy
        # The replies' citations name the copies too (chat/citations.py); another user's fork links to no
        # attachment that stayed its owner's (a project file).
        for copy in copies:
            moved = citations.citations_moved(copy.content, copied_ids, keep_others=not foreign)
            if moved is not None:
                copy.content = moved
                with_attachments.append(copy)
        Message.objects.bulk_update(copies, ["parent"])
        Message.objects.bulk_update(with_attachments, ["content"])
        fork.current_leaf = parent
        fork.save()
    return fork


def _referring_to(block: dict, copies: dict) -> dict:
    """A content block naming the copy of its attachment instead of the original."""
    if block.get("attachment_id") in copies:
        return {**block, "attachment_id": copies[block["attachment_id"]].pk}
    return block
