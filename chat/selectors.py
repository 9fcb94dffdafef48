"""Reads, always scoped to the user who asks."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from chat.models import Attachment, Conversation, Message


def conversation_for_user(user, conversation_id) -> Conversation:
    """The conversation if `user` owns it, else 404: the one door to a conversation and what hangs off it."""
    return get_object_or_404(Conversation, pk=conversation_id, owner=user)


def conversations_for_user(user) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner=user).only("id", "title", "updated_at")


def conversation_messages(conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.prefetch_related("attachments")


def streaming_message(conversation_id: int) -> Message | None:
    return Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING).first()


def message_in_conversation(conversation: Conversation, message_id: int) -> Message | None:
    return conversation.messages.filter(pk=message_id).first()


def attachment_for_user(user, attachment_id) -> Attachment:
    """The attachment if `user` uploaded it, else 404: the door every view of an attachment goes through.

    Claims are scoped to the owner the same way, in bulk (`attachments_for_turn`).
    """
    return get_object_or_404(Attachment, pk=attachment_id, owner=user)
