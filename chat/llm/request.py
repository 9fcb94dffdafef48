"""Builds the Messages API request for the next reply in a conversation.

Prompt caching: the system prompt and the latest user turn carry `cache_control`, so the cached prefix
grows with the conversation and each turn reads everything before it from the cache; PDF documents get
breakpoints too, newest first, while the API's limit of four allows. Nothing volatile
(timestamps, ids) is ever placed in the request, so two turns share a byte-identical prefix.
"""

from django.conf import settings

from chat.attachments.blocks import content_block
from chat.llm.catalog import model_spec
from chat.models import Conversation, Message

EPHEMERAL = {"type": "ephemeral"}
MAX_CACHE_BREAKPOINTS = 4


def _api_blocks(message: Message) -> list[dict]:
    """The message's blocks as the API accepts them: attachment references expanded into image and document
    blocks from the stored files, no empty text blocks, no stale cache markers."""
    attachments = {attachment.pk: attachment for attachment in message.attachments.all()}
    blocks = []
    for block in message.content:
        if block.get("type") == "text" and not block.get("text", "").strip():
            continue
        if block.get("type") == "attachment":
            if block.get("attachment_id") in attachments:
                blocks.append(content_block(attachments[block["attachment_id"]]))
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
    for message in history.exclude(status=Message.Status.STREAMING).prefetch_related("attachments"):
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
    _cache_documents(request)
    return request


def _cache_documents(request: dict) -> None:
    """Give the newest PDF documents breakpoints of their own, with whatever the API's four leave free.

    Documents are the biggest blocks and the ones asked about again; their own breakpoint keeps them readable
    from the cache when the turn's breakpoint has moved on by more than the API's 20-block lookback.
    """
    blocks = [*request.get("tools", []), *request.get("system", [])]
    blocks += [block for message in request["messages"] for block in message["content"]]
    free = MAX_CACHE_BREAKPOINTS - sum("cache_control" in block for block in blocks)
    for block in reversed(blocks):
        if free <= 0:
            return
        if block.get("type") == "document" and "cache_control" not in block:
            block["cache_control"] = EPHEMERAL
            free -= 1
