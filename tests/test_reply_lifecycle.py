"""One owner per reply: ownership tokens, Stop addressed to a reply, deletion mid-reply, failed saves, the ledger
of requests that never got an answer, and reads that never write."""

import asyncio
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import ledger
from billing.models import Reservation
from chat import services
from chat.models import ApiCall, Message
from chat.replies import generation as generation_module
from tests.cluster import free_port
from tests.test_consumer import TIMEOUT, assistant_id, connected, frames_until_final, reload
from tests.transcripts import message_appended

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]


def streaming_reply(conversation, text="Half", **fields) -> Message:
    return message_appended(
        conversation, role="assistant", status="streaming", text=text, heartbeat_at=timezone.now(),
        owner_token="a" * 32, **fields,
    )


async def first_delta(socket) -> list[dict]:
    frames = []
    while True:
        frames.append(await socket.receive_json_from(timeout=TIMEOUT))
        if frames[-1]["type"] == "delta":
            return frames


# --- the ownership token ------------------------------------------------------------------------------------


def test_a_checkpoint_with_another_token_writes_nothing(conversation):
    reply = streaming_reply(conversation)

    owned = services.message_checkpoint(message_id=reply.pk, token="b" * 32, content=[], seq=9)

    reply.refresh_from_db()
    assert owned is False and (reply.seq, reply.content[0]["text"]) == (0, "Half")


def test_a_heartbeat_alone_does_not_rewrite_the_reply(conversation):
    reply = streaming_reply(conversation)
    Message.objects.filter(pk=reply.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=20))

    with CaptureQueriesContext(connection) as queries:
        owned = services.message_checkpoint(message_id=reply.pk, token="a" * 32, content=None, seq=0)

    reply.refresh_from_db()
    assert owned and timezone.now() - reply.heartbeat_at < timedelta(seconds=5)
    assert '"content"' not in queries[-1]["sql"]


def test_a_swept_reply_is_never_resurrected_by_its_late_generation(conversation, owner):
    reply = streaming_reply(conversation)
    reservation = Reservation.objects.create(user=owner, message=reply, amount=Decimal("0.5"))
    Message.objects.filter(pk=reply.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=60))

    assert services.messages_interrupt_stale() == 1
    late_checkpoint = services.message_checkpoint(message_id=reply.pk, token="a" * 32, content=[], seq=5)
    settled = services.message_finish(
        message_id=reply.pk, user_id=owner.pk, conversation_id=conversation.pk, status="complete",
        content=[{"type": "text", "text": "Resurrected"}], seq=7, model="claude-sonnet-5-5", token="a" * 32,
        reservation_id=reservation.pk,
        attempts=[ledger.UpstreamAttempt(http_status=200, request_id="req_late")],
    )

    reply.refresh_from_db()
    assert late_checkpoint is False and settled is None
    assert (reply.status, reply.text, reply.owner_token) == ("interrupted", "Half", "")
    call = ApiCall.objects.get(request_id="req_late")
    assert call.message_id == reply.pk  # the money spent is still on the ledger, linked to its reply
    assert not Reservation.objects.exists()


def test_the_sweep_releases_the_reservation_of_a_dead_reply(conversation, owner):
    reply = streaming_reply(conversation)
    Reservation.objects.create(user=owner, message=reply, amount=Decimal("0.5"))
    live = streaming_reply(services.conversation_create(owner=owner))
    Reservation.objects.create(user=owner, message=live, amount=Decimal("0.25"))
    Message.objects.filter(pk=reply.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=60))

    services.messages_interrupt_stale()

    assert list(Reservation.objects.values_list("amount", flat=True)) == [Decimal("0.25")]


def test_two_streaming_replies_can_never_exist_in_one_conversation(conversation):
    streaming_reply(conversation)

    with pytest.raises(services.ConversationBusy):
        services.turn_start(conversation=conversation, text="And another")
    assert conversation.messages.count() == 1


async def test_a_finishing_reply_does_not_unregister_the_next_one(
    socket_for, owner, conversation, settings, monkeypatch
):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 200
    next_reply_started = asyncio.Event()
    leave = generation_module.Generation._leave_control_group

    async def leave_after_the_next_reply_started(self, channel):
        await next_reply_started.wait()  # the first reply's cleanup runs only once the second is registered
        await leave(self, channel)

    monkeypatch.setattr(generation_module.Generation, "_leave_control_group", leave_after_the_next_reply_started)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "First"})
    first = generation_module.running[assistant_id(await frames_until_final(socket))]
    await socket.send_json_to({"type": "send", "text": "Second, at length"})
    second_id = assistant_id([f for f in await first_delta(socket) if f["type"] == "message"
                              and f["message"]["role"] == "assistant"])

    next_reply_started.set()
    await asyncio.wait_for(first.task, timeout=TIMEOUT)

    assert first.message_id not in generation_module.running
    assert generation_module.running[second_id].message_id == second_id


async def test_a_reply_that_loses_its_ownership_stops_spending(
    socket_for, owner, conversation, settings, offline_model_reset
):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 100
    settings.CHAT_CHECKPOINT_INTERVAL = 0.05
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Write at length"})
    reply_id = assistant_id(await first_delta(socket))
    generation = generation_module.running[reply_id]

    await database_sync_to_async(Message.objects.filter(pk=reply_id).update)(owner_token="taken-over")
    await asyncio.wait_for(generation.task, timeout=TIMEOUT)

    assert offline_model_reset.open_streams == 0
    reply = await reload(reply_id)
    assert reply.status == "streaming" and reply.owner_token == "taken-over"  # the new owner's row, untouched
    call = await database_sync_to_async(ApiCall.objects.get)(message_id=reply_id)
    assert call.status == ApiCall.Status.STOPPED and call.output_tokens > 0


# --- Stop is addressed to a reply ------------------------------------------------------------------------


async def test_a_stop_for_an_earlier_reply_does_not_stop_the_one_streaming_now(
    socket_for, owner, conversation, settings
):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 0
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "First"})
    earlier = assistant_id(await frames_until_final(socket))
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 300
    await socket.send_json_to({"type": "send", "text": "Second, at length"})
    now_streaming = assistant_id([f for f in await first_delta(socket) if f["type"] == "message"
                                  and f["message"]["role"] == "assistant"])

    await socket.send_json_to({"type": "stop", "message": earlier})
    frames = await frames_until_final(socket, now_streaming)

    assert [f["code"] for f in frames if f["type"] == "error"] == ["not_streaming"]
    assert frames[-1]["message"]["status"] == "complete"


async def test_a_stop_for_the_streaming_reply_stops_it(socket_for, owner, conversation, settings):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 100
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Write at length"})
    reply_id = assistant_id(await first_delta(socket))

    await socket.send_json_to({"type": "stop", "message": reply_id})
    frames = await frames_until_final(socket, reply_id)

    assert frames[-1]["message"]["status"] == "stopped"


async def test_an_outsider_cannot_stop_a_reply_by_its_id(socket_for, owner, outsider, conversation, settings):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 200
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Mine, at length"})
    reply_id = assistant_id(await first_delta(socket))
    theirs = await database_sync_to_async(services.conversation_create)(owner=outsider)
    intruder = await connected(socket_for, outsider, theirs)
    await intruder.receive_nothing(timeout=0.1)

    await intruder.send_json_to({"type": "stop", "message": reply_id})

    assert (await intruder.receive_json_from(timeout=TIMEOUT))["code"] == "not_streaming"
    assert (await frames_until_final(socket, reply_id))[-1]["message"]["status"] == "complete"


# --- deletion mid-reply ---------------------------------------------------------------------------------


async def test_deleting_the_conversation_mid_reply_stops_the_upstream_at_once(
    socket_for, owner, conversation, settings, offline_model_reset
):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 50
    settings.CHAT_CHECKPOINT_INTERVAL = 60  # only the deletion itself can stop it within the test
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Write at length"})
    reply_id = assistant_id(await first_delta(socket))
    generation = generation_module.running[reply_id]

    await database_sync_to_async(services.conversation_delete)(conversation=conversation)
    await asyncio.wait_for(generation.task, timeout=TIMEOUT)

    assert offline_model_reset.open_streams == 0
    call = await database_sync_to_async(ApiCall.objects.get)(user=owner)
    assert (call.status, call.conversation_id, call.message_id) == ("stopped", None, None)
    assert call.output_tokens > 0 and call.cost > 0
    assert not await database_sync_to_async(Reservation.objects.exists)()


async def test_deleting_the_user_mid_reply_stops_the_upstream_and_keeps_the_ledger(
    socket_for, owner, conversation, settings, offline_model_reset
):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 50
    settings.CHAT_CHECKPOINT_INTERVAL = 60
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Write at length"})
    reply_id = assistant_id(await first_delta(socket))
    generation = generation_module.running[reply_id]

    await database_sync_to_async(owner.delete)()
    await asyncio.wait_for(generation.task, timeout=TIMEOUT)

    assert offline_model_reset.open_streams == 0
    call = await database_sync_to_async(ApiCall.objects.get)()
    assert call.status == "stopped" and call.output_tokens > 0 and call.user_id is None


# --- failures around the reply ----------------------------------------------------------------------------


async def test_a_request_that_never_reaches_the_model_still_has_its_ledger_row(
    socket_for, owner, conversation, settings
):
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ANTHROPIC_BASE_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    settings.ANTHROPIC_MAX_RETRIES = 0
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Anyone there?", "model": "claude-haiku-5-5"})

    frames = await frames_until_final(socket)

    final = frames[-1]["message"]
    assert final["status"] == "failed" and "could not be reached" in final["error"]
    call = await database_sync_to_async(ApiCall.objects.get)(message_id=final["id"])
    assert (call.status, call.http_status, call.cost) == ("error", None, 0) and call.error


async def test_a_failed_checkpoint_is_retried_and_the_heartbeat_goes_on(
    socket_for, owner, conversation, settings, monkeypatch
):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 200
    settings.CHAT_CHECKPOINT_INTERVAL = 0.05
    original, calls = services.messages_checkpoint, []

    def flaky(writes):
        calls.append(writes)
        if len(calls) <= 2:
            raise ConnectionError("database is down")
        return original(writes)

    monkeypatch.setattr(services, "messages_checkpoint", flaky)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Write at length"})
    reply_id = assistant_id(await first_delta(socket))
    while len(calls) < 4:
        await asyncio.sleep(0.05)

    saved = await reload(reply_id)
    assert saved.status == "streaming" and saved.seq > 0 and saved.text
    assert (await frames_until_final(socket, reply_id))[-1]["message"]["status"] == "complete"


async def test_a_failed_final_save_is_retried_until_it_succeeds(socket_for, owner, conversation, settings, monkeypatch):
    original, attempts = services.message_finish, []

    def flaky(**arguments):
        attempts.append(arguments)
        if len(attempts) <= 2:
            raise ConnectionError("database is down")
        return original(**arguments)

    monkeypatch.setattr(services, "message_finish", flaky)
    monkeypatch.setattr(generation_module, "SETTLE_FIRST_DELAY", 0.01)
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Hello"})

    frames = await frames_until_final(socket)

    reply = await reload(assistant_id(frames))
    assert len(attempts) == 3 and reply.status == "complete" and reply.text
    assert await database_sync_to_async(ApiCall.objects.filter(message=reply).count)() == 1
    assert not await database_sync_to_async(Reservation.objects.exists)()


async def test_when_settling_gives_up_the_ledger_rows_are_logged_for_replay(
    socket_for, owner, conversation, settings, monkeypatch, caplog
):
    settings.CHAT_SETTLE_TIMEOUT = 0.05

    def down(**arguments):
        raise ConnectionError("database is down")

    monkeypatch.setattr(services, "message_finish", down)
    monkeypatch.setattr(generation_module, "SETTLE_FIRST_DELAY", 0.01)
    socket = await connected(socket_for, owner, conversation)
    with caplog.at_level(logging.ERROR, logger="chat.ledger"):
        await socket.send_json_to({"type": "send", "text": "Hello"})
        reply_id = assistant_id([await socket.receive_json_from(timeout=TIMEOUT) for _ in range(2)])
        await asyncio.wait_for(generation_module.running[reply_id].task, timeout=TIMEOUT)

    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("api_call_unsaved"))
    assert await database_sync_to_async(ApiCall.objects.count)() == 0
    reply = await reload(reply_id)
    assert reply.status == "failed" and reply.text and reply.owner_token == ""  # with everything it generated
    replayed = await database_sync_to_async(ledger.ledger_replay)(line)
    call = await database_sync_to_async(ApiCall.objects.get)()
    assert [row.pk for row in replayed] == [call.pk]
    assert (call.message_id, call.user_id, call.status) == (reply_id, owner.pk, "ok") and call.cost > 0


# --- reads never write, history by id ----------------------------------------------------------------------


def test_loading_the_chat_page_runs_no_write(client, owner, conversation, settings):
    settings.CHAT_STREAM_STALE_AFTER = 0
    streaming_reply(conversation)
    client.force_login(owner)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("conversation_detail", args=[conversation.pk]))

    writes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))]
    assert response.status_code == 200 and writes == []
    assert '"status": "interrupted"' in response.content.decode()


def test_history_is_ordered_by_id_not_by_the_clocks_of_several_hosts(conversation):
    first = Message.objects.create(conversation=conversation, role="user", content=[{"type": "text", "text": "1"}])
    second = Message.objects.create(conversation=conversation, role="assistant", content=[{"type": "text", "text": "2"}])
    Message.objects.filter(pk=first.pk).update(created_at=timezone.now() + timedelta(minutes=5))

    assert list(conversation.messages.values_list("pk", flat=True)) == [first.pk, second.pk]


def test_ledger_replay_writes_the_rows_of_unsaved_lines_from_a_log(tmp_path, owner, conversation):
    from django.core.management import call_command

    reply = streaming_reply(conversation)
    request = ledger.UpstreamRequest(
        model="claude-sonnet-5-5", attempts=[ledger.UpstreamAttempt(http_status=200, request_id="req_lost")],
    )
    request.usage = ledger.TokenUsage(input_tokens=1000, output_tokens=500)
    log_file = tmp_path / "server.log"
    with CaptureLog("chat.ledger") as records:
        ledger.ledger_log_unsaved(
            [request], user_id=owner.pk, conversation_id=conversation.pk, message_id=reply.pk, settle_key="k"
        )
    log_file.write_text("2026-12-01 12:00:00 INFO chat something else\n" + "".join(
        f"2026-12-01 12:00:01 ERROR chat.ledger {record.getMessage()}\n" for record in records
    ))

    call_command("ledger_replay", str(log_file))
    call_command("ledger_replay", str(log_file))  # replayed twice by mistake: billed once

    call = ApiCall.objects.get(request_id="req_lost")
    assert (call.user_id, call.conversation_id, call.message_id) == (owner.pk, conversation.pk, reply.pk)
    assert call.cost == Decimal("0.010500")


class CaptureLog(logging.Handler):
    def __init__(self, name):
        super().__init__()
        self.logger, self.records = logging.getLogger(name), []

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        self.logger.addHandler(self)
        return self.records

    def __exit__(self, *exc):
        self.logger.removeHandler(self)


def test_one_reply_the_database_refuses_does_not_stop_the_checkpoints_of_the_others(conversation, owner, monkeypatch):
    from django.db import DatabaseError

    good = streaming_reply(conversation)
    bad = streaming_reply(services.conversation_create(owner=owner))
    original = services.message_checkpoint

    def refusing_one(*, message_id, **arguments):
        if message_id == bad.pk:
            raise DatabaseError("unsupported Unicode escape sequence")
        return original(message_id=message_id, **arguments)

    monkeypatch.setattr(services, "message_checkpoint", refusing_one)
    lost = services.messages_checkpoint([
        (good.pk, "a" * 32, [{"type": "text", "text": "Saved"}], 3),
        (bad.pk, "a" * 32, [{"type": "text", "text": "Refused"}], 3),
    ])

    good.refresh_from_db()
    assert lost == set() and (good.text, good.seq) == ("Saved", 3)


def test_model_text_the_databases_refuse_is_stored_with_a_replacement_character():
    assert services.storable([{"type": "text", "text": "a\x00b \ud800 ok é", "input": {"k": ["\x00"]}}]) == [
        {"type": "text", "text": "a\ufffdb \ufffd ok é", "input": {"k": ["\ufffd"]}}
    ]


def test_a_settle_retried_after_its_commit_bills_nothing_twice(conversation, owner):
    reply = streaming_reply(conversation)
    settle = dict(
        message_id=reply.pk, user_id=owner.pk, conversation_id=conversation.pk, status="complete",
        content=[{"type": "text", "text": "Done"}], seq=2, model="claude-sonnet-5-5", token="a" * 32,
        requests=[ledger.UpstreamRequest(
            model="claude-sonnet-5-5", attempts=[ledger.UpstreamAttempt(http_status=529),
                                                 ledger.UpstreamAttempt(http_status=200, request_id="req_ok")],
            usage=ledger.TokenUsage(input_tokens=10, output_tokens=20),
        )],
    )

    services.message_finish(**settle)
    services.message_finish(**settle)  # the first commit's acknowledgement was lost: the retry finds it done

    assert ApiCall.objects.filter(message=reply).count() == 2
    reply.refresh_from_db()
    assert reply.status == "complete" and reply.output_tokens == 20
