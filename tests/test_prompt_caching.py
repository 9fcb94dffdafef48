"""Prompt caching: the system prompt and the growing conversation are read from the cache from the second turn."""

import json
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async

from chat.llm.catalog import model_spec
from chat.models import ApiCall
from test_consumer import TIMEOUT, assistant_id, connected, frames_until_final, reload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]

LONG_SYSTEM_PROMPT = "You are a patient tutor for database internals. Explain with small examples. " * 60


def segments(request: dict) -> list[str]:
    """The prompt as the API caches it: tools, system blocks, then every message's blocks, each as canonical
    JSON without its cache_control; a breakpoint ends the prefix at its block."""
    blocks = [("tool", tool) for tool in request.get("tools", [])]
    blocks += [("system", block) for block in request.get("system", [])]
    blocks += [(message["role"], block) for message in request["messages"] for block in message["content"]]
    return [
        json.dumps([place, {k: v for k, v in block.items() if k != "cache_control"}], sort_keys=True)
        for place, block in blocks
    ]


def breakpoints(request: dict) -> list[int]:
    blocks = [*request.get("tools", []), *request.get("system", [])]
    blocks += [block for message in request["messages"] for block in message["content"]]
    return [index for index, block in enumerate(blocks) if "cache_control" in block]


async def with_system_prompt(conversation, prompt=LONG_SYSTEM_PROMPT):
    conversation.system_prompt = prompt
    await database_sync_to_async(conversation.save)()


async def test_the_system_prompt_is_a_cached_block_after_the_tools(
    socket_for, owner, conversation, offline_model_reset
):
    await with_system_prompt(conversation, "Be brief.")
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Hello"})
    await frames_until_final(socket)

    request = offline_model_reset.received[0]

    assert request["system"] == [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    assert "cache_control" in request["tools"][-1]
    assert request["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert len(breakpoints(request)) == 3


async def test_two_consecutive_turns_share_a_byte_identical_prefix(
    socket_for, owner, conversation, offline_model_reset
):
    await with_system_prompt(conversation)
    socket = await connected(socket_for, owner, conversation)
    for text in ("What is a B-tree?", "And a B+ tree?"):
        await socket.send_json_to({"type": "send", "text": text})
        await frames_until_final(socket)

    first, second = offline_model_reset.received
    cached_prefix = breakpoints(first)[-1] + 1

    assert segments(second)[:cached_prefix] == segments(first)[:cached_prefix]
    assert len(segments(second)) == cached_prefix + 2  # the first reply, then the new question


async def test_ten_turns_read_the_cache_from_the_second_and_cost_far_less_than_uncached(
    socket_for, owner, conversation
):
    await with_system_prompt(conversation)
    socket = await connected(socket_for, owner, conversation)
    replies = []
    for turn in range(1, 11):
        await socket.send_json_to({"type": "send", "text": f"Question {turn}: how do indexes help?"})
        replies.append(assistant_id(await frames_until_final(socket)))

    calls = await database_sync_to_async(lambda: list(ApiCall.objects.order_by("id")))()
    assert [call.message_id for call in calls] == replies
    assert calls[0].cache_read_input_tokens == 0 and calls[0].cache_creation_5m_input_tokens > 1000
    assert all(call.cache_read_input_tokens > 1000 for call in calls[1:])
    price = model_spec(conversation.model).prices.input / Decimal(1_000_000)
    uncached = sum(
        (c.input_tokens + c.cache_read_input_tokens + c.cache_creation_input_tokens) * price for c in calls
    )
    cached = sum(
        c.input_tokens * price + c.cache_read_input_tokens * price * Decimal("0.1")
        + c.cache_creation_5m_input_tokens * price * Decimal("1.25")
        for c in calls
    )
    assert cached < uncached * Decimal("0.35"), (cached, uncached)
    input_cost_on_the_ledger = sum(c.cost for c in calls) - sum(
        c.output_tokens * model_spec(c.model).prices.output / Decimal(1_000_000) for c in calls
    )
    assert abs(input_cost_on_the_ledger - cached) < Decimal("0.0001")


async def test_a_reply_served_from_the_cache_says_so(socket_for, owner, conversation):
    await with_system_prompt(conversation)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "First"})
    first = (await frames_until_final(socket))[-1]["message"]
    await socket.send_json_to({"type": "send", "text": "Second"})
    second = (await frames_until_final(socket))[-1]["message"]

    assert first["usage"]["cache_read_input_tokens"] == 0
    assert second["usage"]["cache_read_input_tokens"] > 1000
    stored = await reload(second["id"])
    assert stored.cache_read_input_tokens == second["usage"]["cache_read_input_tokens"]


async def test_switching_back_to_an_older_branch_reads_what_that_branch_cached(
    socket_for, owner, conversation, offline_model_reset
):
    await with_system_prompt(conversation)
    socket = await connected(socket_for, owner, conversation)

    async def ask(frame: dict) -> dict:
        await socket.send_json_to(frame)
        return (await frames_until_final(socket))[-1]["message"]

    first = await ask({"type": "send", "text": "What is a B-tree?"})
    deeper = await ask({"type": "send", "text": "And a B+ tree?"})
    older_branch = offline_model_reset.received[-1]
    await ask({"type": "regenerate", "message": first["id"]})
    await ask({"type": "send", "text": "And an LSM tree?"})  # the new branch writes its own prefix
    await socket.send_json_to({"type": "switch", "message": first["id"]})
    assert (await socket.receive_json_from(timeout=TIMEOUT))["type"] == "tree"

    back = await ask({"type": "send", "text": "And a trie?"})

    request = offline_model_reset.received[-1]
    assert segments(request)[: len(segments(older_branch))] == segments(older_branch)
    # The older branch's last request was cached up to its last block: the send after switching back reads it all.
    assert back["usage"]["cache_read_input_tokens"] == sum(deeper["usage"][kind] for kind in (
        "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"
    ))
