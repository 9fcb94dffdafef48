"""The half-price replies' edges: a model retired while its turn waits, the admins' retirement notices from the
worker, a queued reply deleted before or after it was sent, and a long conversation's queued turn within the
context window. Through the real SDK and the offline model's Batches API (delay 0)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command

from batches.models import Batch, BatchItem
from billing.models import Reservation
from chat import services
from chat.models import ApiCall, Conversation, Message
from lifecycle import services as lifecycle_services
from lifecycle.models import ModelLifecycle, RetirementNotice
from tests.test_admission import admit, signed_in

pytestmark = pytest.mark.django_db(transaction=True)

SONNET_OLD = "claude-sonnet-4-6"


@pytest.fixture(autouse=True)
def offline_batches(settings, tmp_path):
    settings.OFFLINE_MODEL_BATCH_DIR = str(tmp_path / "offline-batches")
    settings.OFFLINE_MODEL_BATCH_SECONDS = 0


def queue(user, conversation, text="Summarise the plan, please."):
    return admit(user, conversation, signed_in(user), text=text, batch=True)


def work_once():
    call_command("batches_work", "--once")


def batch_requests(offline_model) -> int:
    return sum(count for path, count in offline_model.requests_by_path.items() if "batches" in path)


# --- a retired model --------------------------------------------------------------------------------------


def test_a_turn_whose_model_retired_while_it_waited_fails_naming_the_successor_and_is_never_sent(
    owner, conversation, offline_model_reset,
):
    Conversation.objects.filter(pk=conversation.pk).update(model=SONNET_OLD)
    reply_id = queue(owner, conversation).reply.pk
    ModelLifecycle.objects.create(
        model=SONNET_OLD, retires_on=ModelLifecycle.today() - timedelta(days=1), successor="claude-sonnet-5-5",
    )

    work_once()

    reply = Message.objects.get(pk=reply_id)
    assert reply.status == "failed"
    assert "Claude Sonnet 4.6 was retired on" in reply.error and "Claude Sonnet 5.5" in reply.error
    assert BatchItem.objects.get().status == "errored" and Batch.objects.get().status == "failed"
    assert not Reservation.objects.exists() and not ApiCall.objects.exists()
    assert batch_requests(offline_model_reset) == 0
    work_once()
    assert batch_requests(offline_model_reset) == 0 and Batch.objects.get().upstream_id == ""


# --- the admins' notices ----------------------------------------------------------------------------------


def test_the_worker_sends_the_retirement_notice_once_a_day(django_user_model, monkeypatch):
    django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1")
    ModelLifecycle.objects.create(
        model=SONNET_OLD, retires_on=ModelLifecycle.today() + timedelta(days=5), successor="claude-sonnet-5-5",
    )
    runs = []
    real = lifecycle_services.retirements_notify
    monkeypatch.setattr(lifecycle_services, "retirements_notify", lambda **kw: runs.append(kw) or real(**kw))

    work_once()
    work_once()

    assert len(runs) == 1
    assert [message.to for message in mail.outbox] == [["admin@example.com"]]
    assert RetirementNotice.objects.get().days_before == 7


# --- a queued reply deleted -------------------------------------------------------------------------------


def test_deleting_a_queued_reply_not_yet_sent_cancels_its_item_and_releases_the_reservation(
    owner, conversation, offline_model_reset,
):
    admitted = queue(owner, conversation)

    services.branch_delete(conversation=conversation, message_id=admitted.reply.pk)

    item = BatchItem.objects.get()
    assert (item.status, item.message_id) == ("canceled", None) and item.settled_at is not None
    assert Batch.objects.get().status == "ended" and not Reservation.objects.exists()
    work_once()
    assert batch_requests(offline_model_reset) == 0 and not ApiCall.objects.exists()
    # The conversation takes a turn again.
    admit(owner, conversation, signed_in(owner), text="Now, please")


def test_deleting_a_conversation_with_a_queued_reply_cancels_it_too(owner, conversation, offline_model_reset):
    queue(owner, conversation)

    services.conversation_delete(conversation=conversation)

    assert BatchItem.objects.get().status == "canceled" and not Reservation.objects.exists()
    work_once()
    assert batch_requests(offline_model_reset) == 0


def test_deleting_a_sent_queued_reply_cancels_upstream_and_bills_an_answer_that_came_anyway(owner, conversation):
    admitted = queue(owner, conversation)
    work_once()  # sent; with the offline delay 0 it is answered before the cancel reaches it
    question = Message.objects.get(role="user")

    services.branch_delete(conversation=conversation, message_id=question.pk)  # the branch holding the reply

    batch = Batch.objects.get()
    assert batch.cancel_requested_at is not None and batch.status == "submitted"
    reservation = Reservation.objects.get()
    assert reservation.message_id is None and reservation.batch_item == BatchItem.objects.get()
    # The stale sweep leaves it: the spend is still coming.
    services.messages_interrupt_stale(stale_after=0)
    assert Reservation.objects.filter(pk=reservation.pk).exists()

    work_once()

    batch.refresh_from_db()
    assert batch.cancel_sent_at is not None and batch.status == "ended"
    item = BatchItem.objects.get()
    call = ApiCall.objects.get()
    assert item.status == "succeeded" and call.cost > 0 and item.cost == call.cost
    assert item.answer == "" and call.message_id is None  # billed, stored nowhere
    assert not Message.objects.filter(pk=admitted.reply.pk).exists() and not Reservation.objects.exists()


# --- the context window -----------------------------------------------------------------------------------

LEFT_OUT = "2 earlier messages were left out to fit the model's context window."


def test_a_long_conversations_queued_turn_leaves_out_its_oldest_history_as_a_normal_reply_does(
    owner, conversation, settings,
):
    settings.CHAT_MAX_OUTPUT_TOKENS = 500
    long_question = "Tell me about B-trees, " + "in great detail " * 1000
    queue(owner, conversation, text=long_question)
    work_once()
    work_once()
    reply_id = queue(owner, conversation, text="And B+ trees?").reply.pk
    assert BatchItem.objects.get(message_id=reply_id).params["messages"][0]["content"][0]["text"] == long_question
    settings.CHAT_MAX_CONTEXT_TOKENS = 500 + 1500  # the first exchange alone is about 4,000 tokens

    work_once()

    sent = BatchItem.objects.get(message_id=reply_id).params
    assert [block.get("text") for turn in sent["messages"] for block in turn["content"]] == ["And B+ trees?"]
    assert LEFT_OUT in Message.objects.get(pk=reply_id).notices
    work_once()
    reply = Message.objects.get(pk=reply_id)
    assert reply.status == "complete" and reply.notices.count(LEFT_OUT) == 1


def test_a_queued_turn_too_long_for_the_window_fails_before_it_is_sent(
    owner, conversation, settings, offline_model_reset,
):
    settings.CHAT_MAX_OUTPUT_TOKENS = 500
    reply_id = queue(owner, conversation, text="in great detail " * 1000).reply.pk
    settings.CHAT_MAX_CONTEXT_TOKENS = 500 + 1000

    work_once()

    reply = Message.objects.get(pk=reply_id)
    assert reply.status == "failed" and reply.error.startswith("This message is too long for the model")
    assert not Reservation.objects.exists() and Batch.objects.get().status == "failed"
    assert batch_requests(offline_model_reset) == 0
