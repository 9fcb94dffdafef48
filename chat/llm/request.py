"""Builds the Messages API request for the next reply in a conversation.

Prompt caching: the system prompt and the latest user turn carry `cache_control`, so the cached prefix
grows with the conversation and each turn reads everything before it from the cache. Nothing volatile
(timestamps, ids) is ever placed in the request, so two turns share a byte-identical prefix.
"""

from django.conf import settings

from chat.llm.catalog import model_spec
from chat.models import Conversation, Message

EPHEMERAL = {"type": "ephemeral"}


def _api_blocks(message: Message) -> list[dict]:
    """The message's blocks as the API accepts them: no empty text blocks, no stale cache markers."""
    blocks = []
    for block in message.content:
        if block.get("type") == "text" and not block.get("text", "").strip():
            continue
        blocks.append({key: value for key, value in block.items() if key != "cache_control"})
    return blocks


def history_messages(conversation: Conversation, *, before: Message) -> list[dict]:
    """Alternating user/assistant turns up to `before`.

    Replies that were stopped, failed or interrupted keep what they said; a reply that said nothing is left
    out, and the user turns around it are merged so roles still alternate.
    """
    turns: list[dict] = []
    history = conversation.messages.filter(created_at__lte=before.created_at).exclude(pk=before.pk)
    for message in history.exclude(status=Message.Status.STREAMING):
        blocks = _api_blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": message.role, "content": blocks})
    while turns and turns[-1]["role"] == "assistant":
        turns.pop()
    return turns


def request_build(conversation: Conversation, *, reply: Message) -> dict:
    """Keyword arguments for `client.messages.stream(...)` that produce `reply`."""
    spec = model_spec(conversation.model)
    messages = history_messages(conversation, before=reply)
    if messages:
        messages[-1]["content"][-1] = {**messages[-1]["content"][-1], "cache_control": EPHEMERAL}
    request = {
        "model": conversation.model,
        "max_tokens": min(settings.CHAT_MAX_OUTPUT_TOKENS, spec.max_output),
        "messages": messages,
    }
    if conversation.system_prompt.strip():
        request["system"] = [{"type": "text", "text": conversation.system_prompt, "cache_control": EPHEMERAL}]
    return request
