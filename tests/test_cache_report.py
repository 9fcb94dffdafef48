"""The cache report: hit rate and dollars saved by model, user, group and day, for admins and group managers, from
the ledger's rows priced at their own snapshots; its pages, its scoping and its CSV."""

import csv
import io
import itertools
import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from cluster import drop_postgres_database, fresh_postgres_database, postgres_reachable, require
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from test_consumer import connected, frames_until_final

from billing import cache_report
from billing.ledger import UpstreamAttempt, UpstreamRequest, ledger_record
from billing.models import Price
from billing.selectors import calls_since, month_start
from billing.views import CACHE_CSV_HEADER
from chat.llm.pricing import TokenUsage
from chat.models import ApiCall
from teams.models import Membership, Team
from tests.group_personas import group_personas

pytestmark = pytest.mark.django_db

SONNET, HAIKU = "claude-sonnet-5-5", "claude-haiku-5-5"
settle_keys = itertools.count()


@pytest.fixture
def people():
    return group_personas()


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(django_user_model):
    return client_for(django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1"))


def ledger_row(user, model=SONNET, *, days_ago=0, **tokens) -> ApiCall:
    """A ledger row as a settled reply writes it (billing.ledger): priced, with the prices in force as its
    snapshot. `days_ago` moves it back in time."""
    [row] = ledger_record(
        [UpstreamRequest(model=model, attempts=[UpstreamAttempt(http_status=200)], usage=TokenUsage(**tokens))],
        user_id=user.pk, conversation_id=None, message=None, settle_key=f"cache-report:{next(settle_keys)}",
    )
    if days_ago:
        ApiCall.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return row


def report_of(calls, days=30, **options) -> cache_report.CacheReport:
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    return cache_report.cache_report(calls, first=first, last=today, **options)


def csv_rows(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


# --- the figures ------------------------------------------------------------------------------------------


def test_hit_rate_and_savings_are_the_ledgers_tokens_at_each_rows_own_prices(people):
    # Sonnet at list prices ($3 in, $0.30 a read, $3.75 a 5-minute write): 1M reads save $2.70, 200k writes
    # cost $0.15 over the input price.
    ledger_row(people.bob, input_tokens=1_000, cache_read_input_tokens=1_000_000,
               cache_creation_5m_input_tokens=200_000, output_tokens=50)
    # The admins double Sonnet's price: a later row is worth twice as much per read, the first one keeps its own.
    Price.objects.update_or_create(model=SONNET, defaults={
        "input": 6, "output": 30, "cache_write_5m": "7.5", "cache_write_1h": 12, "cache_read": "0.6",
    })
    ledger_row(people.alice, cache_read_input_tokens=1_000_000)
    # Haiku ($1 in, $2 a 1-hour write): written, never read, so caching cost $0.10.
    ledger_row(people.bob, HAIKU, input_tokens=500, cache_creation_1h_input_tokens=100_000)
    ledger_row(people.bob, cache_read_input_tokens=9_999_999, days_ago=40)  # before the period

    report = report_of(calls_since(timezone.now() - timedelta(days=30)))

    by_model = {row["model"]: row["figures"] for row in report.by_model}
    assert by_model[SONNET].saved == Decimal("2.7") - Decimal("0.15") + Decimal("5.4")
    assert by_model[SONNET].hit_rate == pytest.approx(2_000_000 / 2_201_000)
    assert by_model[HAIKU].saved == Decimal("-0.1") and by_model[HAIKU].hit_rate == 0
    assert [row["model"] for row in report.by_model] == [SONNET, HAIKU]  # who saved most first
    by_user = {row["user__username"]: row["figures"] for row in report.by_user}
    assert by_user == {
        "alice": cache_report.CacheFigures(read=1_000_000, saved=Decimal("5.4")),
        "bob": cache_report.CacheFigures(uncached=1_500, read=1_000_000, written_5m=200_000, written_1h=100_000,
                                         saved=Decimal("2.45")),
    }
    assert report.total.saved == Decimal("7.85")
    assert report.total.hit_rate == pytest.approx(2_000_000 / 2_301_500)
    assert len(report.series) == 30 and report.series[-1] == (timezone.now().date(), report.total)
    assert sum((figures for _, figures in report.series), cache_report.CacheFigures()) == report.total


def test_rows_without_a_snapshot_are_priced_at_the_prices_in_force(people):
    ApiCall.objects.create(user=people.bob, model=SONNET, cache_read_input_tokens=1_000_000)  # an old row: {}

    assert cache_report.cache_totals(ApiCall.objects.all()).saved == Decimal("2.7")


def test_no_input_is_no_hit_rate_and_nothing_saved(people):
    report = report_of(ApiCall.objects.all())

    assert report.total == cache_report.CacheFigures() and report.total.hit_rate is None
    assert report.by_model == report.by_user == []


def test_weeks_start_on_mondays_and_add_up_to_the_days(people):
    for days_ago in (0, 6, 13, 29):
        ledger_row(people.bob, input_tokens=100, cache_read_input_tokens=900, days_ago=days_ago)
    calls = calls_since(timezone.now() - timedelta(days=30))

    by_day, by_week = report_of(calls), report_of(calls, bucket="week")

    starts = [start for start, _ in by_week.series]
    assert starts[0] == by_day.first and all(start.weekday() == 0 for start in starts[1:])
    assert len(starts) in (5, 6)
    assert sum((figures for _, figures in by_week.series), cache_report.CacheFigures()) == by_day.total
    assert by_day.total.read == 3_600


@pytest.mark.parametrize(("days", "expected_days"), [("7", 7), ("30", 30), ("90", 90), ("", None), ("x", None)])
def test_the_period_is_the_last_7_30_or_90_days_or_this_month(days, expected_days):
    chosen, since = cache_report.report_period(days)

    assert chosen == expected_days
    if expected_days:
        assert since.date() == timezone.now().date() - timedelta(days=expected_days - 1)
    else:
        assert since == month_start()


# --- the admins' page -----------------------------------------------------------------------------------


def test_the_admin_page_shows_every_model_user_and_group(admin_client, people):
    subteam = Team.objects.create(name="Marketing EMEA", parent=people.marketing)
    Membership.objects.create(team=subteam, user=people.charlie)
    ledger_row(people.bob, cache_read_input_tokens=1_000_000)  # Marketing, Company
    ledger_row(people.charlie, HAIKU, cache_read_input_tokens=1_000_000)  # EMEA, Marketing, Company
    ledger_row(people.dave, cache_read_input_tokens=2_000_000, days_ago=3)  # before he joined Sales
    Membership.objects.filter(user=people.charlie).update(created_at=timezone.now() - timedelta(days=5))

    response = admin_client.get(reverse("admin_cache"), {"days": "7"})

    report = response.context["report"]
    by_team = {row["team"].name: row["figures"].saved for row in report.by_team}
    assert by_team == {"Company": Decimal("3.6"), "Marketing": Decimal("3.6"), "Marketing EMEA": Decimal("0.9"),
                       "Sales": 0}
    by_user = {row["user__username"]: row["figures"].saved for row in report.by_user}
    assert by_user == {"dave": Decimal("5.4"), "bob": Decimal("2.7"), "charlie": Decimal("0.9")}
    assert report.total.saved == Decimal(9)
    body = response.content.decode()
    assert "<svg" in body and "$9.0000" in body and "Marketing EMEA" in body and HAIKU in body
    assert reverse("admin_cache_csv") + "?days=7&amp;by=day" in body


def test_the_usage_dashboard_agrees_with_the_report_and_links_it(admin_client, people):
    ledger_row(people.bob, cache_read_input_tokens=1_000_000, cache_creation_1h_input_tokens=100_000)

    usage = admin_client.get(reverse("admin_usage"), {"days": "30"})
    report = admin_client.get(reverse("admin_cache"), {"days": "30"}).context["report"]

    assert usage.context["cache_savings"] == report.total.saved == Decimal("2.4")  # 2.70 read, 0.30 written
    assert usage.context["cache_hit_percent"] == report.total.hit_percent
    assert reverse("admin_cache") + "?days=30" in usage.content.decode()
    assert reverse("admin_cache") in admin_client.get(reverse("admin:index")).content.decode()


@pytest.mark.parametrize("users", [3, 30])
def test_the_admin_page_makes_as_many_queries_for_3_users_as_for_30(admin_client, people, users,
                                                                   django_assert_num_queries):
    for number in range(users):
        user = get_user_model().objects.create_user(f"user{number:02}")
        Membership.objects.create(team=people.sales if number % 2 else people.marketing, user=user)
        ledger_row(user, SONNET if number % 3 else HAIKU, input_tokens=10, cache_read_input_tokens=number * 100)

    # session, user, per model, per user, per day, the tree, the groups, per group
    with django_assert_num_queries(8):
        response = admin_client.get(reverse("admin_cache"))

    assert len(response.context["report"].by_user) == min(users, 10)


def test_the_admin_page_needs_permission_to_read_the_ledger(client, django_user_model):
    clerk = django_user_model.objects.create_user("clerk", password="x-clerk-pass-1", is_staff=True)
    client.force_login(clerk)
    assert client.get(reverse("admin_cache")).status_code == 403
    assert client.get(reverse("admin_cache_csv")).status_code == 403

    clerk.user_permissions.add(Permission.objects.get(codename="view_apicall"))

    assert client.get(reverse("admin_cache")).status_code == 200


@pytest.mark.parametrize("name", ["admin_cache", "admin_cache_csv"])
def test_the_admin_report_is_not_for_visitors_or_users(client, people, name):
    assert "/admin/login/" in client.get(reverse(name))["Location"]
    client.force_login(people.alice)  # a group manager, not staff
    assert "/admin/login/" in client.get(reverse(name))["Location"]


def test_the_admin_csv_has_every_table_everyone_and_no_formulas(admin_client, people):
    evil = get_user_model().objects.create_user("=HYPERLINK(\"http://evil/\")")
    for number in range(11):
        ledger_row(get_user_model().objects.create_user(f"user{number:02}"), cache_read_input_tokens=1_000)
    ledger_row(evil, HAIKU, input_tokens=100, cache_creation_5m_input_tokens=1_000_000)
    ledger_row(people.bob, cache_read_input_tokens=1_000_000)

    response = admin_client.get(reverse("admin_cache_csv"), {"days": "7", "by": "week"})

    rows = csv_rows(response)
    assert rows[0] == list(CACHE_CSV_HEADER)
    tables = {}
    for row in rows[1:]:
        tables.setdefault(row[0], {})[row[1]] = row[2:]
    assert set(tables) == {"total", "model", "user", "group", "week"}
    assert tables["total"][""] == ["2011100", "100", "1011000", "1000000", "0", "0.50271", "2.479700"]
    assert tables["model"][HAIKU][-2:] == ["0.0", "-0.250000"]  # 1M 5-minute writes at $1.25 instead of $1
    assert len(tables["user"]) == 13 and "'=HYPERLINK(\"http://evil/\")" in tables["user"]
    assert tables["group"]["Marketing"][-1] == "2.700000" and tables["group"]["Sales"][-1] == "0.000000"
    assert sum(Decimal(row[-1]) for row in tables["week"].values()) == Decimal("2.4797")
    assert re.fullmatch(r'attachment; filename="cache-\d{8}-7d-by-week\.csv"', response["Content-Disposition"])


# --- a group's page -------------------------------------------------------------------------------------


def test_a_manager_sees_their_groups_members_only(people):
    ledger_row(people.alice, cache_read_input_tokens=1_000_000)
    ledger_row(people.bob, HAIKU, cache_read_input_tokens=1_000_000)
    ledger_row(people.dave, cache_read_input_tokens=5_000_000)  # Sales
    ledger_row(people.charlie, cache_read_input_tokens=7_000_000)  # in no group

    response = client_for(people.alice).get(reverse("team_cache", args=[people.marketing.pk]))

    report = response.context["report"]
    assert [(row["user__username"], row["figures"].saved) for row in report.by_user] == [
        ("alice", Decimal("2.7")), ("bob", Decimal("0.9")),
    ]
    assert {row["model"] for row in report.by_model} == {SONNET, HAIKU} and report.by_team is None
    assert report.total.saved == Decimal("3.6")
    body = response.content.decode()
    assert "dave" not in body and "charlie" not in body and "$3.6000" in body
    assert "Per group" not in body
    detail = client_for(people.alice).get(reverse("team_detail", args=[people.marketing.pk]))
    assert reverse("team_cache", args=[people.marketing.pk]) in detail.content.decode()
    assert detail.context["cache_savings"] == report.total.saved


def test_a_manager_sees_no_spend_from_before_someone_joined(people):
    ledger_row(people.bob, cache_read_input_tokens=1_000_000, days_ago=3)
    Membership.objects.filter(user=people.bob).update(created_at=timezone.now() - timedelta(days=1))

    response = client_for(people.alice).get(reverse("team_cache", args=[people.marketing.pk]), {"days": "7"})

    assert response.context["report"].by_user == [] and response.context["report"].total.read == 0


@pytest.mark.parametrize("who", ["bob", "charlie", "dave"])
@pytest.mark.parametrize("name", ["team_cache", "team_cache_csv"])
def test_a_member_an_outsider_and_another_groups_manager_get_404(people, who, name):
    ledger_row(people.bob, cache_read_input_tokens=1_000_000)

    response = client_for(getattr(people, who)).get(reverse(name, args=[people.marketing.pk]))

    assert response.status_code == 404


def test_a_groups_report_asks_a_stranger_to_sign_in(people):
    response = Client().get(reverse("team_cache", args=[people.marketing.pk]))

    assert response.status_code == 302 and reverse("login") in response["Location"]


@pytest.mark.parametrize("members", [3, 30])
def test_a_groups_page_makes_as_many_queries_for_3_members_as_for_30(people, members,
                                                                    django_assert_num_queries):
    for number in range(members):
        user = get_user_model().objects.create_user(f"member{number:02}")
        Membership.objects.create(team=people.marketing, user=user)
        ledger_row(user, SONNET if number % 3 else HAIKU, cache_read_input_tokens=100 + number)
    client = client_for(people.alice)

    # session, user, the group, the tree, per model, per member, per day
    with django_assert_num_queries(7):
        response = client.get(reverse("team_cache", args=[people.marketing.pk]), {"days": "90", "by": "week"})

    assert len(response.context["report"].by_user) == members


def test_a_groups_csv_holds_its_members_only(people):
    ledger_row(people.bob, cache_read_input_tokens=1_000_000)
    ledger_row(people.dave, cache_read_input_tokens=1_000_000)

    response = client_for(people.alice).get(reverse("team_cache_csv", args=[people.marketing.pk]))

    rows = csv_rows(response)
    assert [row[1] for row in rows if row[0] == "user"] == ["bob"]
    assert [row for row in rows if row[0] == "total"] == [
        ["total", "", "1000000", "0", "1000000", "0", "0", "1.0", "2.700000"],
    ]
    assert not [row for row in rows if row[0] == "group"]
    assert len([row for row in rows if row[0] == "day"]) == timezone.now().day  # this month, by default


# --- real turns -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_real_turns_through_the_offline_model_show_up_with_their_savings(socket_for, owner, conversation):
    conversation.system_prompt = "You are a patient tutor for database internals. Explain with examples. " * 60
    await database_sync_to_async(conversation.save)()
    socket = await connected(socket_for, owner, conversation)
    for text in ("What is a B-tree?", "And a B+ tree?"):
        await socket.send_json_to({"type": "send", "text": text})
        await frames_until_final(socket)

    def read():
        calls = ApiCall.objects.order_by("id")
        return list(calls), report_of(calls_since(month_start()), days=1)

    (first, second), report = await database_sync_to_async(read)()

    assert first.cache_creation_5m_input_tokens > 1_000 and second.cache_read_input_tokens > 1_000
    by_hand = sum(
        cache_report.cache_saving(call.price_snapshot, read=call.cache_read_input_tokens,
                                  written_5m=call.cache_creation_5m_input_tokens,
                                  written_1h=call.cache_creation_1h_input_tokens)
        for call in (first, second)
    )
    [row] = report.by_user
    assert row["user__username"] == "owner" and row["figures"] == report.total
    assert report.total.saved == by_hand and report.total.read == second.cache_read_input_tokens
    assert report.total.hit_rate == pytest.approx(
        second.cache_read_input_tokens / sum(
            call.input_tokens + call.cache_read_input_tokens + call.cache_creation_input_tokens
            for call in (first, second)
        )
    )


# --- PostgreSQL -----------------------------------------------------------------------------------------


def test_every_cache_report_test_passes_on_postgresql():
    """The JSON snapshot is grouped by, never computed with, in SQL: the same numbers on PostgreSQL's jsonb."""
    if connection.vendor == "postgresql":
        pytest.skip("this is the run on PostgreSQL")
    require(postgres_reachable(), "PostgreSQL")
    name = f"claudechat_cache_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": fresh_postgres_database(name)}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--create-db",
             "-k", "not postgresql", "tests/test_cache_report.py"],
            cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True, timeout=300,
            check=False,
        )
    finally:
        drop_postgres_database(f"test_{name}")
        drop_postgres_database(name)

    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    # Nothing skipped, nothing failed. (A warning may say the real turns' database threads were still connected
    # when pytest dropped its database; the `finally` above drops it by force.)
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, 1 deselected(, \d+ warnings?)? in .*", summary), output
