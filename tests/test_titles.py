"""Titles the model writes after a conversation's first complete reply: real websockets, the real SDK, the
offline model (chat/titles.py)."""

import asyncio
import csv
import io
import logging
from decimal import ROUND_DOWN, Decimal

import pytest
from channels.db import database_sync_to_async
from django.urls import reverse

from billing import ledger
from billing import selectors as billing_selectors
from billing.ledger import UpstreamAttempt, UpstreamRequest
from billing.models import Price, Reservation
from chat import services, titles
from chat.llm.catalog import model_spec
from chat.llm.offline.prompt import read_prompt
from chat.llm.offline.reply import compose_reply
from chat.llm.pricing import TokenUsage, usage_cost
from chat.models import ApiCall, Conversation, Message, TitleSource
from chat.replies import generation as generation_module
from teams.models import Membership, Team

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("generations_drained", "titles_on"),
]

TIMEOUT = 10
QUESTION = "How do I plan the team offsite budget?"
MODEL_TITLE = "Plan Team Offsite Budget"  # what the offline model makes of QUESTION


@pytest.fixture
async def titles_on(settings):
    settings.CHAT_MODEL_TITLES = True
    yield
    await titles_written()


async def titles_written() -> None:
    """Wait for the titles being written in this process: they belong to the process, as replies do."""
    tasks = [writer.task for writer in titles.running.values() if writer.task]
    if tasks:
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=TIMEOUT)


async def connected(socket_for, user, conversation):
    socket = await socket_for(user, conversation.pk)
    accepted, _ = await socket.connect()
    assert accepted
    return socket


async def reply_sent(socket, frame: dict) -> list[dict]:
    """Send `frame` and return every frame up to the reply's final `message` frame."""
    await socket.send_json_to(frame)
    received = []
    while True:
        received.append(await socket.receive_json_from(timeout=TIMEOUT))
        last = received[-1]
        if (
            last["type"] == "message"
            and last["message"]["role"] == "assistant"
            and last["message"]["status"] != "streaming"
        ):
            return received


async def conversation_frame(socket, title: str) -> dict:
    """The next `conversation` frame that carries `title`."""
    while True:
        frame = await socket.receive_json_from(timeout=TIMEOUT)
        if frame["type"] == "conversation" and frame["conversation"]["title"] == title:
            return frame


@database_sync_to_async
def state(conversation_id: int) -> dict:
    conversation = Conversation.objects.get(pk=conversation_id)
    return {
        "title": conversation.title,
        "source": conversation.title_source,
        "title_calls": list(ApiCall.objects.filter(purpose=ApiCall.Purpose.TITLE).order_by("id")),
        "reply_calls": list(ApiCall.objects.filter(purpose=ApiCall.Purpose.REPLY).order_by("id")),
        "reservations": Reservation.objects.count(),
    }


def messages_requests(offline_model) -> list[dict]:
    return list(offline_model.received)


async def test_the_model_titles_the_conversation_after_its_first_reply(
    socket_for, owner, conversation, offline_model_reset
):
    socket = await connected(socket_for, owner, conversation)
    frames = await reply_sent(socket, {"type": "send", "text": QUESTION})
    assert frames[-1]["message"]["status"] == "complete"

    frame = await conversation_frame(socket, MODEL_TITLE)
    await titles_written()

    assert frame["conversation"] == {
        "id": conversation.pk,
        "title": MODEL_TITLE,
    }  # no `model`: the picker stays
    after = await state(conversation.pk)
    assert (after["title"], after["source"]) == (MODEL_TITLE, TitleSource.MODEL)
    assert after["reservations"] == 0
    [call] = after["title_calls"]
    assert (call.conversation_id, call.message_id, call.user_id) == (conversation.pk, None, owner.pk)
    assert (call.model, call.status, call.http_status, call.stop_reason) == (
        "claude-haiku-5-5",
        "ok",
        200,
        "end_turn",
    )
    usage = TokenUsage(input_tokens=call.input_tokens, output_tokens=call.output_tokens)
    assert call.input_tokens > 0 and 0 < call.output_tokens <= titles.TITLE_MAX_TOKENS
    assert call.cost == usage_cost(usage, model_spec("claude-haiku-5-5").prices) > 0
    # One small request, after the reply's: the cheapest model, no tools, no thinking, not streamed.
    _, title_request = messages_requests(offline_model_reset)
    assert (
        title_request["model"] == "claude-haiku-5-5"
        and title_request["max_tokens"] == titles.TITLE_MAX_TOKENS
    )
    assert title_request["system"] == titles.TITLE_SYSTEM_PROMPT
    assert not {"tools", "thinking", "stream", "tool_choice"} & title_request.keys()
    assert QUESTION in title_request["messages"][0]["content"]
    # Every sum of spend counts it.
    [reply_call] = after["reply_calls"]
    spent = await database_sync_to_async(billing_selectors.user_spend)(
        owner, since=billing_selectors.month_start()
    )
    cost = await database_sync_to_async(billing_selectors.conversation_cost)(conversation)
    assert spent == cost == reply_call.cost + call.cost


async def test_what_the_request_carries_of_the_conversation_is_bounded(
    socket_for, owner, conversation, offline_model_reset
):
    socket = await connected(socket_for, owner, conversation)
    await reply_sent(socket, {"type": "send", "text": "Budget " + "x" * 5_000})
    await titles_written()

    content = messages_requests(offline_model_reset)[-1]["messages"][0]["content"]
    asked = content.split("<user>\n", 1)[1].split("\n</user>", 1)[0]
    assert len(asked) == titles.TITLE_EXCERPT_CHARS + 1 and asked.endswith("…")
    assert len(content) < 2 * titles.TITLE_EXCERPT_CHARS + 100


def test_the_cheapest_model_on_offer_writes_it_at_the_prices_in_force():
    assert titles.title_model(1_000) == "claude-haiku-5-5"

    for model in ("claude-haiku-5-5", "claude-haiku-4-5"):
        Price.objects.update_or_create(
            model=model,
            defaults={
                "input": 50,
                "output": 250,
                "cache_write_5m": Decimal("62.5"),
                "cache_write_1h": 100,
                "cache_read": 5,
            },
        )

    assert titles.title_model(1_000) == "claude-sonnet-5-5"


async def test_a_rename_before_the_title_arrives_is_kept_and_the_call_is_still_billed(
    socket_for, owner, conversation, monkeypatch
):
    settle = titles.title_settle

    def renamed_first(**kwargs):
        renamed = Conversation.objects.get(pk=conversation.pk)
        services.conversation_rename(conversation=renamed, title="Offsite, my way")
        return settle(**kwargs)

    monkeypatch.setattr(titles, "title_settle", renamed_first)
    socket = await connected(socket_for, owner, conversation)
    await reply_sent(socket, {"type": "send", "text": QUESTION})
    await titles_written()

    after = await state(conversation.pk)
    assert (after["title"], after["source"]) == ("Offsite, my way", TitleSource.USER)
    [call] = after["title_calls"]
    assert call.status == "ok" and call.cost > 0
    assert after["reservations"] == 0
    assert await socket.receive_nothing(timeout=0.2)


async def test_a_later_reply_or_a_regenerate_does_not_retitle(
    socket_for, owner, conversation, offline_model_reset
):
    socket = await connected(socket_for, owner, conversation)
    first_reply = (await reply_sent(socket, {"type": "send", "text": QUESTION}))[-1]["message"]["id"]
    await conversation_frame(socket, MODEL_TITLE)
    await titles_written()

    await reply_sent(socket, {"type": "send", "text": "Tell me about invoices for catering"})
    await titles_written()
    regenerated = await reply_sent(socket, {"type": "regenerate", "message": first_reply})
    await titles_written()

    assert (
        regenerated[-1]["message"]["status"] == "complete"
        and regenerated[-1]["message"]["parent"] is not None
    )

    after = await state(conversation.pk)
    assert (after["title"], after["source"]) == (MODEL_TITLE, TitleSource.MODEL)
    assert len(after["title_calls"]) == 1 and len(after["reply_calls"]) == 3
    assert len(messages_requests(offline_model_reset)) == 4


async def test_a_failed_first_reply_leaves_the_title_to_the_next_complete_one(
    socket_for, owner, conversation, offline_model_reset, settings
):
    offline_model_reset.inject_fault("server_error", times=settings.ANTHROPIC_MAX_RETRIES + 1)
    socket = await connected(socket_for, owner, conversation)
    failed = await reply_sent(socket, {"type": "send", "text": QUESTION})
    await titles_written()
    assert failed[-1]["message"]["status"] == "failed"
    assert (await state(conversation.pk))["title_calls"] == []

    await reply_sent(socket, {"type": "send", "text": "Let us try that again"})
    await conversation_frame(socket, MODEL_TITLE)  # from the first message of the conversation
    await titles_written()

    after = await state(conversation.pk)
    assert (after["title"], after["source"]) == (MODEL_TITLE, TitleSource.MODEL)
    assert len(after["title_calls"]) == 1


@pytest.mark.parametrize("whose", ["own", "group"])
async def test_over_budget_there_is_no_title_call_no_spend_and_no_error(
    socket_for, owner, conversation, offline_model_reset, monkeypatch, whose
):
    team = await database_sync_to_async(Team.objects.create)(name="Marketing", monthly_budget=500)
    await database_sync_to_async(Membership.objects.create)(team=team, user=owner)
    admit = titles.title_admit

    def budget_spent_first(**kwargs):
        """Between the reply and its title, the budget is lowered to what has been spent (an admin's edit)."""
        spent = billing_selectors.user_spend(owner, since=billing_selectors.month_start())
        budget = spent.quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        if whose == "own":
            type(owner).objects.filter(pk=owner.pk).update(monthly_budget=budget)
        else:
            Team.objects.filter(pk=team.pk).update(monthly_budget=budget)
        return admit(**kwargs)

    monkeypatch.setattr(titles, "title_admit", budget_spent_first)
    socket = await connected(socket_for, owner, conversation)
    frames = await reply_sent(socket, {"type": "send", "text": QUESTION})
    await titles_written()

    assert frames[-1]["message"]["status"] == "complete"
    after = await state(conversation.pk)
    assert (after["title"], after["source"]) == (QUESTION, TitleSource.FIRST_MESSAGE)
    assert after["title_calls"] == [] and after["reservations"] == 0
    assert len(messages_requests(offline_model_reset)) == 1
    assert await socket.receive_nothing(timeout=0.2)  # no error frame, no conversation frame


@pytest.mark.parametrize(
    ("fault", "http_status", "billed"), [("server_error", 500, False), ("disconnect", 200, True)]
)
async def test_a_failing_title_request_keeps_the_title_and_writes_its_row(
    socket_for, owner, conversation, offline_model_reset, monkeypatch, fault, http_status, billed
):
    admit = titles.title_admit

    def failing_next(**kwargs):
        offline_model_reset.inject_fault(fault)
        return admit(**kwargs)

    monkeypatch.setattr(titles, "title_admit", failing_next)
    socket = await connected(socket_for, owner, conversation)
    await reply_sent(socket, {"type": "send", "text": QUESTION})
    await titles_written()

    after = await state(conversation.pk)
    assert (after["title"], after["source"]) == (QUESTION, TitleSource.FIRST_MESSAGE)
    [call] = after["title_calls"]  # never retried
    assert (call.status, call.http_status, call.purpose) == ("error", http_status, "title")
    assert call.error
    # An error the API answered costs nothing; an answer lost on the way may have been billed in full.
    assert (call.cost > 0) is billed
    assert after["reservations"] == 0
    assert await socket.receive_nothing(timeout=0.2)


async def test_shutdown_stops_a_title_in_flight_and_still_writes_its_row(
    socket_for, owner, conversation, offline_model_reset, monkeypatch
):
    monkeypatch.setattr(generation_module, "draining", False)
    admit = titles.title_admit

    def stalling_next(**kwargs):
        offline_model_reset.inject_fault("stall")
        return admit(**kwargs)

    monkeypatch.setattr(titles, "title_admit", stalling_next)
    socket = await connected(socket_for, owner, conversation)
    await reply_sent(socket, {"type": "send", "text": QUESTION})
    while not offline_model_reset.open_streams:  # the title's answer, stalled upstream
        await asyncio.sleep(0.01)

    await generation_module.generations_drain(timeout=0)

    assert titles.running == {}
    after = await state(conversation.pk)
    assert (after["title"], after["source"]) == (QUESTION, TitleSource.FIRST_MESSAGE)
    [call] = after["title_calls"]
    assert call.status == "stopped" and call.output_tokens == titles.TITLE_MAX_TOKENS and call.cost > 0
    assert after["reservations"] == 0
    assert offline_model_reset.open_streams == 0


async def test_only_the_conversations_sockets_hear_of_the_title(socket_for, owner, outsider, conversation):
    elsewhere = await database_sync_to_async(services.conversation_create)(owner=outsider)
    outsiders = await connected(socket_for, outsider, elsewhere)
    refused = await socket_for(outsider, conversation.pk)
    assert not (await refused.connect())[0]

    socket = await connected(socket_for, owner, conversation)
    await reply_sent(socket, {"type": "send", "text": QUESTION})
    await conversation_frame(socket, MODEL_TITLE)
    await titles_written()

    assert await outsiders.receive_nothing(timeout=0.2)


def test_the_answer_becomes_a_title_or_nothing():
    assert titles.title_clean('  "Plan the offsite."\n') == "Plan the offsite"
    assert titles.title_clean("Title: **Budget review**") == "Budget review"
    assert titles.title_clean("«Presupuesto del viaje»") == "Presupuesto del viaje"
    assert titles.title_clean(" \n ") == ""
    assert titles.title_clean("word " * 20) == ""  # longer than a title: the first message's stays


def test_a_deleted_conversation_still_gets_the_row_of_its_title(owner, conversation):
    services.turn_start(conversation=conversation, text=QUESTION)
    reply = conversation.messages.get(role=Message.Role.ASSISTANT)
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, owner_token="")
    asked = titles.title_admit(conversation_id=conversation.pk, reply_id=reply.pk)
    assert asked is not None and Reservation.objects.filter(message=None).count() == 1
    conversation.delete()
    request = UpstreamRequest(
        model=asked.model,
        attempts=[UpstreamAttempt(http_status=200)],
        usage=TokenUsage(100, 5),
        purpose=ApiCall.Purpose.TITLE,
    )

    assert titles.title_settle(asked=asked, requests=[request], title="Plan Team Offsite") is None

    [call] = ApiCall.objects.all()
    assert (call.purpose, call.conversation_id, call.user_id, call.cost > 0) == (
        "title",
        None,
        owner.pk,
        True,
    )
    assert not Reservation.objects.exists()


def test_the_admin_tells_title_calls_from_reply_calls(client, django_user_model, owner, conversation):
    reply_call = ApiCall.objects.create(
        user=owner, conversation=conversation, model="claude-sonnet-5-5", cost=1
    )
    title_call = ApiCall.objects.create(
        user=owner,
        conversation=conversation,
        model="claude-haiku-5-5",
        cost=Decimal("0.0001"),
        purpose=ApiCall.Purpose.TITLE,
    )
    client.force_login(
        django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1")
    )

    page = client.get(reverse("admin:chat_apicall_changelist"), {"purpose__exact": "title"})
    export = client.get(reverse("admin:chat_apicall_export"))

    assert [row.pk for row in page.context["cl"].result_list] == [title_call.pk]
    assert page.context["totals"]["cost"] == Decimal("0.000100")
    rows = {int(row["id"]): row["purpose"] for row in csv.DictReader(io.StringIO(export.content.decode()))}
    assert rows == {reply_call.pk: "reply", title_call.pk: "title"}


def test_two_replies_completing_at_once_ask_for_one_title(owner, conversation):
    """As two server processes would, each having run a reply of the conversation (the claim is in the cache)."""
    services.turn_start(conversation=conversation, text=QUESTION)
    reply = conversation.messages.get(role=Message.Role.ASSISTANT)
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, owner_token="")

    first = titles.title_admit(conversation_id=conversation.pk, reply_id=reply.pk)
    second = titles.title_admit(conversation_id=conversation.pk, reply_id=reply.pk)

    assert first is not None and second is None
    assert Reservation.objects.count() == 1


@pytest.mark.parametrize(
    ("asked", "title"),
    [
        ("How do I plan the team offsite budget?", "Plan Team Offsite Budget"),
        ("what is the SQL for a left join with three tables please", "SQL Left Join Three Tables"),
        ("¿Cómo está el tiempo en Madrid hoy?", "Cómo Está El Tiempo En Madrid"),
        ("?!", "New conversation"),
    ],
)
def test_the_offline_model_titles_from_the_users_first_words(asked, title):
    body = {
        "model": "claude-haiku-5-5",
        "max_tokens": titles.TITLE_MAX_TOKENS,
        "system": titles.TITLE_SYSTEM_PROMPT,
        "messages": [
            {"role": "user", "content": f"<user>\n{asked}\n</user>\n\n<assistant>\nAn answer\n</assistant>"}
        ],
    }

    blocks, stop_reason = compose_reply(read_prompt(body))

    assert [(block.type, block.text) for block in blocks] == [("text", title)] and stop_reason == "end_turn"


async def title_stalled(socket_for, owner, conversation, offline_model, monkeypatch):
    """A conversation whose title request is under way, its answer stalled upstream."""
    admit = titles.title_admit

    def stalling_next(**kwargs):
        offline_model.inject_fault("stall")
        return admit(**kwargs)

    monkeypatch.setattr(titles, "title_admit", stalling_next)
    socket = await connected(socket_for, owner, conversation)
    await reply_sent(socket, {"type": "send", "text": QUESTION})
    while not offline_model.open_streams:
        await asyncio.sleep(0.01)
    return socket


async def streams_closed(offline_model) -> None:
    async with asyncio.timeout(TIMEOUT):
        while offline_model.open_streams:
            await asyncio.sleep(0.01)


async def test_a_title_task_cancelled_mid_request_stops_it_and_logs_its_row(
    socket_for, owner, conversation, offline_model_reset, monkeypatch, caplog
):
    await title_stalled(socket_for, owner, conversation, offline_model_reset, monkeypatch)
    task = titles.running[conversation.pk].task

    with caplog.at_level(logging.ERROR, logger="chat.ledger"):
        task.cancel()  # not through stop_requested, as titles_stop does
        await asyncio.gather(task, return_exceptions=True)

    assert task.cancelled()
    await streams_closed(offline_model_reset)  # the request did not go on without its row
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("api_call_unsaved"))
    assert (await state(conversation.pk))["title_calls"] == []
    await database_sync_to_async(ledger.ledger_replay)(line)
    [call] = (await state(conversation.pk))["title_calls"]
    assert (call.status, call.purpose, call.conversation_id, call.user_id) == (
        "stopped",
        "title",
        conversation.pk,
        owner.pk,
    )
    assert (
        call.output_tokens == titles.TITLE_MAX_TOKENS and call.cost > 0
    )  # an answer cut off: billed in full


async def test_a_title_request_past_its_timeout_is_stopped_and_recorded(
    socket_for, owner, conversation, offline_model_reset, monkeypatch
):
    monkeypatch.setattr(titles, "TITLE_TIMEOUT", 0.2)  # the stall never ends: only the total bound stops it
    socket = await title_stalled(socket_for, owner, conversation, offline_model_reset, monkeypatch)

    await titles_written()

    await streams_closed(offline_model_reset)
    after = await state(conversation.pk)
    assert (after["title"], after["source"]) == (QUESTION, TitleSource.FIRST_MESSAGE)
    [call] = after["title_calls"]
    assert (call.status, call.error) == (
        "stopped",
        "No title came within 0.2 seconds; the request was stopped.",
    )
    assert call.output_tokens == titles.TITLE_MAX_TOKENS and call.cost > 0
    assert after["reservations"] == 0
    assert await socket.receive_nothing(timeout=0.2)
