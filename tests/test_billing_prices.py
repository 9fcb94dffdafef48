"""The ledger's money: prices from the database, cost of every kind of token, snapshots, the log line."""

import json
from decimal import Decimal

import pytest

from billing import selectors
from billing.models import Price
from chat import services
from chat.llm.catalog import MODELS, UNKNOWN_MODEL_PRICES
from chat.llm.pricing import TokenUsage, usage_cost
from chat.models import ApiCall, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def test_price():
    """Round numbers, and cache prices that are not the catalog's multiples, to prove the row's are used."""
    return Price.objects.create(
        model="claude-test-1", input=Decimal("3"), output=Decimal("15"), cache_write_5m=Decimal("3.75"),
        cache_write_1h=Decimal("6"), cache_read=Decimal("0.30"),
    )


def finish(owner, conversation, usage: TokenUsage, model: str = "claude-sonnet-5-5") -> ApiCall:
    message = Message.objects.create(conversation=conversation, role="assistant", status="streaming", model=model)
    services.message_finish(
        message_id=message.pk, user_id=owner.pk, conversation_id=conversation.pk, status="complete", content=[],
        seq=0, model=model, usage=usage, stop_reason="end_turn", first_token_ms=120, duration_ms=900,
        attempts=[services.UpstreamAttempt(http_status=200, request_id="req_test")],
    )
    return ApiCall.objects.get(message=message)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (TokenUsage(input_tokens=1_000_000), "3.000000"),  # 1M x $3
        (TokenUsage(output_tokens=2_000), "0.030000"),  # 2,000 x $15 / 1M
        (TokenUsage(cache_read_input_tokens=10_000), "0.003000"),  # 10,000 x $0.30 / 1M
        (TokenUsage(cache_creation_5m_input_tokens=4_000), "0.015000"),  # 4,000 x $3.75 / 1M
        (TokenUsage(cache_creation_1h_input_tokens=5_000), "0.030000"),  # 5,000 x $6 / 1M
        (TokenUsage(1_000_000, 2_000, 10_000, 4_000, 5_000), "3.078000"),  # the five above together
        (TokenUsage(cache_read_input_tokens=7), "0.000002"),  # $0.0000021, to the micro-dollar
    ],
)
def test_each_kind_of_token_costs_its_own_price(owner, conversation, test_price, usage, expected):
    assert usage_cost(usage, test_price) == Decimal(expected)
    assert finish(owner, conversation, usage, model="claude-test-1").cost == Decimal(expected)


def test_the_price_table_is_seeded_from_the_catalog():
    seeded = {price.model: price for price in Price.objects.all()}

    for spec in MODELS:
        price = seeded[spec.id]
        assert (price.input, price.output) == (spec.prices.input, spec.prices.output)
        assert (price.cache_write_5m, price.cache_write_1h, price.cache_read) == (
            spec.prices.cache_write_5m, spec.prices.cache_write_1h, spec.prices.cache_read
        )


def test_a_call_stores_the_prices_it_was_charged(owner, conversation, test_price):
    call = finish(owner, conversation, TokenUsage(input_tokens=10), model="claude-test-1")

    assert call.price_snapshot == {
        "input": "3", "output": "15", "cache_write_5m": "3.75", "cache_write_1h": "6", "cache_read": "0.3"
    }


def test_a_price_change_leaves_past_calls_alone(owner, conversation, test_price):
    usage = TokenUsage(input_tokens=1_000, output_tokens=1_000)
    before = finish(owner, conversation, usage, model="claude-test-1")

    Price.objects.filter(pk=test_price.pk).update(input=Decimal("6"), output=Decimal("30"))
    after = finish(owner, conversation, usage, model="claude-test-1")

    before.refresh_from_db()
    assert before.cost == Decimal("0.018000") and before.price_snapshot["input"] == "3"
    assert after.cost == Decimal("0.036000") and after.price_snapshot["input"] == "6"
    assert Message.objects.get(pk=before.message_id).cost == Decimal("0.018000")


def test_an_unknown_model_is_charged_the_conservative_default(owner, conversation):
    call = finish(owner, conversation, TokenUsage(input_tokens=1_000_000), model="claude-mystery-9")

    assert call.cost == UNKNOWN_MODEL_PRICES.input
    assert call.price_snapshot["output"] == str(UNKNOWN_MODEL_PRICES.output)


def test_a_catalog_model_without_a_row_is_charged_its_list_price():
    Price.objects.filter(model="claude-haiku-4-5").delete()

    assert selectors.price_for_model("claude-haiku-4-5").as_dict()["input"] == "1"


def test_each_upstream_call_logs_one_structured_line(owner, conversation, caplog):
    caplog.set_level("INFO", logger="chat.ledger")

    call = finish(owner, conversation, TokenUsage(100, 50, 30, 20, 10))

    lines = [record.getMessage() for record in caplog.records if record.name == "chat.ledger"]
    assert len(lines) == 1 and lines[0].startswith("api_call ")
    logged = json.loads(lines[0].removeprefix("api_call "))
    assert logged == {
        "user": owner.pk, "conversation": conversation.pk, "message": call.message_id,
        "model": "claude-sonnet-5-5", "purpose": "reply", "api_key": None, "status": "ok", "input_tokens": 100,
        "output_tokens": 50,
        "cache_read_input_tokens": 30, "cache_creation_5m_input_tokens": 20, "cache_creation_1h_input_tokens": 10,
        "cost": str(call.cost), "server_tool_use": {}, "latency_ms": 900, "first_token_ms": 120, "stop_reason": "end_turn",
        "request_id": "req_test", "http_status": 200, "attempt": 1, "is_retry": False, "is_fallback": False,
    }
