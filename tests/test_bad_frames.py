"""Frames a client should never send, and too many of them: each is answered or dropped, nothing is stored,
and the socket (and the conversation) go on working."""

import asyncio
import json
import logging

import pytest
import websockets
from channels.db import database_sync_to_async
from cluster import AppServer, Visitor, migrate, server_env
from redis.exceptions import ConnectionError as RedisConnectionError
from test_consumer import TIMEOUT, connected, frames_until_final

from chat import inbound
from chat.consumers import ConversationConsumer
from chat.models import Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]

TOO_BIG_ID = 2**70
DEEP = "[" * 5000 + "]" * 5000


async def stored_messages() -> int:
    return await database_sync_to_async(Message.objects.count)()


async def assert_still_usable(socket) -> None:
    await socket.send_json_to({"type": "send", "text": "Still there?"})
    assert (await frames_until_final(socket))[-1]["message"]["status"] == "complete"


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "send", "text": "half a pair \\ud800"}',
        '{"type": "send", "text": "a NUL \\u0000 inside"}',
        '{"type": "send", "text": "hi", "model": "\\udfff"}',
        '{"type": "edit", "message": 1, "text": "\\ud800"}',
        json.dumps({"type": "resume", "message": TOO_BIG_ID}),
        json.dumps({"type": "continue", "message": TOO_BIG_ID}),
        json.dumps({"type": "edit", "message": TOO_BIG_ID, "text": "hi"}),
        json.dumps({"type": "stop", "message": TOO_BIG_ID}),
        json.dumps({"type": "switch", "message": TOO_BIG_ID}),
        json.dumps({"type": "delete", "message": "7"}),
        json.dumps({"type": "regenerate", "message": 0}),
        json.dumps({"type": "send", "text": "hi", "attachments": [1, TOO_BIG_ID]}),
        json.dumps({"type": "resume", "message": True}),
        '{"type": "resume", "message": ' + "9" * 5000 + "}",
        '{"type": "send", "text": "hi", "nested": ' + DEEP + "}",
        DEEP,
        '{"type": "send", "text": NaN}',
    ],
    ids=[
        "lone surrogate", "NUL", "surrogate model", "surrogate edit", "huge resume id", "huge continue id",
        "huge edit id", "huge stop id", "huge switch id", "string delete id", "zero regenerate id",
        "huge attachment id", "boolean id", "5000-digit id", "deep field",
        "deep frame", "NaN",
    ],
)
async def test_a_frame_the_database_could_not_take_is_refused_and_nothing_is_stored(
    socket_for, owner, conversation, raw
):
    socket = await connected(socket_for, owner, conversation)

    await socket.send_to(text_data=raw)

    frame = await socket.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["code"]) == ("error", "bad_frame")
    assert await stored_messages() == 0
    await assert_still_usable(socket)


async def test_a_binary_frame_is_refused(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)

    await socket.send_to(bytes_data=b'{"type": "send", "text": "hi"}')

    frame = await socket.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["code"]) == ("error", "bad_frame")
    await assert_still_usable(socket)


def test_every_declared_frame_type_has_a_handler_and_no_handler_is_undeclared():
    assert set(inbound.FRAME_TYPES) == set(ConversationConsumer.HANDLERS)


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param("half a pair \ud800", id="lone surrogate"),
        pytest.param("a NUL \x00 inside", id="NUL"),
    ],
)
async def test_a_conversation_already_holding_unstorable_text_still_connects_and_answers(
    socket_for, owner, conversation, stored
):
    """Older rows (or another client) may hold text the frame schema now refuses; SQLite takes both."""
    for role, text in (("user", stored), ("assistant", f"You wrote: {stored}")):
        await database_sync_to_async(Message.objects.create)(
            conversation=conversation, role=role, content=[{"type": "text", "text": text}]
        )
    socket = await connected(socket_for, owner, conversation)

    await assert_still_usable(socket)


async def test_a_flood_of_frames_is_dropped_unread_with_one_warning_and_the_socket_recovers(
    socket_for, owner, conversation, settings, monkeypatch
):
    settings.CHAT_SOCKET_FRAME_BURST = 3
    settings.CHAT_SOCKET_FRAMES_PER_SECOND = 10
    parsed = []
    parse = inbound.frame_parse
    monkeypatch.setattr(inbound, "frame_parse", lambda raw: parsed.append(raw) or parse(raw))
    socket = await socket_for(owner, conversation.pk)
    # The test queues every frame before the consumer reads one. The buckets' clock stands still while it
    # reads them and has moved on a second when it reaches the last: nothing depends on the machine's speed.
    queued = []
    monkeypatch.setattr(inbound, "clock", lambda: 1001.0 if queued and socket.input_queue.empty() else 1000.0)
    assert (await socket.connect())[0]

    for _ in range(3):
        await socket.send_json_to({"type": "stop"})  # spends the burst
    for _ in range(500):
        await socket.send_json_to({"type": "send", "text": "flood"})
    await socket.send_json_to({"type": "send", "text": "One at a time now"})
    queued.append(True)
    frames = await frames_until_final(socket)

    errors = [frame["code"] for frame in frames if frame["type"] == "error"]
    assert errors == ["not_streaming"] * 3 + ["slow_down"]
    assert len(parsed) == 4
    assert await stored_messages() == 2
    assert frames[-1]["message"]["status"] == "complete"


async def test_a_bug_in_a_handler_is_reported_with_an_id_in_the_log_and_the_socket_stays_open(
    socket_for, owner, conversation, monkeypatch, caplog
):
    async def broken_resume(consumer, frame):
        raise KeyError("a bug")

    monkeypatch.setitem(ConversationConsumer.HANDLERS, "resume", broken_resume)
    socket = await connected(socket_for, owner, conversation)

    with caplog.at_level(logging.ERROR, logger="chat.consumers"):
        await socket.send_json_to({"type": "resume", "message": 1})
        frame = await socket.receive_json_from(timeout=TIMEOUT)

    assert (frame["type"], frame["code"]) == ("error", "internal_error")
    assert frame["error_id"] and "a bug" not in json.dumps(frame)
    logged = [record for record in caplog.records if frame["error_id"] in record.getMessage()]
    assert logged and logged[0].exc_info[0] is KeyError
    await assert_still_usable(socket)


async def test_a_channel_layer_failure_in_a_handler_closes_the_socket_as_unavailable(
    socket_for, owner, conversation, monkeypatch
):
    async def layer_down(consumer, frame):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setitem(ConversationConsumer.HANDLERS, "stop", layer_down)
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "stop"})

    frame = await socket.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["code"]) == ("error", "unavailable")
    closing = await socket.receive_output(timeout=TIMEOUT)
    assert (closing["type"], closing["code"]) == ("websocket.close", 4503)


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """A real server process on SQLite, started as tests/cluster.py starts every server (the message cap
    included)."""
    workdir = tmp_path_factory.mktemp("server")
    env = server_env(
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}", DJANGO_MEDIA_ROOT=str(workdir / "media"),
        REDIS_URL="",
    )
    migrate(env)
    server = AppServer(env, workdir, "server").start()
    yield server
    server.stop()


@pytest.mark.django_db(transaction=False)
async def test_a_frame_over_the_servers_size_cap_is_closed_with_1009_and_a_reason(app_server):
    visitor = await asyncio.to_thread(Visitor, app_server, "sender-of-big-frames")
    conversation_id = await asyncio.to_thread(visitor.new_conversation)

    async with visitor.connect(app_server, conversation_id) as connection:
        # The server refuses the frame from its header, without reading it: the close may come mid-send.
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await connection.send(json.dumps({"type": "send", "text": "x" * (2 * 1024 * 1024)}))
            await asyncio.wait_for(connection.recv(), TIMEOUT)

    assert closed.value.rcvd is not None, "the server dropped the connection without a close frame (1006)"
    assert closed.value.rcvd.code == 1009 and "exceeds" in closed.value.rcvd.reason
    async with visitor.connect(app_server, conversation_id) as connection:
        await connection.send(json.dumps({"type": "send", "text": "A normal one"}))
        assert json.loads(await asyncio.wait_for(connection.recv(), TIMEOUT))["type"] == "message"
