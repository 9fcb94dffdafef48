"""The context budget: requests are measured before they are sent, history is left out whole, and a reply cut
by max_tokens can be continued."""

import dataclasses

import httpx2
import pytest
from anthropic import AsyncAnthropic
from channels.db import database_sync_to_async

from chat import services
from chat.llm.catalog import MODELS_BY_ID
from chat.llm.offline import offline_transport
from chat.llm.request import RequestParts, request_assemble
from chat.models import ApiCall, Message
from test_consumer import TIMEOUT, connected, frames_until_final, reload
from transcripts import message_appended

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]


async def ask(socket, frame: dict) -> dict:
    """The final state of the reply the frame starts."""
    await socket.send_json_to(frame)
    return (await frames_until_final(socket))[-1]["message"]


async def counted(request: dict) -> int:
    client = AsyncAnthropic(
        api_key="offline", base_url="http://offline-model.invalid",
        http_client=httpx2.AsyncClient(transport=offline_transport()),
    )
    try:
        fields = {key: request[key] for key in ("model", "messages", "system", "tools") if key in request}
        return (await client.messages.count_tokens(**fields)).input_tokens
    finally:
        await client.close()


def texts(request: dict) -> list[str]:
    return [block.get("text") or block["type"] for turn in request["messages"] for block in turn["content"]]


async def test_the_oldest_exchange_is_left_out_whole_and_the_transcript_says_so(
    socket_for, owner, conversation, settings, offline_model_reset
):
    socket = await connected(socket_for, owner, conversation)
    await ask(socket, {"type": "send", "text": "Tell me about B-trees."})
    await ask(socket, {"type": "send", "text": "what is 17*23"})
    full = await ask(socket, {"type": "send", "text": "And B+ trees?"})
    needed = full["context"]["tokens"] - full["usage"]["output_tokens"]
    settings.CHAT_MAX_CONTEXT_TOKENS = needed + settings.CHAT_MAX_OUTPUT_TOKENS - 20

    again = await ask(socket, {"type": "regenerate"})

    sent = offline_model_reset.received[-1]
    assert texts(sent)[0] == "what is 17*23" and "Tell me about B-trees." not in texts(sent)
    assert texts(sent)[1:4] == ["Let me use the `calculator` tool.", "tool_use", "tool_result"]
    assert again["status"] == "complete"
    assert again["notices"] == ["2 earlier messages were left out to fit the model's context window."]
    assert again["context"]["window"] == settings.CHAT_MAX_CONTEXT_TOKENS


async def test_a_tool_exchange_is_never_split(socket_for, owner, conversation, settings, offline_model_reset):
    socket = await connected(socket_for, owner, conversation)
    await ask(socket, {"type": "send", "text": "what is 17*23 and 4+5"})
    await ask(socket, {"type": "send", "text": "Thanks!"})
    latest = offline_model_reset.received[-1]
    alone = await counted({**latest, "messages": latest["messages"][-1:]})
    settings.CHAT_MAX_CONTEXT_TOKENS = alone + settings.CHAT_MAX_OUTPUT_TOKENS + 5

    again = await ask(socket, {"type": "regenerate"})

    assert texts(offline_model_reset.received[-1]) == ["Thanks!"]
    assert again["notices"] == ["2 earlier messages were left out to fit the model's context window."]


async def test_a_message_too_long_for_the_window_is_refused_before_it_is_sent(
    socket_for, owner, conversation, settings, offline_model_reset
):
    settings.CHAT_MAX_CONTEXT_TOKENS = settings.CHAT_MAX_OUTPUT_TOKENS + 1_000
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Read this carefully. " * 400})

    frames = await frames_until_final(socket)

    refusal = next(frame for frame in frames if frame["type"] == "error")
    assert refusal["code"] == "context_too_long" and refusal["message"] == frames[-1]["message"]["id"]
    assert "too long for the model" in refusal["detail"]
    assert frames[-1]["message"]["status"] == "failed" and frames[-1]["message"]["error"] == refusal["detail"]
    assert list(offline_model_reset.received) == []
    assert await database_sync_to_async(ApiCall.objects.count)() == 0
    follow_up = await ask(socket, {"type": "send", "text": "Sorry. In short: what is a B-tree?"})
    assert follow_up["status"] == "complete"
    assert follow_up["notices"] == ["2 earlier messages were left out to fit the model's context window."]


async def test_each_reply_reports_how_full_the_window_is(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)

    final = await ask(socket, {"type": "send", "text": "Hello"})

    message = await reload(final["id"])
    assert final["context"] == {"tokens": message.input_tokens + message.output_tokens, "window": 200_000}
    assert (message.context_tokens, message.context_window) == (final["context"]["tokens"], 200_000)


def test_max_tokens_is_sized_per_model_and_capped_by_the_setting(settings):
    parts = RequestParts(system="", thinking="off", tools=[], exchanges=[])
    small = dataclasses.replace(MODELS_BY_ID["claude-haiku-4-5"], max_output=1000)

    settings.CHAT_MAX_OUTPUT_TOKENS = 8192
    assert request_assemble(parts, model=small)["max_tokens"] == 1000
    assert request_assemble(parts, model=MODELS_BY_ID["claude-haiku-4-5"])["max_tokens"] == 8192
    settings.CHAT_MAX_OUTPUT_TOKENS = 500
    assert request_assemble(parts, model=small)["max_tokens"] == 500


async def test_continue_extends_the_same_message_after_max_tokens(
    socket_for, owner, conversation, settings, offline_model_reset
):
    settings.CHAT_MAX_OUTPUT_TOKENS = 20
    socket = await connected(socket_for, owner, conversation)
    cut = await ask(socket, {"type": "send", "text": "Tell me everything about B-trees", "model": "claude-haiku-4-5"})
    assert cut["stop_reason"] == "max_tokens"
    said = "".join(block.get("text", "") for block in cut["content"])
    conversation.thinking = "high"  # a prefill allows no thinking: the continuation goes without
    await database_sync_to_async(conversation.save)(update_fields=["thinking"])

    await socket.send_json_to({"type": "continue", "message": cut["id"]})
    frames = await frames_until_final(socket)

    reopened = frames[0]["message"]
    assert (reopened["id"], reopened["status"], reopened["seq"]) == (cut["id"], "streaming", cut["seq"])
    deltas = [frame["seq"] for frame in frames if frame["type"] == "delta"]
    assert deltas and deltas[0] == cut["seq"] + 1
    final = frames[-1]["message"]
    assert final["id"] == cut["id"] and final["status"] == "complete"
    text = "".join(block.get("text", "") for block in final["content"] if block["type"] == "text")
    assert text.startswith(said.rstrip()) and len(text) > len(said)
    prefill = offline_model_reset.received[-1]
    assert prefill["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": said.rstrip(),
                                                                         "cache_control": {"type": "ephemeral"}}]}
    assert "thinking" not in prefill
    calls = await database_sync_to_async(lambda: list(ApiCall.objects.filter(message_id=cut["id"])))()
    assert len(calls) == 2 and final["usage"]["output_tokens"] == sum(call.output_tokens for call in calls)


async def test_only_a_reply_cut_by_max_tokens_can_be_continued(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    complete = await ask(socket, {"type": "send", "text": "Hello"})

    await socket.send_json_to({"type": "continue", "message": complete["id"]})
    refusal = await socket.receive_json_from(timeout=TIMEOUT)

    assert (refusal["type"], refusal["code"]) == ("error", "cannot_continue")
    assert (await reload(complete["id"])).status == Message.Status.COMPLETE


def test_continuing_strips_the_trailing_whitespace_the_api_refuses(conversation):
    message_appended(conversation, role="user", text="Go")
    cut = message_appended(
        conversation, role="assistant", stop_reason="max_tokens",
        content=[{"type": "text", "text": "The quick brown \n "}],
    )

    reopened = services.message_continue_start(message=cut)

    assert reopened.content == [{"type": "text", "text": "The quick brown"}]
    assert Message.objects.get(pk=cut.pk).status == Message.Status.STREAMING
