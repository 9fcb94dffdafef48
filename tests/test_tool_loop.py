"""Tool use and thinking, end to end: the model asks, the tools run, the model answers, and it all streams."""

import threading

import pytest
from channels.db import database_sync_to_async

from chat.llm import tools
from chat.models import ApiCall, Message
from test_consumer import TIMEOUT, assistant_id, connected, frames_until_final, reload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]

PART_FIELDS = {"thinking": "thinking", "tool_use": "partial_json", "tool_result": "content"}


def replay_blocks(frames: list[dict], message_id: int) -> list[dict]:
    """The blocks a client following docs/protocol.md builds from the frames it saw."""
    blocks, last_seq = [], 0
    for frame in frames:
        if frame["type"] == "message" and frame["message"]["id"] == message_id:
            blocks, last_seq = [dict(block) for block in frame["message"]["content"]], frame["message"]["seq"]
        elif frame["type"] == "delta" and frame["message"] == message_id and frame["seq"] == last_seq + 1:
            for part in frame["parts"]:
                if part["block"] == len(blocks):
                    blocks.append({key: value for key, value in part.items() if key not in ("block", "text")})
                field = PART_FIELDS.get(blocks[part["block"]]["type"], "text")
                blocks[part["block"]][field] = blocks[part["block"]].get(field, "") + part["text"]
            last_seq = frame["seq"]
    return blocks


def calls_of(message_id) -> list[ApiCall]:
    return list(ApiCall.objects.filter(message_id=message_id).order_by("id"))


async def ask(socket, text: str, **frame) -> list[dict]:
    await socket.send_json_to({"type": "send", "text": text, **frame})
    return await frames_until_final(socket)


async def test_the_calculator_answers_and_the_whole_turn_streams(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)

    frames = await ask(socket, "what is 17*23")

    message = await reload(assistant_id(frames))
    assert [block["type"] for block in message.content] == ["text", "tool_use", "tool_result", "text"]
    call, result = message.content[1], message.content[2]
    assert (call["name"], call["input"]) == ("calculator", {"expression": "17*23"})
    assert result == {"type": "tool_result", "tool_use_id": call["id"], "content": "391"}
    assert "The calculator returned 391." in message.text
    assert (message.status, message.stop_reason) == ("complete", "end_turn")
    parts = [part for frame in frames if frame["type"] == "delta" for part in frame["parts"]]
    tool_parts = [part for part in parts if part["type"] == "tool_use"]
    assert (tool_parts[0]["id"], tool_parts[0]["name"]) == (call["id"], "calculator")
    assert "".join(part["text"] for part in tool_parts) == '{"expression": "17*23"}'
    assert {"block": 2, "type": "tool_result", "text": "391", "tool_use_id": call["id"]} in parts
    streamed = replay_blocks(frames[:-1], message.pk)  # before the final `message` frame
    assert [block["type"] for block in streamed] == [block["type"] for block in message.content]
    assert streamed[2] == result and streamed[3]["text"] == message.content[3]["text"]
    rows = await database_sync_to_async(calls_of)(message.pk)
    assert [(row.stop_reason, row.status) for row in rows] == [("tool_use", "ok"), ("end_turn", "ok")]
    assert message.cost == sum(row.cost for row in rows)
    assert message.output_tokens == sum(row.output_tokens for row in rows)


async def test_two_calls_in_one_turn_run_in_one_round(socket_for, owner, conversation, offline_model_reset):
    socket = await connected(socket_for, owner, conversation)

    frames = await ask(socket, "what is 17*23 and 4+5")

    message = await reload(assistant_id(frames))
    kinds = [block["type"] for block in message.content]
    assert kinds == ["text", "tool_use", "tool_use", "tool_result", "tool_result", "text"]
    assert [block["content"] for block in message.content if block["type"] == "tool_result"] == ["391", "9"]
    assert "The calculator returned 391." in message.text and "The calculator returned 9." in message.text
    second = offline_model_reset.received[-1]["messages"]
    assert [block["type"] for block in second[-1]["content"]] == ["tool_result", "tool_result"]
    assert len(offline_model_reset.received) == 2


async def test_stop_while_a_tool_runs_leaves_a_history_the_next_turn_can_send(
    socket_for, owner, conversation, offline_model_reset, monkeypatch
):
    release = threading.Event()
    original = tools.calculate
    monkeypatch.setattr(tools, "calculate", lambda expression: release.wait(5) and original(expression))
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "what is 17*23"})
    while True:
        frame = await socket.receive_json_from(timeout=TIMEOUT)
        if frame["type"] == "delta" and any(part["type"] == "tool_use" for part in frame["parts"]):
            break

    await socket.send_json_to({"type": "stop"})
    frames = await frames_until_final(socket)
    release.set()

    stopped = await reload(frames[-1]["message"]["id"])
    assert stopped.status == Message.Status.STOPPED
    assert [block["type"] for block in stopped.content] == ["text", "tool_use"]
    follow_up = await ask(socket, "Never mind. What is a B-tree?")
    answer = await reload(assistant_id(follow_up))
    assert answer.status == Message.Status.COMPLETE, answer.error
    sent = offline_model_reset.received[-1]["messages"]
    assert [block["type"] for turn in sent for block in turn["content"]] == ["text", "text", "text"]
    rows = await database_sync_to_async(calls_of)(stopped.pk)
    assert [row.status for row in rows] == ["ok"]


async def test_the_loop_ends_with_a_notice_at_the_round_limit(socket_for, owner, conversation, settings):
    settings.CHAT_TOOL_MAX_ROUNDS = 0
    socket = await connected(socket_for, owner, conversation)

    frames = await ask(socket, "what is 2+2")

    message = await reload(assistant_id(frames))
    assert message.status == "complete" and message.stop_reason == "tool_use"
    assert "after 0 rounds of tool calls" in message.notices[0]
    assert frames[-1]["message"]["notices"] == message.notices
    follow_up = await ask(socket, "Fine, what is a B-tree?")
    assert follow_up[-1]["message"]["status"] == "complete"


async def test_thinking_is_kept_exactly_and_passed_back_within_the_tool_loop(
    socket_for, owner, conversation, offline_model_reset
):
    conversation.thinking = "low"
    await database_sync_to_async(conversation.save)()
    socket = await connected(socket_for, owner, conversation)

    frames = await ask(socket, "what is 17*23")

    message = await reload(assistant_id(frames))
    first, second = offline_model_reset.received
    assert first["thinking"] == {"type": "adaptive"} and first["output_config"] == {"effort": "low"}
    assert first["max_tokens"] == 4096 + 2048
    thinking = message.content[0]
    assert thinking["type"] == "thinking" and thinking["signature"]
    assert second["messages"][1]["role"] == "assistant"
    assert second["messages"][1]["content"][0] == thinking
    assert [block["type"] for block in message.content] == [
        "thinking", "text", "tool_use", "tool_result", "thinking", "text",
    ]
    streamed = replay_blocks(frames, message.pk)
    assert streamed[0]["thinking"] == thinking["thinking"]


async def test_models_that_take_a_budget_get_one(socket_for, owner, conversation, offline_model_reset):
    conversation.thinking = "medium"
    await database_sync_to_async(conversation.save)()
    socket = await connected(socket_for, owner, conversation)

    await ask(socket, "Think about B-trees", model="claude-haiku-4-5")

    request = offline_model_reset.received[-1]
    assert request["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert request["max_tokens"] == 4096 + 8192 and "output_config" not in request
