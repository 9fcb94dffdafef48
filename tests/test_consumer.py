"""The turn, end to end: real websockets, the real SDK, the offline model."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async

from chat import services
from chat.replies import fanout as fanout_module
from chat.replies import generation as generation_module
from chat.models import ApiCall, Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]

TIMEOUT = 10


async def connected(socket_for, user, conversation):
    socket = await socket_for(user, conversation.pk)
    accepted, _ = await socket.connect()
    assert accepted
    return socket


async def frames_until_final(socket, message_id=None) -> list[dict]:
    """Every frame up to and including the final `message` frame of the assistant reply."""
    received = []
    while True:
        frame = await socket.receive_json_from(timeout=TIMEOUT)
        received.append(frame)
        if frame["type"] == "message" and frame["message"]["role"] == "assistant":
            if message_id is None:
                message_id = frame["message"]["id"]
            if frame["message"]["id"] == message_id and frame["message"]["status"] != "streaming":
                return received


def replay(frames: list[dict], message_id: int) -> str:
    """What a client following docs/protocol.md shows for one message, given the frames it saw."""
    blocks, last_seq = [], 0
    for frame in frames:
        if frame["type"] == "message" and frame["message"]["id"] == message_id:
            blocks = [block.get("text", "") for block in frame["message"]["content"]]
            last_seq = frame["message"]["seq"]
        elif frame["type"] == "delta" and frame["message"] == message_id:
            assert frame["seq"] <= last_seq + 1, f"gap: {last_seq} -> {frame['seq']}"
            if frame["seq"] <= last_seq:
                continue
            for part in frame["parts"]:
                while len(blocks) <= part["block"]:
                    blocks.append("")
                blocks[part["block"]] += part["text"]
            last_seq = frame["seq"]
    return "".join(blocks)


def assistant_id(frames):
    return next(f["message"]["id"] for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant")


async def reload(message_id) -> Message:
    return await database_sync_to_async(Message.objects.get)(pk=message_id)


async def test_a_reply_streams_and_is_saved_with_usage_and_cost(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "What is a B-tree?"})

    frames = await frames_until_final(socket)

    kinds = [frame["type"] for frame in frames]
    assert kinds[:2] == ["message", "message"]
    assert frames[0]["message"]["role"] == "user" and frames[0]["message"]["content"][0]["text"] == "What is a B-tree?"
    assert "delta" in kinds
    message = await reload(assistant_id(frames))
    assert message.status == Message.Status.COMPLETE
    assert "What is a B-tree?" in message.text
    assert replay(frames, message.pk) == message.text
    assert message.stop_reason == "end_turn"
    assert message.input_tokens > 0 and message.output_tokens > 0 and message.cost > 0
    call = await database_sync_to_async(ApiCall.objects.get)(message=message)
    assert (call.status, call.input_tokens, call.output_tokens) == ("ok", message.input_tokens, message.output_tokens)
    assert call.cost == message.cost and call.request_id.startswith("req_")
    assert call.price_snapshot["input"] == "3"


async def test_delta_sequence_numbers_count_up_by_one(socket_for, owner, conversation, settings):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 2000
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Count with me"})

    frames = await frames_until_final(socket)

    seqs = [frame["seq"] for frame in frames if frame["type"] == "delta"]
    assert seqs == list(range(1, len(seqs) + 1))
    assert frames[-1]["message"]["seq"] == seqs[-1]


async def test_frames_are_coalesced_not_one_per_token(socket_for, owner, conversation, settings):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 2000
    settings.CHAT_FRAME_INTERVAL = 0.05
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Tell me everything"})

    frames = await frames_until_final(socket)

    message = await reload(assistant_id(frames))
    delta_frames = [frame for frame in frames if frame["type"] == "delta"]
    assert len(delta_frames) < message.output_tokens / 3
    assert sum(len(p["text"]) for f in delta_frames for p in f["parts"]) == len(message.text)


async def test_the_second_turn_sends_the_history(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "First question"})
    await frames_until_final(socket)
    await socket.send_json_to({"type": "send", "text": "Second question"})

    frames = await frames_until_final(socket)

    message = await reload(assistant_id(frames))
    assert "Second question" in message.text
    assert "turn 2" in message.text


async def test_stop_saves_the_partial_reply_as_stopped(socket_for, owner, conversation, settings):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 100
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Write at length"})
    while (await socket.receive_json_from(timeout=TIMEOUT))["type"] != "delta":
        pass

    await socket.send_json_to({"type": "stop"})
    frames = await frames_until_final(socket)

    message = await reload(frames[-1]["message"]["id"])
    assert message.status == Message.Status.STOPPED
    assert message.text and message.stop_reason == ""
    call = await database_sync_to_async(ApiCall.objects.get)(message=message)
    assert call.status == ApiCall.Status.STOPPED and call.output_tokens > 0


async def test_stop_closes_the_upstream_stream(socket_for, owner, conversation, settings, offline_model_reset):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 100
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Write at length"})
    while (await socket.receive_json_from(timeout=TIMEOUT))["type"] != "delta":
        pass

    await socket.send_json_to({"type": "stop"})
    await frames_until_final(socket)

    assert offline_model_reset.open_streams == 0


async def test_stop_with_nothing_streaming_is_an_error_frame(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "stop"})

    frame = await socket.receive_json_from(timeout=TIMEOUT)

    assert (frame["type"], frame["code"]) == ("error", "not_streaming")


async def test_a_second_send_while_streaming_is_refused_and_not_stored(socket_for, owner, conversation, settings):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 200
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "First"})
    await socket.receive_json_from(timeout=TIMEOUT)
    await socket.receive_json_from(timeout=TIMEOUT)

    await socket.send_json_to({"type": "send", "text": "Second"})
    frames = await frames_until_final(socket)

    errors = [frame for frame in frames if frame["type"] == "error"]
    assert [error["code"] for error in errors] == ["busy"]
    texts = await database_sync_to_async(lambda: [m.text for m in conversation.messages.filter(role="user")])()
    assert texts == ["First"]


async def test_two_sockets_on_one_conversation_see_the_same_reply(socket_for, owner, conversation, settings):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 1000
    first = await connected(socket_for, owner, conversation)
    second = await connected(socket_for, owner, conversation)
    await first.send_json_to({"type": "send", "text": "Hello both"})

    first_frames = await frames_until_final(first)
    second_frames = await frames_until_final(second)

    message_id = assistant_id(first_frames)
    message = await reload(message_id)
    assert replay(first_frames, message_id) == replay(second_frames, message_id) == message.text


async def test_a_socket_connecting_mid_reply_gets_the_snapshot_then_the_rest(
    socket_for, owner, conversation, settings
):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 300
    first = await connected(socket_for, owner, conversation)
    await first.send_json_to({"type": "send", "text": "Long answer please"})
    deltas_seen = 0
    while deltas_seen < 3:
        deltas_seen += (await first.receive_json_from(timeout=TIMEOUT))["type"] == "delta"

    late = await connected(socket_for, owner, conversation)
    late_frames = await frames_until_final(late)

    stored, live, final = (frame for frame in late_frames if frame["type"] == "message")
    assert late_frames[0] is stored and stored["message"]["status"] == "streaming"
    assert live["message"]["status"] == "streaming" and live["message"]["seq"] >= 3
    assert live["message"]["content"][0]["text"]
    # The live snapshot is the same object as the stored one, only further along.
    assert live["message"].keys() == stored["message"].keys()
    assert live["message"]["parent"] == stored["message"]["parent"] is not None
    message = await reload(live["message"]["id"])
    assert final["message"]["status"] == "complete"
    assert replay(late_frames, message.pk) == message.text


async def test_resume_after_a_reconnect_returns_the_current_state(socket_for, owner, conversation, settings):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 300
    first = await connected(socket_for, owner, conversation)
    await first.send_json_to({"type": "send", "text": "Long answer please"})
    frames = [await first.receive_json_from(timeout=TIMEOUT) for _ in range(3)]
    await first.disconnect()

    again = await connected(socket_for, owner, conversation)
    snapshot = await again.receive_json_from(timeout=TIMEOUT)
    await again.send_json_to({"type": "resume", "message": snapshot["message"]["id"]})
    rest = await frames_until_final(again)

    message = await reload(snapshot["message"]["id"])
    assert replay(frames + [snapshot] + rest, message.pk) == message.text


async def test_closing_the_tab_mid_reply_does_not_stop_the_reply(socket_for, owner, conversation, settings):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 400
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Keep going without me"})
    while (await socket.receive_json_from(timeout=TIMEOUT))["type"] != "delta":
        pass
    [generation] = generation_module.running.values()

    await socket.disconnect()
    await asyncio.wait_for(generation.task, timeout=TIMEOUT)

    message = await reload(generation.message_id)
    assert message.status == Message.Status.COMPLETE
    assert "Keep going without me" in message.text and message.stop_reason == "end_turn"


async def test_checkpoints_are_bounded_not_per_token(socket_for, owner, conversation, settings, monkeypatch):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 400
    settings.CHAT_CHECKPOINT_INTERVAL = 0.1
    checkpoints = []
    original = services.messages_checkpoint
    monkeypatch.setattr(services, "messages_checkpoint", lambda writes: checkpoints.extend(writes) or original(writes))
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "A long one"})

    frames = await frames_until_final(socket)

    message = await reload(assistant_id(frames))
    assert 0 < len(checkpoints) < message.output_tokens / 5
    assert all(content[0]["text"] for _, _, content, _ in checkpoints if content)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("rate_limit", "rate-limited"), ("overloaded", "overloaded"), ("server_error", "500")],
)
async def test_an_upstream_error_before_the_first_byte_fails_the_reply_readably(
    socket_for, owner, conversation, settings, offline_model_reset, fault, reason
):
    settings.ANTHROPIC_MAX_RETRIES = 0
    offline_model_reset.inject_fault(fault)
    socket = await connected(socket_for, owner, conversation)
    # A Haiku is the end of the fallback chain (test_models.py has the fallback itself).
    await socket.send_json_to({"type": "send", "text": "Hello?", "model": "claude-haiku-5-5"})

    frames = await frames_until_final(socket)

    final = frames[-1]["message"]
    assert final["status"] == "failed" and reason in final["error"]
    user_messages = await database_sync_to_async(lambda: conversation.messages.filter(role="user").count())()
    assert user_messages == 1
    call = await database_sync_to_async(ApiCall.objects.get)(message_id=final["id"])
    assert call.status == ApiCall.Status.ERROR and call.http_status in (429, 529, 500) and call.cost == 0


async def test_the_sdk_retries_an_overload_and_the_ledger_records_both_attempts(
    socket_for, owner, conversation, settings, offline_model_reset
):
    settings.ANTHROPIC_MAX_RETRIES = 2
    offline_model_reset.inject_fault("overloaded", times=1)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Try again"})

    frames = await frames_until_final(socket)

    assert frames[-1]["message"]["status"] == "complete"
    calls = await database_sync_to_async(
        lambda: list(ApiCall.objects.filter(message_id=frames[-1]["message"]["id"]).order_by("attempt"))
    )()
    assert [(c.attempt, c.http_status, c.is_retry, c.status) for c in calls] == [
        (1, 529, False, "error"),
        (2, 200, True, "ok"),
    ]
    assert calls[0].cost == 0 and calls[1].cost > 0


@pytest.mark.parametrize(("fault", "reason"), [("error_event", "mid-reply"), ("disconnect", "connection")])
async def test_a_failure_mid_stream_keeps_the_partial_reply(
    socket_for, owner, conversation, settings, offline_model_reset, fault, reason
):
    offline_model_reset.inject_fault(fault, after_tokens=8)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Start then break"})

    frames = await frames_until_final(socket)

    message = await reload(frames[-1]["message"]["id"])
    assert message.status == Message.Status.FAILED and reason in message.error
    assert message.text and replay(frames, message.pk) == message.text
    assert message.output_tokens > 0


async def test_an_upstream_that_goes_silent_is_abandoned(socket_for, owner, conversation, settings, offline_model_reset):
    settings.CHAT_UPSTREAM_SILENCE_TIMEOUT = 0.3
    offline_model_reset.inject_fault("stall", after_tokens=5)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Then silence"})

    frames = await frames_until_final(socket)

    message = await reload(frames[-1]["message"]["id"])
    assert message.status == Message.Status.FAILED and "silent" in message.error
    assert message.text
    assert offline_model_reset.open_streams == 0


async def test_a_reply_left_streaming_by_a_dead_process_shows_as_interrupted_without_a_write(
    socket_for, owner, conversation, settings
):
    settings.CHAT_STREAM_STALE_AFTER = 0
    dead = await database_sync_to_async(Message.objects.create)(
        conversation=conversation, role="assistant", status="streaming", content=[{"type": "text", "text": "Half"}]
    )

    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "resume", "message": dead.pk})
    frame = await socket.receive_json_from(timeout=TIMEOUT)

    assert frame["message"]["status"] == "interrupted" and frame["message"]["content"][0]["text"] == "Half"
    assert (await reload(dead.pk)).status == Message.Status.STREAMING  # reads never write; the sweep does
    assert await database_sync_to_async(services.messages_interrupt_stale)() == 1
    assert (await reload(dead.pk)).status == Message.Status.INTERRUPTED


async def test_an_outsider_cannot_open_the_socket(socket_for, outsider, conversation):
    socket = await socket_for(outsider, conversation.pk)
    accepted, _ = await socket.connect()
    assert not accepted


async def test_an_anonymous_visitor_cannot_open_the_socket(socket_for, conversation):
    socket = await socket_for(None, conversation.pk)
    accepted, _ = await socket.connect()
    assert not accepted


async def test_a_foreign_origin_cannot_open_the_socket(socket_for, owner, conversation):
    socket = await socket_for(owner, conversation.pk, origin=b"https://evil.example")
    accepted, _ = await socket.connect()
    assert not accepted


async def test_a_missing_conversation_cannot_be_opened(socket_for, owner):
    socket = await socket_for(owner, 999_999)
    accepted, _ = await socket.connect()
    assert not accepted


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ('{"type": 5}', "bad_frame"),
        ('{"type": "explode"}', "bad_frame"),
        ('{"type": "send", "text": 12}', "bad_frame"),
        ('{"type": "send", "text": "   "}', "empty"),
        (json.dumps({"type": "send", "text": "x" * 100_001}), "too_long"),
        ('{"type": "send", "text": "hi", "model": "gpt-9"}', "bad_model"),
        ('{"type": "resume", "message": "1"}', "bad_frame"),
        ('{"type": "resume", "message": 999999}', "not_found"),
    ],
)
async def test_a_malformed_frame_gets_an_error_and_the_socket_stays_usable(
    socket_for, owner, conversation, raw, code
):
    socket = await connected(socket_for, owner, conversation)
    await socket.send_to(text_data=raw)

    frame = await socket.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["code"]) == ("error", code)

    await socket.send_json_to({"type": "send", "text": "Still there?"})
    frames = await frames_until_final(socket)
    assert frames[-1]["message"]["status"] == "complete"


async def test_resume_cannot_read_another_users_message(socket_for, owner, outsider, conversation):
    other_conversation = await database_sync_to_async(services.conversation_create)(owner=outsider)
    foreign = await database_sync_to_async(Message.objects.create)(
        conversation=other_conversation, role="user", content=[{"type": "text", "text": "secret"}]
    )
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "resume", "message": foreign.pk})
    frame = await socket.receive_json_from(timeout=TIMEOUT)

    assert (frame["type"], frame["code"]) == ("error", "not_found")
    assert "secret" not in json.dumps(frame)


async def test_the_first_message_titles_the_conversation(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "How do   B-trees\nstay balanced?", "model": "claude-haiku-4-5"})

    frames = await frames_until_final(socket)

    titled = next(frame for frame in frames if frame["type"] == "conversation")
    assert titled["conversation"]["title"] == "How do B-trees stay balanced?"
    assert titled["conversation"]["model"] == "claude-haiku-4-5"
    assert frames[-1]["message"]["model"] == "claude-haiku-4-5"


async def test_a_client_that_sees_a_gap_recovers_the_missing_part(socket_for, owner, conversation, settings, monkeypatch):
    """Delivery is at-most-once (a socket too far behind loses frames): here the third frame is lost."""
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 300
    original_put = fanout_module._put

    def dropping_put(consumer, frame):
        if not (frame.get("type") == "delta" and frame.get("seq") == 3):
            original_put(consumer, frame)

    monkeypatch.setattr(fanout_module, "_put", dropping_put)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Do not lose a word"})

    blocks, last_seq, resumed, message_id = [], 0, 0, None
    while True:
        frame = await socket.receive_json_from(timeout=TIMEOUT)
        if frame["type"] == "message" and frame["message"]["role"] == "assistant":
            message_id = frame["message"]["id"]
            blocks = [block.get("text", "") for block in frame["message"]["content"]]
            last_seq = frame["message"]["seq"]
            if frame["message"]["status"] != "streaming":
                break
        elif frame["type"] == "delta" and frame["seq"] > last_seq + 1:
            resumed += 1
            await socket.send_json_to({"type": "resume", "message": frame["message"]})
        elif frame["type"] == "delta" and frame["seq"] == last_seq + 1:
            for part in frame["parts"]:
                blocks += [""] * (part["block"] + 1 - len(blocks))
                blocks[part["block"]] += part["text"]
            last_seq = frame["seq"]

    message = await reload(message_id)
    assert resumed >= 1
    assert "".join(blocks) == message.text and message.status == Message.Status.COMPLETE


async def test_draining_refuses_new_turns_and_saves_running_replies(socket_for, owner, conversation, settings, monkeypatch):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 50
    monkeypatch.setattr(generation_module, "draining", False)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Long story"})
    while (await socket.receive_json_from(timeout=TIMEOUT))["type"] != "delta":
        pass

    await generation_module.generations_drain(timeout=0)
    frames = await frames_until_final(socket)
    await socket.send_json_to({"type": "send", "text": "Another"})
    refusal = await socket.receive_json_from(timeout=TIMEOUT)

    message = await reload(frames[-1]["message"]["id"])
    assert message.status == Message.Status.INTERRUPTED and message.text and message.error
    assert (refusal["type"], refusal["code"]) == ("error", "draining")


async def test_a_socket_that_is_behind_is_not_taken_for_a_dead_channel_layer(
    socket_for, owner, conversation, settings, monkeypatch
):
    """A full channel (ChannelFull) means this socket lags, not that Redis is down: it must stay open."""
    from channels.exceptions import ChannelFull

    settings.CHAT_LAYER_PROBE_INTERVAL = 0.05
    layer = generation_module.get_channel_layer()
    original_send = layer.send
    probes = []

    async def full_for_probes(channel, message):
        if message.get("type") == "layer.probe":
            probes.append(channel)
            raise ChannelFull()
        await original_send(channel, message)

    monkeypatch.setattr(layer, "send", full_for_probes)
    socket = await connected(socket_for, owner, conversation)
    while len(probes) < 3:
        await asyncio.sleep(0.05)

    await socket.send_json_to({"type": "send", "text": "Still here?"})
    frames = await frames_until_final(socket)

    assert frames[-1]["message"]["status"] == "complete"
    assert not [frame for frame in frames if frame["type"] == "error"]


async def test_a_final_frame_the_channel_layer_drops_once_is_sent_again_to_other_processes(
    socket_for, owner, conversation, monkeypatch
):
    """Behind a shared layer (Redis), other processes get the final frame again when the layer drops it;
    this process's sockets got it once, whatever the layer did."""
    monkeypatch.setattr(fanout_module, "InMemoryChannelLayer", type("NoLayerIsLocal", (), {}))
    layer = generation_module.get_channel_layer()
    original_group_send, relayed_finals = layer.group_send, []

    async def dropping_the_first_final_frame(group, message):
        frame = message.get("frame", {})
        if frame.get("type") == "message" and frame["message"]["status"] == "complete":
            relayed_finals.append(frame)
            if len(relayed_finals) == 1:
                raise TimeoutError("the layer is slow")
        await original_group_send(group, message)

    monkeypatch.setattr(layer, "group_send", dropping_the_first_final_frame)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Finish properly"})

    frames = await frames_until_final(socket)
    await asyncio.sleep(0.2)

    assert frames[-1]["message"]["status"] == "complete" and len(relayed_finals) == 2
    assert await socket.receive_nothing(timeout=0.2)  # no second copy here


async def test_frames_reach_sockets_of_this_process_without_the_channel_layer(
    socket_for, owner, conversation, settings, monkeypatch
):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 1000
    layer = generation_module.get_channel_layer()
    relayed = []
    original_group_send, original_send = layer.group_send, layer.send

    async def counting_group_send(group, message):
        relayed.append(message["type"])
        await original_group_send(group, message)

    async def counting_send(channel, message):
        relayed.append(message["type"])
        await original_send(channel, message)

    monkeypatch.setattr(layer, "group_send", counting_group_send)
    monkeypatch.setattr(layer, "send", counting_send)
    first = await connected(socket_for, owner, conversation)
    second = await connected(socket_for, owner, conversation)
    await first.send_json_to({"type": "send", "text": "Hello both, directly"})

    first_frames, second_frames = await frames_until_final(first), await frames_until_final(second)

    message_id = assistant_id(first_frames)
    assert replay(first_frames, message_id) == replay(second_frames, message_id) == (await reload(message_id)).text
    assert "chat.frame" not in relayed and "relay.frame" not in relayed


async def test_relaying_a_frame_makes_no_hop_to_the_sync_thread(socket_for, owner, conversation, monkeypatch):
    """Channels closes old database connections before every event it dispatches, through the sync thread:
    one hop per frame per socket. This consumer's events touch no database, so it must not."""
    import channels.consumer

    hops = []

    async def counted():
        hops.append(1)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Many frames, please"})

    frames = await frames_until_final(socket)

    assert len([f for f in frames if f["type"] == "delta"]) > 1 and hops == []
