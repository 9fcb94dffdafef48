"""The admin's view of the money: the ledger with totals and CSV export, the usage dashboard, prices, budgets."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from billing.models import Price
from chat.models import ApiCall

pytestmark = pytest.mark.django_db

SNAPSHOT = {"input": "3", "output": "15", "cache_write_5m": "3.75", "cache_write_1h": "6", "cache_read": "0.3"}


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1"))
    return client


def call(user, model="claude-sonnet-5-5", cost="0", days_ago=0, **fields) -> ApiCall:
    row = ApiCall.objects.create(user=user, model=model, cost=Decimal(cost), price_snapshot=SNAPSHOT, **fields)
    if days_ago:
        ApiCall.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return row


@pytest.fixture
def ledger(owner, outsider):
    """Rows whose sums are easy to compute by hand."""
    return [
        call(owner, cost="0.100000", input_tokens=100, output_tokens=10, cache_read_input_tokens=1_000_000),
        call(owner, model="claude-haiku-4-5", cost="0.020000", input_tokens=200, output_tokens=20,
             cache_creation_5m_input_tokens=300, is_fallback=True),
        call(owner, cost="0", status=ApiCall.Status.ERROR, http_status=529),
        call(outsider, model="claude-opus-4-6", cost="0.500000", input_tokens=400, output_tokens=40,
             cache_creation_1h_input_tokens=500, days_ago=2),
        call(outsider, cost="9.000000", input_tokens=999, days_ago=40),  # outside the last 30 days
    ]


# --- the ledger changelist -------------------------------------------------------------------------------


def test_the_ledger_totals_are_the_sums_of_the_filtered_rows(staff_client, owner, ledger):
    response = staff_client.get(reverse("admin:chat_apicall_changelist"), {"user__id__exact": owner.pk})

    totals = response.context["totals"]
    rows = ApiCall.objects.filter(user=owner)
    assert totals["calls"] == 3 == response.context["cl"].result_count
    assert totals["cost"] == sum(row.cost for row in rows) == Decimal("0.12")
    assert totals["input_tokens"] == 300 and totals["cache_read_input_tokens"] == 1_000_000
    assert (totals["errors"], totals["fallbacks"]) == (1, 1)
    assert "Totals of the 3 filtered rows" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "count"),
    [({"model": "claude-haiku-4-5"}, 1), ({"status__exact": "error"}, 1), ({"is_fallback__exact": "1"}, 1),
     ({"created_at__gte": str(timezone.now() - timedelta(days=7))}, 4)],
)
def test_the_ledger_filters_by_model_status_fallback_and_date(staff_client, ledger, query, count):
    response = staff_client.get(reverse("admin:chat_apicall_changelist"), query)

    assert response.context["cl"].result_count == count == response.context["totals"]["calls"]


def test_the_ledger_has_a_date_hierarchy(staff_client, ledger):
    today = timezone.now()

    response = staff_client.get(
        reverse("admin:chat_apicall_changelist"),
        {"created_at__year": today.year, "created_at__month": today.month, "created_at__day": today.day},
    )

    assert response.context["totals"]["calls"] == 3


def test_csv_export_contains_the_filtered_rows_only(staff_client, owner, ledger):
    changelist = reverse("admin:chat_apicall_changelist")
    page = staff_client.get(changelist, {"user__id__exact": owner.pk, "model": "claude-sonnet-5-5"})
    export_url = reverse("admin:chat_apicall_export") + page.context["cl"].get_query_string()
    assert escape(export_url) in page.content.decode()

    response = staff_client.get(export_url)

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert sorted(int(row["id"]) for row in rows) == sorted(
        ApiCall.objects.filter(user=owner, model="claude-sonnet-5-5").values_list("id", flat=True)
    )
    assert {row["user__username"] for row in rows} == {"owner"} and len(rows) == 2


def test_csv_export_needs_permission_to_read_the_ledger(client, django_user_model, ledger):
    client.force_login(django_user_model.objects.create_user("clerk", password="x-clerk-pass-1", is_staff=True))

    assert client.get(reverse("admin:chat_apicall_export")).status_code == 403


def test_csv_export_is_not_for_visitors(client, ledger):
    response = client.get(reverse("admin:chat_apicall_export"))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- the dashboard ---------------------------------------------------------------------------------------


def test_the_dashboard_agrees_with_the_rows(staff_client, owner, outsider, ledger):
    response = staff_client.get(reverse("admin_usage"))

    context = response.context
    recent = ledger[:4]
    assert context["totals"]["cost"] == sum(row.cost for row in recent) == Decimal("0.62")
    assert context["totals"]["calls"] == 4
    assert sum(bar["cost"] for bar in context["chart"]["bars"]) == Decimal("0.62")
    assert len(context["chart"]["bars"]) == 30
    assert [(row["model"], row["cost"]) for row in context["by_model"]] == [
        ("claude-opus-4-6", Decimal("0.5")), ("claude-sonnet-5-5", Decimal("0.1")), ("claude-haiku-4-5", Decimal("0.02"))
    ]
    assert [(row["user__username"], row["cost"]) for row in context["by_user"]] == [
        ("outsider", Decimal("0.5")), ("owner", Decimal("0.12"))
    ]
    # Cache reads over every input token: 1,000,000 / (700 uncached + 1,000,000 read + 300 + 500 written).
    assert context["cache_hit_percent"] == pytest.approx(100 * 1_000_000 / 1_001_500)
    # The reads at $0.30 instead of $3 per million, less the writes above $3: 300 at $3.75, 500 at $6.
    assert context["cache_savings"] == Decimal("2.7") - Decimal("0.000225") - Decimal("0.0015")
    assert (context["error_percent"], context["fallback_percent"]) == (25.0, 25.0)
    body = response.content.decode()
    assert "<svg" in body and "$0.6200" in body and "$2.6983" in body


def test_the_dashboard_covers_the_period_asked_for(staff_client, ledger):
    response = staff_client.get(reverse("admin_usage"), {"days": "90"})

    assert response.context["totals"]["calls"] == 5 and len(response.context["chart"]["bars"]) == 90


def test_the_dashboard_shows_the_top_ten_users(staff_client, django_user_model):
    for number in range(12):
        call(django_user_model.objects.create_user(f"user{number:02}"), cost=f"{number + 1}")

    response = staff_client.get(reverse("admin_usage"))

    names = [row["user__username"] for row in response.context["by_user"]]
    assert names == [f"user{number:02}" for number in range(11, 1, -1)]


def test_the_dashboard_is_linked_from_the_admin_index(staff_client):
    response = staff_client.get(reverse("admin:index"))

    assert reverse("admin_usage") in response.content.decode()


def test_the_dashboard_needs_permission_to_read_the_ledger(client, django_user_model):
    clerk = django_user_model.objects.create_user("clerk", password="x-clerk-pass-1", is_staff=True)
    client.force_login(clerk)
    assert client.get(reverse("admin_usage")).status_code == 403

    clerk.user_permissions.add(Permission.objects.get(codename="view_apicall"))

    assert client.get(reverse("admin_usage")).status_code == 200


def test_the_dashboard_is_not_for_visitors_or_users(client, owner):
    assert "/admin/login/" in client.get(reverse("admin_usage"))["Location"]
    client.force_login(owner)
    assert "/admin/login/" in client.get(reverse("admin_usage"))["Location"]


# --- prices and users ------------------------------------------------------------------------------------


def test_admins_edit_prices(staff_client):
    price = Price.objects.get(model="claude-sonnet-5-5")

    response = staff_client.post(
        reverse("admin:billing_price_change", args=[price.pk]),
        {"model": price.model, "input": "4", "output": "20", "cache_write_5m": "5", "cache_write_1h": "8",
         "cache_read": "0.4"},
    )

    assert response.status_code == 302
    price.refresh_from_db()
    assert (price.input, price.cache_read) == (Decimal("4"), Decimal("0.4"))


@pytest.mark.parametrize("model", ["price", "budgetalert"])
def test_the_billing_changelists_render(staff_client, model):
    assert staff_client.get(reverse(f"admin:billing_{model}_changelist")).status_code == 200


def test_the_user_page_shows_budget_and_limits_with_this_months_spend(staff_client, owner, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("20")
    call(owner, cost="1.5")
    call(owner, cost="5", days_ago=40)

    response = staff_client.get(reverse("admin:accounts_user_change", args=[owner.pk]))

    body = response.content.decode()
    assert "$1.5000 of $20.00 (7%)" in body
    for field in ("monthly_budget", "rate_limit_requests_per_minute", "rate_limit_tokens_per_minute"):
        assert f'name="{field}"' in body


def test_admins_set_a_users_budget_and_limits(staff_client, owner):
    url = reverse("admin:accounts_user_change", args=[owner.pk])
    form = staff_client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(date_joined_0=owner.date_joined.strftime("%Y-%m-%d"), date_joined_1="00:00:00",
                monthly_budget="50", rate_limit_requests_per_minute="5", rate_limit_tokens_per_minute="")
    data.pop("groups", None), data.pop("user_permissions", None), data.pop("last_login", None)

    response = staff_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    owner.refresh_from_db()
    assert (owner.monthly_budget, owner.rate_limit_requests_per_minute) == (Decimal("50"), 5)
    assert owner.rate_limit_tokens_per_minute is None
