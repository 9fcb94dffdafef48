"""Replies "not urgent: half price": admitted as queued, submitted as a Message Batch, settled by the worker at
the batch rate. Through the real SDK and the offline model's Batches API (its delay 0: a batch has ended when
it is first read)."""

import asyncio
from decimal import Decimal

import anthropic
import pytest
from django.core.management import call_command

from batches import services as batch_services
from batches import worker
from batches.models import Batch, BatchItem
from billing import selectors as billing_selectors
from billing.models import Reservation
from chat import services
from chat.llm.pricing import BATCH_DISCOUNT, TokenUsage, usage_cost
from chat.models import ApiCall, Message
from chat.refusals import Refusal
from tests.test_admission import admit, signed_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def offline_batches(settings, tmp_path):
    settings.OFFLINE_MODEL_BATCH_DIR = str(tmp_path / "offline-batches")
    settings.OFFLINE_MODEL_BATCH_SECONDS = 0
    settings.BATCH_SUBMIT_TRIES = 2


def queue(user, conversation, text="Summarise the plan, please.", session=None):
    return admit(user, conversation, session or signed_in(user), text=text, batch=True)


def work_once():
    call_command("batches_work", "--once")


def test_a_queued_turn_stores_the_messages_reserves_at_the_batch_price_and_records_the_request(owner, conversation):
    admitted = queue(owner, conversation)

    reply = Message.objects.get(pk=admitted.reply.pk)
    assert admitted.queued and reply.status == "queued" and reply.owner_token == ""
    assert conversation.messages.filter(role="user").get().text == "Summarise the plan, please."
    item = BatchItem.objects.get()
    assert item.message_id == reply.pk and item.batch.status == "pending" and item.batch.kind == "turn"
    assert item.params["messages"][-1]["content"][0]["text"] == "Summarise the plan, please."
    assert "stream" not in item.params
    assert item.params["max_tokens"] > 0 and item.params["model"] == reply.model
    # The same request builder as a normal reply: its cache breakpoint on the latest turn.
    assert item.params["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    reservation = Reservation.objects.get()
    assert item.reservation_id == reservation.pk and reservation.message_id == reply.pk
    # Half of a one-request worst case at the full price: every token kind at the batch rate.
    full = billing_selectors.price_for_model(reply.model)
    conversation.refresh_from_db()
    estimate = billing_selectors.request_estimate(conversation=conversation, text="", model=reply.model)
    def one_request(prices):
        return billing_selectors.reply_worst_case(
            input_tokens=estimate.input_tokens, max_tokens=item.params["max_tokens"], requests=1,
            window=200_000_000, prices=prices,
        )

    assert reservation.amount == one_request(billing_selectors.batch_prices(full))
    assert abs(reservation.amount - one_request(full) * BATCH_DISCOUNT) <= Decimal("0.000001")
    assert [frame["message"]["status"] for frame in admitted.frames if frame["type"] == "message"] == [
        "complete", "queued",
    ]


def test_a_conversation_with_a_queued_reply_refuses_another_send(owner, conversation):
    session = signed_in(owner)
    queue(owner, conversation, session=session)

    with pytest.raises(Refusal) as refused:
        admit(owner, conversation, session, text="And another thing")
    assert refused.value.code == "queued"
    with pytest.raises(Refusal):
        queue(owner, conversation, text="Half price again", session=session)
    assert conversation.messages.count() == 2 and Reservation.objects.count() == 1


def test_a_queued_turn_is_refused_when_the_budget_cannot_cover_it(owner, conversation):
    owner.monthly_budget = Decimal("0.000001")
    owner.save()

    with pytest.raises(Refusal) as refused:
        queue(owner, conversation)
    assert refused.value.code == "budget_exceeded"
    assert not conversation.messages.exists() and not BatchItem.objects.exists() and not Reservation.objects.exists()


def test_the_worker_settles_the_reply_at_half_the_normal_price(owner, conversation):
    reply_id = queue(owner, conversation).reply.pk

    work_once()  # submits
    assert Batch.objects.get().status == "submitted"
    work_once()  # reads the results

    reply = Message.objects.get(pk=reply_id)
    assert reply.status == "complete" and reply.text and reply.output_tokens > 0
    call = ApiCall.objects.get()
    assert call.purpose == "batch" and call.message_id == reply_id and call.request_id.startswith("msgbatch_")
    usage = TokenUsage(call.input_tokens, call.output_tokens, call.cache_read_input_tokens,
                       call.cache_creation_5m_input_tokens, call.cache_creation_1h_input_tokens)
    normal = usage_cost(usage, billing_selectors.price_for_model(call.model))
    assert call.cost == (normal * BATCH_DISCOUNT).quantize(Decimal("0.000001")) and call.cost > 0
    assert Decimal(call.price_snapshot["input"]) == billing_selectors.price_for_model(call.model).input / 2
    assert reply.cost == call.cost
    assert not Reservation.objects.exists()
    assert Batch.objects.get().status == "ended" and BatchItem.objects.get().status == "succeeded"


def test_running_the_worker_again_bills_nothing_twice(owner, conversation):
    queue(owner, conversation)
    work_once()
    work_once()
    batch = Batch.objects.get()
    Batch.objects.filter(pk=batch.pk).update(status="submitted")  # as if the end had not been recorded

    work_once()

    assert ApiCall.objects.count() == 1 and not Reservation.objects.exists()


def test_a_crash_between_reading_the_results_and_settling_them_loses_nothing(owner, conversation, monkeypatch):
    reply_id = queue(owner, conversation).reply.pk
    work_once()
    real_settle = batch_services.item_settle

    def crash(**kwargs):
        raise RuntimeError("the worker died here")

    monkeypatch.setattr(batch_services, "item_settle", crash)
    work_once()
    assert Message.objects.get(pk=reply_id).status == "queued" and Reservation.objects.count() == 1
    assert not ApiCall.objects.exists()

    monkeypatch.setattr(batch_services, "item_settle", real_settle)
    work_once()
    assert Message.objects.get(pk=reply_id).status == "complete"
    assert ApiCall.objects.count() == 1 and not Reservation.objects.exists()


def test_the_stale_sweep_leaves_queued_replies_and_their_reservations_alone(owner, conversation):
    reply_id = queue(owner, conversation).reply.pk
    Reservation.objects.update(created_at="2020-01-01T00:00:00Z")

    services.messages_interrupt_stale(stale_after=0)

    assert Message.objects.get(pk=reply_id).status == "queued"
    assert Reservation.objects.count() == 1


def test_cancel_before_submission_stops_the_reply_and_releases_the_reservation(owner, conversation):
    reply_id = queue(owner, conversation).reply.pk

    settled = batch_services.reply_cancel(
        user_id=owner.pk, conversation_id=conversation.pk, message_id=reply_id
    )

    reply = Message.objects.get(pk=reply_id)
    assert reply.status == "stopped" and "Cancelled" in reply.error
    assert settled[0].payload["status"] == "stopped"
    assert not Reservation.objects.exists() and Batch.objects.get().status == "ended"
    work_once()
    assert not ApiCall.objects.exists() and Batch.objects.get().upstream_id == ""
    # The conversation takes a turn again.
    admit(owner, conversation, signed_in(owner), text="Now, please")


def test_cancel_after_submission_cancels_upstream_and_releases_the_reservation(owner, conversation, settings):
    settings.OFFLINE_MODEL_BATCH_SECONDS = 3600
    reply_id = queue(owner, conversation).reply.pk
    work_once()

    assert batch_services.reply_cancel(
        user_id=owner.pk, conversation_id=conversation.pk, message_id=reply_id
    ) == []
    assert Batch.objects.get().cancel_requested_at is not None
    work_once()  # cancels upstream; the batch is `canceling`, then ended with the request canceled
    work_once()

    reply = Message.objects.get(pk=reply_id)
    assert reply.status == "stopped" and BatchItem.objects.get().status == "canceled"
    assert Batch.objects.get().cancel_sent_at is not None and Batch.objects.get().status == "ended"
    assert not Reservation.objects.exists() and not ApiCall.objects.exists()


def test_cancelling_someone_elses_reply_is_refused(owner, outsider, conversation):
    reply_id = queue(owner, conversation).reply.pk

    with pytest.raises(Refusal) as refused:
        batch_services.reply_cancel(user_id=outsider.pk, conversation_id=conversation.pk, message_id=reply_id)
    assert refused.value.code == "not_queued"
    assert Message.objects.get(pk=reply_id).status == "queued"


def test_a_failed_submission_is_retried_then_fails_the_reply_and_releases_the_reservation(
    owner, conversation, monkeypatch
):
    reply_id = queue(owner, conversation).reply.pk
    calls = []

    async def refuse(self, **kwargs):
        calls.append(kwargs)
        raise anthropic.APIConnectionError(request=None)

    monkeypatch.setattr(anthropic.resources.messages.batches.AsyncBatches, "create", refuse)
    work_once()
    assert Batch.objects.get().status == "pending" and Message.objects.get(pk=reply_id).status == "queued"
    work_once()

    assert len(calls) == 2
    reply = Message.objects.get(pk=reply_id)
    assert reply.status == "failed" and "could not be sent" in reply.error
    assert Batch.objects.get().status == "failed" and not Reservation.objects.exists()
    assert not ApiCall.objects.exists()


def test_an_upstream_error_while_polling_is_retried_next_pass(owner, conversation, monkeypatch):
    reply_id = queue(owner, conversation).reply.pk
    work_once()
    real_retrieve = anthropic.resources.messages.batches.AsyncBatches.retrieve

    async def overloaded(self, *args, **kwargs):
        raise anthropic.APIConnectionError(request=None)

    monkeypatch.setattr(anthropic.resources.messages.batches.AsyncBatches, "retrieve", overloaded)
    work_once()
    assert Message.objects.get(pk=reply_id).status == "queued" and Batch.objects.get().error

    monkeypatch.setattr(anthropic.resources.messages.batches.AsyncBatches, "retrieve", real_retrieve)
    work_once()
    assert Message.objects.get(pk=reply_id).status == "complete"


def test_an_errored_request_fails_the_reply_without_billing(owner, conversation):
    reply_id = queue(owner, conversation).reply.pk
    BatchItem.objects.update(params={"model": "no-such-model", "max_tokens": 10,
                                     "messages": [{"role": "user", "content": "Hi"}], "temperature": 1})
    work_once()
    work_once()

    reply = Message.objects.get(pk=reply_id)
    assert reply.status == "failed" and "half-price request failed" in reply.error
    assert not ApiCall.objects.exists() and not Reservation.objects.exists()


def test_the_user_is_emailed_when_they_asked(owner, conversation, mailoutbox):
    owner.email, owner.batch_email = "owner@example.com", True
    owner.save()
    queue(owner, conversation)
    work_once()
    work_once()

    assert [mail.to for mail in mailoutbox] == [["owner@example.com"]]
    assert f"/conversations/{conversation.pk}/" in mailoutbox[0].body


def test_no_email_without_the_setting(owner, conversation, mailoutbox):
    owner.email = "owner@example.com"
    owner.save()
    queue(owner, conversation)
    work_once()
    work_once()
    assert mailoutbox == []


def test_the_worker_loop_function_settles_too(owner, conversation):
    reply_id = queue(owner, conversation).reply.pk

    asyncio.run(worker.batches_work_once())
    asyncio.run(worker.batches_work_once())

    assert Message.objects.get(pk=reply_id).status == "complete"


def test_the_email_is_a_choice_on_the_settings_page(owner, client):
    client.force_login(owner)
    page = client.get("/accounts/settings/").content.decode()
    assert "Email me when a half-price reply is ready" in page
    form = {"default_model": "", "system_prompt": "", "time_zone": "UTC", "theme": "", "monthly_cap": "",
            "batch_email": "on"}

    assert client.post("/accounts/settings/", form).status_code == 302

    owner.refresh_from_db()
    assert owner.batch_email
