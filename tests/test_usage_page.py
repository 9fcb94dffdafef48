"""The usage page: the signed-in user's own spend this month, by model, by day and by conversation."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import selectors
from chat import services
from chat.models import ApiCall

pytestmark = pytest.mark.django_db


def spend(user, dollars: str, model="claude-sonnet-5-5", conversation=None, **fields) -> ApiCall:
    return ApiCall.objects.create(user=user, conversation=conversation, model=model, cost=Decimal(dollars), **fields)


@pytest.fixture
def owner_spend(owner, conversation):
    spend(owner, "0.1234", conversation=conversation, input_tokens=1000, output_tokens=200)
    spend(owner, "0.0500", model="claude-haiku-4-5", conversation=conversation)
    last_month = spend(owner, "7.7777")
    ApiCall.objects.filter(pk=last_month.pk).update(created_at=selectors.month_start() - timedelta(hours=1))


def test_it_requires_login(client):
    response = client.get(reverse("usage"))

    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_it_shows_this_months_spend_by_model(client, owner, owner_spend, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("10")
    client.force_login(owner)

    response = client.get(reverse("usage"))

    body = response.content.decode()
    assert response.context["totals"]["cost"] == Decimal("0.1734")
    assert [(row["model"], row["cost"]) for row in response.context["by_model"]] == [
        ("claude-sonnet-5-5", Decimal("0.1234")), ("claude-haiku-4-5", Decimal("0.0500"))
    ]
    assert "$0.1734" in body and "$10.00" in body and "1% used" in body
    assert "7.7777" not in body


def test_it_shows_this_months_spend_by_day(client, owner, owner_spend):
    client.force_login(owner)

    response = client.get(reverse("usage"))

    bars = response.context["chart"]["bars"]
    today = timezone.now().date()
    assert len(bars) == today.day and bars[-1]["day"] == today
    assert sum(bar["cost"] for bar in bars) == Decimal("0.1734")
    assert "<svg" in response.content.decode()


def test_it_shows_the_cost_of_each_conversation(client, owner, conversation, owner_spend):
    deleted = services.conversation_create(owner=owner)
    spend(owner, "0.2000", conversation=deleted)
    services.conversation_delete(conversation=deleted)
    client.force_login(owner)

    response = client.get(reverse("usage"))

    rows = [(row["conversation_id"], row["cost"]) for row in response.context["by_conversation"]]
    assert rows == [(None, Decimal("0.2000")), (conversation.pk, Decimal("0.1734"))]
    assert "Deleted conversations" in response.content.decode()


def test_an_outsider_sees_only_their_own_usage(client, owner, outsider, owner_spend):
    spend(outsider, "0.0042", model="claude-opus-4-6")
    client.force_login(outsider)

    response = client.get(reverse("usage"))

    body = response.content.decode()
    assert response.context["totals"]["cost"] == Decimal("0.0042")
    assert "0.1234" not in body and "0.1734" not in body and "claude-sonnet-5-5" not in body
    assert "$0.0042" in body


def test_it_runs_a_fixed_number_of_queries(client, owner, owner_spend, django_assert_max_num_queries):
    client.force_login(owner)
    client.get(reverse("usage"))
    for _ in range(20):
        spend(owner, "0.01", conversation=services.conversation_create(owner=owner))

    with django_assert_max_num_queries(9):  # the ninth: the lines per API key (apikeys.selectors.spend_by_key)
        client.get(reverse("usage"))


def test_the_chat_header_shows_what_the_conversation_cost(client, owner, conversation, owner_spend):
    other = services.conversation_create(owner=owner)
    spend(owner, "5", conversation=other)
    client.force_login(owner)

    response = client.get(reverse("conversation_detail", args=[conversation.pk]))

    assert 'id="conversation-cost"' in response.content.decode()
    assert "$0.1734</span>" in response.content.decode()


def test_the_sidebar_links_to_the_usage_page(client, owner, conversation):
    client.force_login(owner)

    response = client.get(reverse("conversation_detail", args=[conversation.pk]))

    assert f'href="{reverse("usage")}"' in response.content.decode()
