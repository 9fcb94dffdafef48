"""Usage by group on the admins' dashboard, and its CSV."""

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from chat.models import ApiCall
from teams.models import Membership, Team
from tests.group_personas import group_personas

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return group_personas()


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1")
    client.force_login(admin)
    return client


def spend(user, dollars) -> ApiCall:
    return ApiCall.objects.create(user=user, model="claude-sonnet-5-5", cost=Decimal(dollars))


def test_the_dashboard_shows_spend_by_group_with_departments_counting_their_teams(admin_client, people):
    spend(people.bob, "4")
    spend(people.dave, "1")
    spend(people.charlie, "100")  # in no group

    response = admin_client.get(reverse("admin_usage"))

    rows = [(row["team"].name, row["cost"]) for row in response.context["by_team"]]
    assert rows == [("Company", Decimal("5")), ("Marketing", Decimal("4")), ("Sales", Decimal("1"))]
    assert reverse("team_detail", args=[people.marketing.pk]) in response.content.decode()


def test_the_group_csv_lists_every_group_with_formulas_neutralised(admin_client, people):
    Team.objects.create(name="=cmd|' /C calc'!A0", parent=people.company)
    spend(people.bob, "4")

    response = admin_client.get(reverse("admin_usage_by_team_csv"), {"days": "7"})

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["group", "parent", "spend", "monthly_budget"]
    assert [(row[0], row[1], Decimal(row[2])) for row in rows[1:]] == [
        ("Company", "", 4), ("Marketing", "Company", 4), ("'=cmd|' /C calc'!A0", "Company", 0),
        ("Sales", "Company", 0),
    ]


def test_the_group_csv_is_for_those_who_may_read_the_ledger(client, people):
    people.alice.is_staff = True
    people.alice.save()
    client.force_login(people.alice)

    assert client.get(reverse("admin_usage_by_team_csv")).status_code == 403


def test_a_member_in_two_teams_of_a_department_counts_once_for_it(admin_client, people):
    Membership.objects.create(team=people.sales, user=people.bob)
    spend(people.bob, "4")

    response = admin_client.get(reverse("admin_usage"))

    spend_by_group = {row["team"].name: row["cost"] for row in response.context["by_team"]}
    assert spend_by_group["Company"] == Decimal("4")
