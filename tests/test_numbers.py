"""Numbers that are right: costs as money everywhere in the admin, input totals with the cached input, the
model picker's descriptions, and the conversation's system prompt and thinking level under the composer.

The chat page's own numbers (a reply's tokens, the header's cost after Continue, "Stopped at the length
limit.") are drawn by its script: tests/test_browser_numbers.py checks them in Chromium."""

import re
from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse
from transcripts import message_appended

from billing.models import BudgetAlert, Price, Reservation
from billing.money import money
from chat.llm.catalog import MODELS, model_description
from chat.models import ApiCall
from chat.views import model_choices
from teams.models import Team

pytestmark = pytest.mark.django_db

RAW_DECIMAL = re.compile(r"\b\d+\.\d{5,}\b")  # "0.012300", "17.1700000000000" (a SQLite sum)


@pytest.fixture
def staff_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1")
    client.force_login(admin)
    return client


@pytest.fixture
def reply(owner, conversation):
    """A reply continued once: two ledger rows, its cost their sum, most of its input read from the cache."""
    message_appended(conversation, role="user", text="Tell me a long story.")
    reply = message_appended(
        conversation, role="assistant", text="Once upon a time", input_tokens=345, output_tokens=200,
        cache_read_input_tokens=12_000, cost=Decimal("0.012300"), stop_reason="max_tokens",
    )
    for cost in ("0.005100", "0.007200"):
        ApiCall.objects.create(
            user=owner, conversation=conversation, message=reply, model="claude-sonnet-5-5", input_tokens=345,
            output_tokens=100, cache_read_input_tokens=6_000, cost=Decimal(cost), latency_ms=1234,
        )
    return reply


@pytest.mark.parametrize(("amount", "places", "shown"), [
    ("0.012300", 4, "$0.0123"),
    ("17.1700000000000", 4, "$17.1700"),
    ("1234.5", 4, "$1,234.5000"),
    ("10", 2, "$10.00"),
    ("0", 4, "$0.0000"),
    ("0.000012", 4, "$0.000012"),
])
def test_money_reads_as_dollars_and_never_hides_a_real_charge(amount, places, shown):
    assert money(Decimal(amount), places) == shown


def test_money_refuses_what_is_not_a_number():
    with pytest.raises(ArithmeticError):
        money("twelve")


@pytest.mark.parametrize("page", ["changelist", "change"])
def test_the_ledger_shows_each_cost_as_money(staff_client, reply, page):
    call = ApiCall.objects.order_by("id").first()
    args = [call.pk] if page == "change" else []

    body = staff_client.get(reverse(f"admin:chat_apicall_{page}", args=args)).content.decode()

    assert "$0.0051" in body
    assert "0.005100" not in body and not RAW_DECIMAL.search(body)
    if page == "changelist":
        assert "$0.0123" in body  # the totals of the filtered rows


def test_the_ledger_detail_page_shows_each_field_once(staff_client, reply):
    call = ApiCall.objects.order_by("id").first()

    response = staff_client.get(reverse("admin:chat_apicall_change", args=[call.pk]))

    form = response.context["adminform"]
    shown = [line.field["name"] for fieldset in form for row in fieldset for line in row]
    assert shown.count("cost_shown") == 1 and "cost" not in shown
    assert shown.index("cost_shown") == [field.name for field in ApiCall._meta.fields].index("cost")


@pytest.mark.parametrize(("name", "args"), [
    ("chat_message_changelist", []), ("chat_message_change", ["reply"]),
    ("chat_conversation_changelist", []), ("chat_conversation_change", ["conversation"]),
])
def test_messages_and_conversations_show_their_cost_as_money(staff_client, reply, conversation, name, args):
    objects = {"reply": reply.pk, "conversation": conversation.pk}

    body = staff_client.get(reverse(f"admin:{name}", args=[objects[arg] for arg in args])).content.decode()

    assert "$0.0123" in body
    assert not RAW_DECIMAL.search(body)


def test_a_message_cost_cannot_be_edited_in_the_admin(staff_client, reply):
    response = staff_client.get(reverse("admin:chat_message_change", args=[reply.pk]))

    assert 'name="cost"' not in response.content.decode()


@pytest.fixture
def holds(owner, reply):
    team = Team.objects.create(name="Research", monthly_budget=Decimal("250"))
    Reservation.objects.create(user=owner, message=reply, amount=Decimal("0.843750"), max_tokens=4096)
    BudgetAlert.objects.create(user=owner, month=date(2026, 11, 1), threshold=80, spent=Decimal("8.123456"),
                               budget=Decimal("10"))
    return team


@pytest.mark.parametrize(("model", "shown"), [
    ("billing_reservation", ["$0.8438"]), ("billing_budgetalert", ["$8.1235", "$10.00"]),
    ("teams_team", ["$250.00"]),
])
def test_reservations_alerts_and_budgets_show_money_in_their_lists(staff_client, holds, model, shown):
    body = staff_client.get(reverse(f"admin:{model}_changelist")).content.decode()

    assert all(amount in body for amount in shown)
    assert not RAW_DECIMAL.search(body)


@pytest.mark.parametrize(("model", "shown"), [
    (Reservation, ["$0.8438"]), (BudgetAlert, ["$8.1235", "$10.00"]),
])
def test_reservations_and_alerts_show_money_on_their_detail_pages(staff_client, holds, model, shown):
    row = model.objects.get()
    url = reverse(f"admin:billing_{model._meta.model_name}_change", args=[row.pk])

    body = staff_client.get(url).content.decode()

    assert all(amount in body for amount in shown)
    assert not RAW_DECIMAL.search(body)


def test_reservations_are_for_staff_only(client, outsider, holds):
    client.force_login(outsider)

    response = client.get(reverse("admin:billing_reservation_changelist"))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_usage_page_counts_cached_input_as_input(client, owner, reply):
    client.force_login(owner)

    response = client.get(reverse("usage"))

    (row,) = response.context["by_model"]
    assert row["input_tokens"] == 2 * (345 + 6_000) and row["cached_input_tokens"] == 12_000
    body = response.content.decode()
    assert "Input tokens (cached included)" in body and "Of which cached" in body
    assert "<td>12690</td><td>12000</td>" in body


def test_an_outsider_sees_none_of_anothers_input_on_the_usage_page(client, outsider, reply):
    client.force_login(outsider)

    response = client.get(reverse("usage"))

    assert response.context["by_model"] == []


def test_every_model_in_the_picker_says_what_it_is_good_at_what_it_costs_and_supports():
    choices = model_choices()

    assert choices[0]["id"] == "auto" and "Picks a model for each message" in choices[0]["description"]
    sonnet = next(choice for choice in choices if choice["id"] == "claude-sonnet-5-5")
    assert sonnet["description"] == (
        "Balanced: everyday writing, analysis and code, quick and able. "
        "$3 in / $15 out per million tokens. Supports thinking, images, PDFs."
    )
    assert {choice["id"] for choice in choices[1:]} == {spec.id for spec in MODELS}
    assert all("per million tokens" in choice["description"] for choice in choices[1:])


def test_the_picker_shows_the_prices_the_admins_set(django_assert_num_queries):
    Price.objects.update_or_create(model="claude-haiku-4-5", defaults={
        "input": Decimal("0.8"), "output": Decimal("4"), "cache_write_5m": Decimal("1"),
        "cache_write_1h": Decimal("1.6"), "cache_read": Decimal("0.08"),
    })

    with django_assert_num_queries(1):
        choices = model_choices()

    haiku = next(choice for choice in choices if choice["id"] == "claude-haiku-4-5")
    assert "$0.8 in / $4 out per million tokens" in haiku["description"]


def test_a_model_without_images_or_thinking_says_so():
    spec = next(spec for spec in MODELS if spec.id == "claude-haiku-4-5")
    plain = type(spec)(spec.id, spec.display_name, spec.family, spec.context_window, spec.max_output,
                       spec.prices, vision=False, pdf=False, thinking="")

    assert model_description(plain).endswith("Supports text only.")


def test_the_chat_page_describes_the_chosen_model(client, owner, conversation):
    conversation.model = "claude-opus-5-5"
    conversation.save(update_fields=["model"])
    client.force_login(owner)

    body = client.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()

    line = re.search(r'<p class="model-description" id="model-description">(.*?)</p>', body).group(1)
    assert line.startswith("<strong>Claude Opus 5.5</strong>: The most capable") and "$5 in / $25 out" in line
    assert 'aria-describedby="model-description"' in body
    assert body.count("data-description=") == len(MODELS) + 1


def test_the_composer_shows_the_system_prompts_first_line_and_the_thinking_level(client, owner, conversation):
    conversation.system_prompt = "You are a patient tutor who explains " + "step " * 40 + "\nSecond line."
    conversation.thinking = "medium"
    conversation.save(update_fields=["system_prompt", "thinking"])
    client.force_login(owner)

    body = client.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()

    summary = re.search(r'id="settings-summary"[^>]*>(.*?)</button>', body).group(1)
    assert "System prompt: <span class=\"conversation-summary-prompt\">You are a patient tutor" in summary
    assert "…" in summary and "Second line" not in summary
    assert summary.endswith("Thinking: Medium")


def test_a_conversation_without_a_system_prompt_says_none(client, owner, conversation):
    client.force_login(owner)

    body = client.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()

    assert 'System prompt: <span class="conversation-summary-prompt">none</span> · Thinking: Off' in body


def test_an_outsider_gets_a_404_for_anothers_conversation_page(client, outsider, conversation):
    conversation.system_prompt = "Secret instructions"
    conversation.save(update_fields=["system_prompt"])
    client.force_login(outsider)

    response = client.get(reverse("conversation_detail", args=[conversation.pk]))

    assert response.status_code == 404 and b"Secret instructions" not in response.content
