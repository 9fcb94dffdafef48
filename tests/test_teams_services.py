"""Writes about groups: memberships (single sign-on's `membership_ensure` among them) and who may see what."""

import pytest
from django.contrib.auth.models import Permission
from django.http import Http404

from audit.models import AuditEvent
from teams import selectors, services
from teams.models import Membership
from tests.group_personas import group_personas

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return group_personas()


def test_membership_ensure_adds_a_member_once(people):
    first = services.membership_ensure(team=people.sales, user=people.charlie)
    again = services.membership_ensure(team=people.sales, user=people.charlie)

    assert first.pk == again.pk and again.role == "member"
    assert Membership.objects.filter(team=people.sales, user=people.charlie).count() == 1


def test_membership_ensure_changes_the_role_of_an_existing_member(people):
    services.membership_ensure(team=people.marketing, user=people.bob, role="manager")

    assert Membership.objects.get(team=people.marketing, user=people.bob).role == "manager"


def test_adding_a_member_who_already_has_the_role_records_nothing(people):
    services.membership_add(team=people.marketing, user=people.bob, role="member", by=people.alice)

    assert not AuditEvent.objects.exists()


def test_setting_the_same_budget_again_records_nothing(people):
    budget = people.marketing.monthly_budget

    services.team_budget_set(team=people.marketing, monthly_budget=budget, by=people.alice)

    assert not AuditEvent.objects.exists()


def test_a_department_counts_the_members_of_its_teams(people):
    tree = selectors.team_tree()

    members = set(selectors.member_ids(people.company.pk, tree).values_list("user_id", flat=True))

    assert members == {people.alice.pk, people.bob.pk, people.dave.pk}
    assert selectors.team_ids_above(people.bob)[0] == {people.marketing.pk, people.company.pk}
    assert selectors.team_ids_above(people.charlie) == (set(), {})


def test_team_for_manager_opens_only_the_groups_one_manages(people):
    assert selectors.team_for_manager(people.alice, people.marketing.pk) == people.marketing
    refused = [(people.alice, people.sales), (people.bob, people.marketing), (people.charlie, people.sales),
               (people.alice, people.company)]  # managing a team is not managing its department
    for user, team in refused:
        with pytest.raises(Http404):
            selectors.team_for_manager(user, team.pk)


def test_staff_manage_every_group_only_with_the_permission_to_change_groups(people):
    people.charlie.is_staff = True
    people.charlie.save()
    with pytest.raises(Http404):
        selectors.team_for_manager(people.charlie, people.sales.pk)

    people.charlie.user_permissions.add(Permission.objects.get(codename="change_team"))
    people.charlie = people.charlie.__class__.objects.get(pk=people.charlie.pk)  # a fresh permission cache

    assert selectors.team_for_manager(people.charlie, people.sales.pk) == people.sales
    assert set(selectors.teams_for_manager(people.charlie)) == {people.company, people.marketing,
                                                                 people.sales}
