"""Reads, always scoped to the user who asks."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from chat.models import Attachment, Conversation, Message, ToolSetting


def conversation_for_user(user, conversation_id) -> Conversation:
    """The conversation if `user` owns it, else 404: the one door to a conversation and what hangs off it."""
    return get_object_or_404(Conversation, pk=conversation_id, owner=user)


def conversations_for_user(user) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner=user).only("id", "title", "updated_at")


def conversation_messages(conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.prefetch_related("attachments")


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


def last_user_message(conversation: Conversation) -> Message | None:
    """The message that regenerate answers again and edit may change."""
    return conversation.messages.filter(role=Message.Role.USER).last()


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
