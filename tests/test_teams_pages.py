"""The group managers' pages: their groups, a group's usage, members, budget, invitations and CSV."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invite
from accounts.services import invite_create
from audit.models import AuditEvent
from chat.models import ApiCall
from teams.models import Membership, Team
from tests.group_personas import group_personas

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return group_personas()


def site_admin(user):
    user.is_staff = user.is_superuser = True
    user.save()
    return user


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def spend(user, dollars, model="claude-sonnet-5-5", **fields) -> ApiCall:
    return ApiCall.objects.create(user=user, model=model, cost=Decimal(dollars), **fields)


def group_urls(people) -> list[tuple[str, str]]:
    """Every URL of a group's pages, with its method: all must 404 for anyone who does not manage it."""
    team = people.marketing.pk
    membership = Membership.objects.get(team=people.marketing, user=people.bob).pk
    invite = invite_create(created_by=people.alice, team=people.marketing).pk
    return [
        ("get", reverse("team_detail", args=[team])),
        ("get", reverse("team_usage_csv", args=[team])),
        ("post", reverse("team_member_add", args=[team])),
        ("post", reverse("team_member_role", args=[team, membership])),
        ("post", reverse("team_member_remove", args=[team, membership])),
        ("post", reverse("team_budget", args=[team])),
        ("post", reverse("team_invite_create", args=[team])),
        ("post", reverse("team_invite_revoke", args=[team, invite])),
    ]


@pytest.mark.parametrize("who", ["charlie", "bob", "dave"])
def test_an_outsider_a_plain_member_and_another_groups_manager_get_404_on_every_group_url(people, who):
    """Charlie is in no group, Bob is a member of Marketing but not its manager, Dave manages Sales."""
    client = client_for(getattr(people, who))
    urls = group_urls(people)
    events_before = AuditEvent.objects.count()

    data = {"who": "charlie", "role": "manager", "monthly_budget": "9"}
    statuses = [getattr(client, method)(url, data).status_code for method, url in urls]

    assert statuses == [404] * len(urls)
    assert Membership.objects.filter(team=people.marketing).count() == 2
    assert Team.objects.get(pk=people.marketing.pk).monthly_budget == Decimal("500")
    assert Invite.objects.filter(revoked_at__isnull=False).count() == 0
    assert AuditEvent.objects.count() == events_before


def test_the_group_pages_ask_a_stranger_to_sign_in(people):
    response = Client().get(reverse("team_detail", args=[people.marketing.pk]))

    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_the_list_shows_the_groups_one_manages_with_this_months_spend(people, django_assert_num_queries):
    spend(people.bob, "125")
    client = client_for(people.alice)

    # session, user, the groups with their member counts, the tree, the spend and the reservations
    with django_assert_num_queries(6):
        response = client.get(reverse("team_list"))

    assert [row["team"] for row in response.context["rows"]] == [people.marketing]
    assert "$125.00" in response.content.decode() and "25%" in response.content.decode()


def test_the_list_makes_the_same_queries_for_many_groups(people, django_assert_num_queries):
    staff = people.charlie
    staff.is_staff = staff.is_superuser = True
    staff.save()
    for number in range(5):
        Team.objects.create(name=f"Team {number}", parent=people.sales, monthly_budget=10)
    client = client_for(staff)

    with django_assert_num_queries(6):
        response = client.get(reverse("team_list"))

    assert len(response.context["rows"]) == 8


def test_someone_who_manages_nothing_sees_an_empty_list(people):
    response = client_for(people.bob).get(reverse("team_list"))

    assert response.status_code == 200 and "You manage no groups" in response.content.decode()


def test_the_group_page_shows_spend_per_day_member_and_model_and_cache_savings(people):
    subteam = Team.objects.create(name="Marketing EMEA", parent=people.marketing)
    erin = Membership.objects.create(team=subteam, user=people.charlie).user  # counts for Marketing too
    spend(people.bob, "3", cache_read_input_tokens=1_000_000,
          price_snapshot={"input": "3", "output": "15", "cache_write_5m": "3.75", "cache_write_1h": "6",
                          "cache_read": "0.3"})
    spend(erin, "2", model="claude-haiku-5")
    spend(people.dave, "7")  # Sales: not Marketing's

    response = client_for(people.alice).get(reverse("team_detail", args=[people.marketing.pk]))

    context = response.context
    assert context["totals"]["cost"] == Decimal("5") and context["cache_savings"] == Decimal("2.7")
    by_member = [(row["user__username"], row["cost"]) for row in context["by_member"]]
    assert by_member == [("bob", 3), ("charlie", 2)]
    assert {row["model"] for row in context["by_model"]} == {"claude-sonnet-5-5", "claude-haiku-5"}
    assert sum(bar["cost"] for bar in context["chart"]["bars"]) == Decimal("5")
    assert (context["budget_status"].spent, context["budget_status"].budget) == (5, 500)
    assert [membership.user.username for membership in context["memberships"]] == ["alice", "bob"]


@pytest.mark.parametrize("members", [1, 6])
def test_the_group_page_makes_as_many_queries_for_one_member_as_for_six(people, members,
                                                                       django_assert_num_queries):
    for number in range(members):
        user = people.alice.__class__.objects.create_user(username=f"member{number}")
        Membership.objects.create(team=people.marketing, user=user)
        spend(user, "1")
    invite_create(created_by=people.alice, team=people.marketing)
    client = client_for(people.alice)

    # session, user, the group, the tree, totals, per day, per member, per model, cache savings, the budget's
    # spend and reservations, the members, the invitations
    with django_assert_num_queries(13):
        client.get(reverse("team_detail", args=[people.marketing.pk]))


def test_a_manager_cannot_add_an_existing_user_without_their_consent(people):
    """Adding someone puts their spend on the manager's page and their sends under the group's budget: a
    manager invites, the person accepts. The form is refused whatever it names, so it also cannot tell which
    usernames or addresses have accounts."""
    client = client_for(people.alice)
    url = reverse("team_member_add", args=[people.marketing.pk])

    statuses = [client.post(url, {"who": who, "role": "member"}).status_code
                for who in ("charlie", "nobody@example.com")]

    assert statuses == [403, 403]
    assert set(Membership.objects.filter(team=people.marketing).values_list("user__username", flat=True)) == {
        "alice", "bob"}
    page = client.get(reverse("team_detail", args=[people.marketing.pk]))
    add_url = reverse("team_member_add", args=[people.marketing.pk])
    assert page.context["add_form"] is None and f'action="{add_url}"' not in page.content.decode()


def test_a_site_admin_adds_an_existing_user_by_username_or_email(people):
    site_admin(people.charlie)
    client = client_for(people.charlie)

    url = reverse("team_member_add", args=[people.marketing.pk])
    client.post(url, {"who": "charlie", "role": "member"})
    client.post(url, {"who": "DAVE@example.com", "role": "manager"})

    roles = dict(Membership.objects.filter(team=people.marketing).values_list("user__username", "role"))
    assert roles == {"alice": "manager", "bob": "member", "charlie": "member", "dave": "manager"}
    event = AuditEvent.objects.filter(action="group.member_added").order_by("id").last()
    assert (event.actor, event.subject, event.detail["role"]) == (people.charlie, "dave in Marketing",
                                                                   "manager")


def test_a_site_admin_adding_someone_without_an_account_is_told_so(people):
    site_admin(people.charlie)
    url = reverse("team_member_add", args=[people.marketing.pk])

    response = client_for(people.charlie).post(url, {"who": "nobody@example.com", "role": "member"})

    assert response.status_code == 400
    assert "No account has this username or email" in response.content.decode()
    assert Membership.objects.filter(team=people.marketing).count() == 2


def test_a_manager_changes_a_members_role_and_it_is_audited(people):
    membership = Membership.objects.get(team=people.marketing, user=people.bob)

    client_for(people.alice).post(
        reverse("team_member_role", args=[people.marketing.pk, membership.pk]), {"role": "manager"}
    )

    membership.refresh_from_db()
    assert membership.role == "manager"
    event = AuditEvent.objects.get(action="group.member_role_changed")
    assert event.detail == {"group": people.marketing.pk, "user": people.bob.pk, "role": "manager",
                            "previous_role": "member"}


def test_a_manager_cannot_remove_a_member_and_is_told_to_ask_a_site_admin(people):
    """Removing a member would free their spend from the group's total, and leave them with only the site's
    default budget: a manager could invite people and remove them to escape the group's budget."""
    membership = Membership.objects.get(team=people.marketing, user=people.bob)
    client = client_for(people.alice)

    response = client.post(reverse("team_member_remove", args=[people.marketing.pk, membership.pk]))

    assert response.status_code == 403
    assert Membership.objects.filter(pk=membership.pk).exists()
    assert not AuditEvent.objects.filter(action="group.member_removed").exists()
    page = client.get(reverse("team_detail", args=[people.marketing.pk])).content.decode()
    assert "ask a site admin" in page
    assert f'action="{reverse("team_member_remove", args=[people.marketing.pk, membership.pk])}"' not in page


def test_a_site_admin_removes_a_member_and_it_is_audited(people):
    site_admin(people.charlie)
    membership = Membership.objects.get(team=people.marketing, user=people.bob)

    client_for(people.charlie).post(reverse("team_member_remove", args=[people.marketing.pk, membership.pk]))

    assert not Membership.objects.filter(pk=membership.pk).exists()
    event = AuditEvent.objects.get(action="group.member_removed")
    assert (event.actor, event.subject) == (people.charlie, "bob in Marketing")


def test_a_membership_of_another_group_cannot_be_reached_through_ones_own(people):
    daves = Membership.objects.get(team=people.sales, user=people.dave)

    demoted = client_for(people.alice).post(reverse("team_member_role", args=[people.marketing.pk, daves.pk]),
                                            {"role": "member"})
    removed = client_for(site_admin(people.charlie)).post(
        reverse("team_member_remove", args=[people.marketing.pk, daves.pk]))

    assert (demoted.status_code, removed.status_code) == (404, 404)
    assert Membership.objects.get(pk=daves.pk).role == "manager"


def test_managers_may_not_set_the_budget_unless_the_site_allows_it(people):
    response = client_for(people.alice).post(
        reverse("team_budget", args=[people.marketing.pk]), {"monthly_budget": "900"}
    )

    assert response.status_code == 403
    assert Team.objects.get(pk=people.marketing.pk).monthly_budget == Decimal("500")
    page = client_for(people.alice).get(reverse("team_detail", args=[people.marketing.pk]))
    assert page.context["budget_form"] is None and "A site admin sets it" in page.content.decode()


def test_where_the_site_allows_it_a_manager_sets_the_budget_and_it_is_audited(people, settings):
    settings.TEAMS_MANAGERS_SET_BUDGET = True

    client_for(people.alice).post(reverse("team_budget", args=[people.marketing.pk]),
                                  {"monthly_budget": "750"})

    assert Team.objects.get(pk=people.marketing.pk).monthly_budget == Decimal("750")
    event = AuditEvent.objects.get(action="group.budget_changed")
    assert (event.actor, event.detail["monthly_budget"], event.detail["previous"]) == (
        people.alice, "750.00", "500.00")


def test_a_site_admin_sets_any_groups_budget_and_empty_means_none(people):
    people.charlie.is_staff = people.charlie.is_superuser = True
    people.charlie.save()

    admin = client_for(people.charlie)
    admin.post(reverse("team_budget", args=[people.sales.pk]), {"monthly_budget": "40"})
    admin.post(reverse("team_budget", args=[people.marketing.pk]), {"monthly_budget": ""})

    budgets = dict(Team.objects.values_list("name", "monthly_budget"))
    assert budgets == {"Company": None, "Marketing": None, "Sales": Decimal("40")}


def test_a_negative_budget_is_refused(people, settings):
    settings.TEAMS_MANAGERS_SET_BUDGET = True

    response = client_for(people.alice).post(
        reverse("team_budget", args=[people.marketing.pk]), {"monthly_budget": "-5"}
    )

    assert response.status_code == 400
    assert Team.objects.get(pk=people.marketing.pk).monthly_budget == Decimal("500")


def test_a_manager_invites_someone_to_the_group_and_revokes_it(people):
    client = client_for(people.alice)

    created = client.post(reverse("team_invite_create", args=[people.marketing.pk]),
                          {"email": "new@example.com", "role": "manager"}, follow=True)
    invite = Invite.objects.get()
    listed = created.context["invites"]
    client.post(reverse("team_invite_revoke", args=[people.marketing.pk, invite.pk]))

    assert (invite.team, invite.role, invite.email, invite.created_by) == (
        people.marketing, "manager", "new@example.com", people.alice)
    join_link = f"http://testserver{reverse('team_join', args=[invite.token])}"
    assert list(listed) == [invite] and created.content.decode().count(join_link) == 2  # message and table
    invite.refresh_from_db()
    assert invite.revoked_at is not None and invite.status == "revoked"
    page = client.get(reverse("team_detail", args=[people.marketing.pk]))
    assert list(page.context["invites"]) == []


def test_an_invite_to_another_group_cannot_be_revoked_through_ones_own(people):
    sales_invite = invite_create(created_by=people.dave, team=people.sales)

    response = client_for(people.alice).post(
        reverse("team_invite_revoke", args=[people.marketing.pk, sales_invite.pk])
    )

    sales_invite.refresh_from_db()
    assert response.status_code == 404 and sales_invite.revoked_at is None


def test_the_csv_has_a_row_per_day_member_and_model_with_formulas_neutralised(people):
    sneaky = people.alice.__class__.objects.create_user(username="=HYPERLINK(1)")
    Membership.objects.create(team=people.marketing, user=sneaky)
    spend(people.bob, "1.5", input_tokens=100, output_tokens=50)
    spend(people.bob, "0.5", input_tokens=10, output_tokens=5)
    spend(sneaky, "2")
    spend(people.dave, "9")  # not Marketing's

    response = client_for(people.alice).get(reverse("team_usage_csv", args=[people.marketing.pk]))

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert response["Content-Type"].startswith("text/csv")
    assert rows[0] == [
        "day", "member", "model", "calls", "input_tokens", "output_tokens", "cache_read_input_tokens",
        "cache_creation_5m_input_tokens", "cache_creation_1h_input_tokens", "cost",
    ]
    assert [(row[1], row[3], row[4], Decimal(row[9])) for row in rows[1:]] == [
        ("'=HYPERLINK(1)", "1", "0", 2), ("bob", "2", "110", 2),
    ]


def test_the_csv_writes_costs_to_the_micro_dollar_like_the_ledgers_own_export(people):
    spend(people.bob, "42.17")
    spend(people.bob, "0.000123")

    response = client_for(people.alice).get(reverse("team_usage_csv", args=[people.marketing.pk]))

    assert list(csv.reader(io.StringIO(response.content.decode())))[1][9] == "42.170123"


def joined_a_month_ago_after_spending(people, user, dollars):
    """`user` spent `dollars` last month and earlier this month, and joined Marketing only now."""
    last_month = spend(user, dollars)
    this_month = spend(user, dollars)
    ApiCall.objects.filter(pk=last_month.pk).update(created_at=timezone.now() - timedelta(days=35))
    ApiCall.objects.filter(pk=this_month.pk).update(created_at=timezone.now() - timedelta(seconds=5))
    Membership.objects.create(team=people.marketing, user=user)
    return (timezone.now() - timedelta(days=35)).strftime("%Y-%m")


def test_the_group_page_and_csv_show_only_what_people_spent_while_members(people):
    """A manager sees what someone spent as a member of their group, not their history before joining."""
    last_month = joined_a_month_ago_after_spending(people, people.charlie, "40")
    spend(people.charlie, "2")
    spend(people.bob, "1")
    client = client_for(people.alice)

    page = client.get(reverse("team_detail", args=[people.marketing.pk])).context
    this_csv = client.get(reverse("team_usage_csv", args=[people.marketing.pk])).content.decode()
    old_csv = client.get(reverse("team_usage_csv", args=[people.marketing.pk]), {"month": last_month})

    assert page["totals"]["cost"] == Decimal("3") and page["budget_status"].spent == Decimal("3")
    assert [(row["user__username"], row["cost"]) for row in page["by_member"]] == [("charlie", 2), ("bob", 1)]
    assert sum(bar["cost"] for bar in page["chart"]["bars"]) == Decimal("3")
    assert sorted(Decimal(row[9]) for row in list(csv.reader(io.StringIO(this_csv)))[1:]) == [1, 2]
    assert old_csv.content.decode().splitlines()[1:] == []


def test_the_csv_of_another_month_holds_that_months_calls_only(people):
    spend(people.bob, "1")

    response = client_for(people.alice).get(
        reverse("team_usage_csv", args=[people.marketing.pk]), {"month": "2001-01"}
    )

    assert response.content.decode().splitlines()[1:] == []
    assert 'usage-2001-01.csv"' in response["Content-Disposition"]


def test_a_signed_in_person_opening_a_groups_sign_up_invite_is_offered_to_join(people):
    invite = invite_create(created_by=people.alice, team=people.marketing)

    response = client_for(people.dave).get(invite.url)

    assert response.status_code == 302 and response["Location"] == reverse("team_join", args=[invite.token])
    assert not Membership.objects.filter(team=people.marketing, user=people.dave).exists()  # only on accept
