"""Reads, always scoped to the user who asks."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from chat.models import Conversation, Message


def conversation_for_user(user, conversation_id) -> Conversation:
    """The conversation if `user` owns it, else 404: the one door to a conversation and what hangs off it."""
    return get_object_or_404(Conversation, pk=conversation_id, owner=user)


def conversations_for_user(user) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner=user).only("id", "title", "updated_at")


def conversation_messages(conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.all()


def streaming_message(conversation_id: int) -> Message | None:
    return Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING).first()


def message_in_conversation(conversation: Conversation, message_id: int) -> Message | None:
    return conversation.messages.filter(pk=message_id).first()
