"""Admitting a turn: one call, one transaction, money reserved before it is spent."""

import asyncio
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import HASH_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext

from billing.models import Reservation
from chat import services
from chat.models import ApiCall, Conversation, Message
from chat.refusals import Refusal
from chat.replies import admission
from tests.test_consumer import TIMEOUT, assistant_id, connected, frames_until_final

pytestmark = pytest.mark.django_db(transaction=True)


def signed_in(user) -> tuple[str, str]:
    client = Client()
    client.force_login(user)
    session = SessionStore(session_key=client.cookies["sessionid"].value)
    return session.session_key, session[HASH_SESSION_KEY]


def admit(user, conversation, session, text="Hello", action="send", **arguments) -> admission.Admitted:
    session_key, auth_hash = session
    return admission.reply_admit(
        user_id=user.pk, session_key=session_key, auth_hash=auth_hash, conversation_id=conversation.pk,
        action=action, text=text, **arguments,
    )


def settle_everything(user) -> None:
    """Replies admitted by hand never stream: finish them so the next turn is admitted."""
    for reply in Message.objects.filter(status="streaming"):
        services.message_finish(
            message_id=reply.pk, user_id=user.pk, conversation_id=reply.conversation_id, status="complete",
            content=[{"type": "text", "text": "An answer of a few words."}], seq=1, model=reply.model,
            token=reply.owner_token, reservation_id=reply.reservation.pk,
        )


def test_admission_stores_the_turn_and_reserves_the_reply_in_one_transaction(owner, conversation):
    admitted = admit(owner, conversation, signed_in(owner))

    reply = Message.objects.get(pk=admitted.reply.pk)
    reservation = Reservation.objects.get()
    assert reply.status == "streaming" and len(reply.owner_token) == 32
    assert reservation.message_id == reply.pk and reservation.user_id == owner.pk and reservation.amount > 0
    assert admitted.limits.reservation_id == reservation.pk
    assert [frame["type"] for frame in admitted.frames] == ["message", "message", "conversation"]
    assert conversation.messages.filter(role="user").get().text == "Hello"


def test_the_query_count_does_not_grow_with_the_conversation(owner, conversation, settings):
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    session = signed_in(owner)
    long_one = services.conversation_create(owner=owner)
    for turn in range(19):
        admit(owner, long_one, session, text=f"Question {turn}")
        settle_everything(owner)
    admit(owner, conversation, session, text="Warm-up")  # caches (prices, models) filled by the first turn
    settle_everything(owner)

    new_one = services.conversation_create(owner=owner)
    with CaptureQueriesContext(connection) as short:
        admit(owner, new_one, session, text="First question")
    with CaptureQueriesContext(connection) as long:
        admit(owner, long_one, session, text="Twentieth question")

    assert len(short) == len(long), "\n".join(q["sql"][:100] for q in long) + "\n---\n" + "\n".join(q["sql"][:100] for q in short)


def test_regenerating_and_switching_cost_the_same_queries_on_a_short_and_a_long_path(owner, settings):
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    session = signed_in(owner)
    short_one, long_one = services.conversation_create(owner=owner), services.conversation_create(owner=owner)
    for conversation, turns in ((short_one, 1), (long_one, 20)):
        for turn in range(turns):
            admit(owner, conversation, session, text=f"Question {turn}")
            settle_everything(owner)
    counts = []
    for conversation in (short_one, long_one):
        with CaptureQueriesContext(connection) as regenerating:
            admit(owner, conversation, session, action="regenerate")
        settle_everything(owner)
        replaced = conversation.messages.filter(role="assistant").order_by("-id")[1]  # the version before
        with CaptureQueriesContext(connection) as switching:
            tree = admission.branch_change(
                user_id=owner.pk, session_key=session[0], auth_hash=session[1], conversation=conversation,
                action="switch", message_id=replaced.pk,
            )
        assert [message["id"] for message in tree["messages"]] == [replaced.pk]
        counts.append((len(regenerating), len(switching)))

    assert counts[0] == counts[1]


@pytest.mark.usefixtures("generations_drained")
async def test_a_rename_in_another_tab_survives_the_first_message(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)  # the socket read the conversation untitled
    elsewhere = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    await database_sync_to_async(services.conversation_rename)(conversation=elsewhere, title="Named elsewhere")

    await socket.send_json_to({"type": "send", "text": "This would have titled it"})
    await frames_until_final(socket)

    await database_sync_to_async(conversation.refresh_from_db)()
    assert conversation.title == "Named elsewhere"


def test_an_ended_session_is_refused_and_nothing_is_stored(owner, conversation):
    session_key, auth_hash = signed_in(owner)
    SessionStore(session_key=session_key).delete()

    with pytest.raises(Refusal) as refused:
        admit(owner, conversation, (session_key, auth_hash))

    assert refused.value.code == "session_ended"
    assert not Message.objects.exists() and not Reservation.objects.exists()


def test_a_changed_password_ends_the_sessions_signed_in_before(owner, conversation):
    session = signed_in(owner)
    owner.set_password("a-new-long-passphrase")
    owner.save()

    with pytest.raises(Refusal) as refused:
        admit(owner, conversation, session)

    assert refused.value.code == "session_ended"


def test_a_refused_budget_rolls_back_the_stored_message(owner, conversation):
    owner.monthly_budget = Decimal("0")
    owner.save()

    with pytest.raises(Refusal) as refused:
        admit(owner, conversation, signed_in(owner))

    assert refused.value.code == "budget_exceeded"
    assert not Message.objects.exists() and not Reservation.objects.exists()


def test_an_outsider_cannot_admit_a_turn_in_someone_elses_conversation(outsider, conversation):
    with pytest.raises(Refusal) as refused:
        admit(outsider, conversation, signed_in(outsider))

    assert refused.value.code == "not_found" and not Message.objects.exists()


@pytest.mark.usefixtures("generations_drained")
async def test_five_tabs_sending_at_once_never_spend_more_than_the_budget(
    socket_for, owner, settings
):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 400
    settings.CHAT_TOOL_MAX_ROUNDS = 0
    conversations = [await database_sync_to_async(services.conversation_create)(owner=owner) for _ in range(5)]
    probe = await database_sync_to_async(admit)(owner, conversations[0], await database_sync_to_async(signed_in)(owner))
    one_reply = await database_sync_to_async(lambda: Reservation.objects.get().amount)()
    await database_sync_to_async(Reservation.objects.all().delete)()
    await database_sync_to_async(Message.objects.all().delete)()
    owner.monthly_budget = (one_reply * Decimal("1.5")).quantize(Decimal("0.01"))  # one full reply and change
    await database_sync_to_async(owner.save)()
    assert probe.limits.max_tokens is None
    sockets = [await connected(socket_for, owner, conversation) for conversation in conversations]

    await asyncio.gather(*(socket.send_json_to({"type": "send", "text": "Tell me a lot"}) for socket in sockets))
    outcomes = await asyncio.gather(*(first_answer(socket) for socket in sockets))

    spent = await database_sync_to_async(lambda: ApiCall.objects.aggregate(total=Sum("cost"))["total"])()
    assert spent <= owner.monthly_budget
    # The first admitted is written in full; what is left buys at most shortened replies; the rest are refused.
    assert outcomes.count("complete") == 1 and set(outcomes) <= {"complete", "shortened", "budget_exceeded"}
    assert not await database_sync_to_async(Reservation.objects.exists)()


async def first_answer(socket) -> str:
    """"complete" for a reply written in full, "shortened" for one its budget cut, else the refusal's code."""
    while True:
        frame = await socket.receive_json_from(timeout=TIMEOUT)
        if frame["type"] == "error":
            return frame["code"]
        if frame["type"] == "message" and frame["message"]["role"] == "assistant":
            frames = await frames_until_final(socket, frame["message"]["id"])
            final = frames[-1]["message"] if frames else frame["message"]
            return "shortened" if final["notices"] else final["status"]


@pytest.mark.usefixtures("generations_drained")
async def test_a_budget_too_small_for_a_full_reply_buys_a_shorter_one_and_says_so(
    socket_for, owner, conversation, offline_model_reset
):
    owner.monthly_budget = Decimal("1")
    await database_sync_to_async(owner.save)()
    await database_sync_to_async(ApiCall.objects.create)(user=owner, model="claude-sonnet-5-5", cost=Decimal("0.97"))
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Hi"})
    frames = await frames_until_final(socket)

    final = frames[-1]["message"]
    [sent] = [body for body in offline_model_reset.received if body.get("stream")]
    assert final["status"] == "complete" and "limited to about" in final["notices"][0]
    assert sent["max_tokens"] < 4096 and "thinking" not in sent
    reply = await database_sync_to_async(Message.objects.get)(pk=assistant_id(frames))
    assert reply.cost <= Decimal("0.03")
