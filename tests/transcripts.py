"""Messages stored by hand, as turns store them: each at the end of the conversation's active path."""

from chat.models import Conversation, Message


def message_appended(conversation: Conversation, *, role: str, text: str | None = None, **fields) -> Message:
    """A message answering the conversation's current leaf, which it becomes (chat/services.py `turn_start`).
    `text` is its one text block; other `fields` go to the row as they are."""
    if text is not None:
        fields["content"] = [{"type": "text", "text": text}]
    message = Message.objects.create(
        conversation=conversation, parent_id=conversation.current_leaf_id, role=role, **fields
    )
    conversation.current_leaf = message
    conversation.save(update_fields=["current_leaf"])
    return message
