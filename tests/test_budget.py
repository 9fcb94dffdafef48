"""Monthly budgets: checked with an estimate before a request, settled with the ledger, alerts to the admins."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.db import IntegrityError
from django.urls import reverse

from billing import selectors, services
from billing.models import BudgetAlert, Reservation
from chat import services as chat_services
from chat.llm.pricing import TokenUsage
from chat.models import ApiCall, Attachment, Message
from tests.test_settings import manage
from tests.transcripts import message_appended

pytestmark = pytest.mark.django_db


def spend(user, dollars: str, **fields) -> ApiCall:
    return ApiCall.objects.create(user=user, model="claude-sonnet-5-5", cost=Decimal(dollars), **fields)


def admit(user, conversation, text="Hello", model="claude-sonnet-5-5", max_tokens=4096, **kwargs) -> services.Hold:
    return services.request_admit(
        user=user, conversation=conversation, text=text, model=model, max_tokens=max_tokens, **kwargs
    )


def refusal(user, conversation, **kwargs) -> services.RequestRefused:
    with pytest.raises(services.RequestRefused) as refused:
        admit(user, conversation, **kwargs)
    return refused.value


def settle(user, conversation, dollars: str) -> None:
    """A reply settled through the one writer of the ledger, as a generation would."""
    spend(user, dollars)
    chat_services.message_finish(
        message_id=0, user_id=user.pk, conversation_id=conversation.pk, status="complete", content=[], seq=0,
        model="claude-sonnet-5-5", usage=TokenUsage(output_tokens=1), attempts=[],
    )


def test_a_user_under_budget_is_admitted(owner, conversation, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("10")
    spend(owner, "5")

    admit(owner, conversation)


def test_a_user_who_spent_the_budget_is_refused_with_a_clear_message(owner, conversation, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("10")
    spend(owner, "10")

    refused = refusal(owner, conversation)

    assert refused.code == "budget_exceeded"
    assert "monthly budget of $10.00" in refused.detail and "$10.00 spent" in refused.detail


def test_a_user_under_budget_is_admitted_with_the_whole_replys_worst_case_held(owner, conversation, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("10")
    settings.CHAT_TOOL_MAX_ROUNDS = 2
    spend(owner, "5")

    hold = admit(owner, conversation, max_tokens=1000)

    # Three requests (two tool rounds), each priced with every input token a cache write and a full answer.
    window = selectors.model_spec("claude-sonnet-5-5").context_window
    expected = sum(
        ((min(hold.input_tokens + selectors.REQUEST_OVERHEAD_TOKENS + r * (1000 + selectors.TOOL_RESULT_TOKENS), window) * Decimal("3.75")
          + 1000 * 15) / Decimal(1_000_000)).quantize(Decimal("0.000001"))
        for r in range(3)
    )
    assert (hold.amount, hold.max_tokens, hold.tool_rounds, hold.notice) == (expected, None, None, "")


def one_request_worst_case(input_tokens: int, write_price: str) -> Decimal:
    """One request of claude-sonnet-5-5 with every input token written to the cache and a 1000-token answer."""
    tokens = input_tokens + selectors.REQUEST_OVERHEAD_TOKENS
    return ((tokens * Decimal(write_price) + 1000 * 15) / Decimal(1_000_000)).quantize(Decimal("0.000001"))


def test_a_conversation_kept_an_hour_in_the_cache_reserves_its_writes_at_the_hour_price(
    owner, conversation, settings
):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("10")
    settings.CHAT_TOOL_MAX_ROUNDS = 0
    five_minutes = admit(owner, conversation, max_tokens=1000)
    conversation.cache_ttl = "1h"
    conversation.save(update_fields=["cache_ttl"])

    one_hour = admit(owner, conversation, max_tokens=1000)

    assert five_minutes.amount == one_request_worst_case(five_minutes.input_tokens, "3.75")
    assert one_hour.amount == one_request_worst_case(one_hour.input_tokens, "6"), "2x input, not 1.25x"


def test_a_long_document_reserves_the_hour_price_even_in_a_five_minute_conversation(
    owner, conversation, settings
):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("100")
    settings.CHAT_TOOL_MAX_ROUNDS = 0
    settings.CACHE_1H_MIN_TOKENS = 5_000
    short = Attachment.objects.create(
        owner=owner, kind=Attachment.Kind.TEXT, name="short.txt", sha256="a" * 64, media_type="text/plain",
        file="x.txt", size=10, tokens=4_999,
    )
    held_for_short = admit(owner, conversation, max_tokens=1000, attachment_ids=[short.pk])
    assert held_for_short.amount == one_request_worst_case(held_for_short.input_tokens, "3.75")
    long = Attachment.objects.create(
        owner=owner, kind=Attachment.Kind.PDF, name="long.pdf", sha256="b" * 64, media_type="application/pdf",
        file="y.pdf", size=10, tokens=5_000,
    )

    hold = admit(owner, conversation, max_tokens=1000, attachment_ids=[long.pk])

    assert hold.amount == one_request_worst_case(hold.input_tokens, "6")


def test_open_reservations_count_against_the_budget(owner, conversation, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("1")
    Reservation.objects.create(user=owner, amount=Decimal("1"))

    refused = refusal(owner, conversation)

    assert refused.code == "budget_exceeded" and "$1.00 is held for replies being written" in refused.detail


def test_when_the_budget_cannot_cover_tool_rounds_the_reply_makes_none(owner, conversation, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("1")
    spend(owner, "0.9")  # $0.10 left: one 4,096-token Sonnet answer ($0.06) fits, six of them do not

    hold = admit(owner, conversation)

    assert (hold.max_tokens, hold.tool_rounds) == (None, 0) and "no tool calls" in hold.notice
    assert hold.amount <= Decimal("0.1")


def test_when_the_budget_cannot_cover_a_full_answer_the_answer_is_shortened_not_refused(
    owner, conversation, settings
):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("1")
    spend(owner, "0.97")  # $0.03 left; 4,096 output tokens of Sonnet alone cost $0.061

    hold = admit(owner, conversation)

    assert hold.tool_rounds == 0 and services.MIN_REPLY_TOKENS <= hold.max_tokens < 4096
    assert f"limited to about {hold.max_tokens:,} tokens" in hold.notice
    assert hold.amount <= Decimal("0.03")


def test_a_request_that_cannot_buy_even_a_short_answer_is_refused(owner, conversation, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("1")
    spend(owner, "0.999")  # a tenth of a cent: not 256 tokens of Sonnet

    refused = refusal(owner, conversation)

    assert refused.code == "budget_exceeded" and "Even a short reply could cost up to" in refused.detail


def test_the_estimate_covers_the_history_and_a_full_reply(owner, conversation, settings):
    settings.CHAT_MAX_OUTPUT_TOKENS = 1000
    message_appended(conversation, role="user", text="x" * 4000)

    estimate = selectors.request_estimate(conversation=conversation, text="y" * 400, model="claude-sonnet-5-5")

    assert estimate.input_tokens > (4000 + 400) // 4 and estimate.output_tokens == 1000
    assert estimate.cost == (estimate.input_tokens * 3 + 1000 * 15) / Decimal(1_000_000)


def test_the_estimate_counts_the_attachments_of_the_conversation_and_of_the_new_message(
    owner, outsider, conversation
):
    def upload(owner, tokens, message=None):
        return Attachment.objects.create(owner=owner, message=message, kind="image", name="a.png", sha256="0" * 64,
                                         media_type="image/png", file="a.png", size=1, tokens=tokens)

    sent = message_appended(conversation, role="user", content=[])
    elsewhere = Message.objects.create(conversation=chat_services.conversation_create(owner=owner), role="user")
    upload(owner, 1_500, message=sent)
    upload(owner, 7_000, message=elsewhere)
    new = upload(owner, 800)
    foreign = upload(outsider, 9_000)
    base = selectors.request_estimate(conversation=conversation, text="Hi", model="claude-sonnet-5-5").input_tokens

    estimate = selectors.request_estimate(
        conversation=conversation, text="Hi", model="claude-sonnet-5-5", attachment_ids=[new.pk, foreign.pk]
    )

    assert estimate.input_tokens == base + 800


def test_only_this_months_spend_counts(owner, conversation, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("10")
    old = spend(owner, "50")
    ApiCall.objects.filter(pk=old.pk).update(created_at=selectors.month_start() - timedelta(seconds=1))

    admit(owner, conversation)


def test_a_users_own_budget_overrides_the_site_default(owner, conversation, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("1")
    spend(owner, "5")
    owner.monthly_budget = Decimal("100")
    owner.save()

    admit(owner, conversation)


def test_a_zero_budget_refuses_everything(owner, conversation):
    owner.monthly_budget = Decimal("0")
    owner.save()

    assert refusal(owner, conversation).code == "budget_exceeded"


def test_without_a_site_default_there_is_no_budget(owner, conversation, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = None
    spend(owner, "1000")

    admit(owner, conversation)


def test_another_users_spend_does_not_count(owner, outsider, conversation, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("10")
    spend(outsider, "10")

    admit(owner, conversation)


def test_admins_are_emailed_once_per_month_at_80_and_at_100_percent(owner, conversation, settings, mailoutbox):
    settings.ADMINS = [("Ops", "ops@example.com")]
    owner.monthly_budget = Decimal("10")
    owner.save()

    settle(owner, conversation, "7.00")
    assert mailoutbox == []
    settle(owner, conversation, "1.50")
    settle(owner, conversation, "0.10")
    assert [mail.subject for mail in mailoutbox] == ["[Claude chat] owner has used 80% of their monthly budget"]
    settle(owner, conversation, "2.00")
    settle(owner, conversation, "1.00")

    assert len(mailoutbox) == 2 and "100%" in mailoutbox[1].subject
    assert mailoutbox[1].to == ["ops@example.com"] and "$10.60 of their $10.00" in mailoutbox[1].body
    assert list(BudgetAlert.objects.values_list("threshold", flat=True).order_by("threshold")) == [80, 100]


def test_last_months_alert_does_not_silence_this_months(owner, conversation, settings, mailoutbox):
    settings.ADMINS = [("Ops", "ops@example.com")]
    owner.monthly_budget = Decimal("10")
    owner.save()
    last_month = (selectors.month_start() - timedelta(days=1)).replace(day=1).date()
    BudgetAlert.objects.create(user=owner, month=last_month, threshold=80, spent=8, budget=10)

    settle(owner, conversation, "8")

    assert len(mailoutbox) == 1


def test_an_alert_exists_once_per_user_month_and_threshold(owner):
    month = selectors.month_start().date()
    BudgetAlert.objects.create(user=owner, month=month, threshold=80, spent=8, budget=10)

    with pytest.raises(IntegrityError):
        BudgetAlert.objects.create(user=owner, month=month, threshold=80, spent=9, budget=10)


def test_the_chat_page_warns_at_80_percent(client, owner, conversation, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("10")
    spend(owner, "8.50")
    client.force_login(owner)

    response = client.get(reverse("conversation_detail", args=[conversation.pk]))

    assert response.context["budget_status"].warning and response.context["budget_status"].percent == 85
    assert "85% of your monthly budget" in response.content.decode()


def test_the_chat_page_says_when_the_budget_is_spent(client, owner, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("10")
    spend(owner, "10")
    client.force_login(owner)

    response = client.get(reverse("home"))

    assert "You have used your whole monthly budget of $10.00" in response.content.decode()


def test_the_chat_page_has_no_warning_below_80_percent(client, owner, conversation, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("10")
    spend(owner, "7.99")
    client.force_login(owner)

    response = client.get(reverse("conversation_detail", args=[conversation.pk]))

    assert not response.context["budget_status"].warning
    assert "of your monthly budget" not in response.content.decode()


def test_a_budget_that_is_not_a_number_stops_start_up():
    result = manage("check", CHAT_DEFAULT_MONTHLY_BUDGET="twenty")

    assert result.returncode != 0 and "CHAT_DEFAULT_MONTHLY_BUDGET" in result.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_over_budget_the_send_is_refused_before_anything_is_stored_or_sent(
    socket_for, owner, conversation, offline_model_reset, monkeypatch
):
    upstream_requests = []
    handle = offline_model_reset.handle
    monkeypatch.setattr(offline_model_reset, "handle", lambda request: upstream_requests.append(request) or handle(request))
    owner.monthly_budget = Decimal("1")
    await database_sync_to_async(owner.save)()
    await database_sync_to_async(spend)(owner, "1")
    socket = await socket_for(owner, conversation.pk)
    assert (await socket.connect())[0]

    await socket.send_json_to({"type": "send", "text": "One more?"})
    frame = await socket.receive_json_from(timeout=10)
    await asyncio.sleep(0.1)

    assert (frame["type"], frame["code"]) == ("error", "budget_exceeded") and "$1.00" in frame["detail"]
    assert await socket.receive_nothing(timeout=0.2)
    assert upstream_requests == []
    assert await database_sync_to_async(Message.objects.filter(conversation=conversation).count)() == 0
