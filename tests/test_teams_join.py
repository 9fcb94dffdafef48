"""Joining a group by its invitation: the only way a manager brings someone in, so nobody's spend shows on a
manager's page, or counts against a group's budget, without their consent."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invite
from accounts.services import invite_create, invite_revoke
from audit.models import AuditEvent
from teams.models import Membership
from tests.group_personas import group_personas

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return group_personas()


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def join_url(invite: Invite) -> str:
    return reverse("team_join", args=[invite.token])


def test_a_signed_in_user_sees_what_joining_means_and_joins_only_by_accepting(people):
    invite = invite_create(created_by=people.alice, team=people.marketing)
    client = client_for(people.charlie)

    page = client.get(join_url(invite))

    assert page.status_code == 200 and "Marketing" in page.content.decode()
    assert "$500.00" in page.content.decode()  # the group's budget the person's sends will count against
    assert not Membership.objects.filter(user=people.charlie).exists()

    joined = client.post(join_url(invite))

    assert joined.status_code == 200 and "You are now a member of Marketing" in joined.content.decode()
    membership = Membership.objects.get(user=people.charlie)
    assert (membership.team, membership.role) == (people.marketing, "member")
    invite.refresh_from_db()
    assert (invite.used_by, invite.status) == (people.charlie, "used")
    recorded = AuditEvent.objects.filter(actor=people.charlie,
                                         action__in=["group.member_added", "invite.used"])
    assert sorted(recorded.values_list("action", "subject")) == [
        ("group.member_added", "charlie in Marketing"), ("invite.used", "charlie")]


def test_an_invite_as_manager_makes_its_acceptor_a_manager(people):
    invite = invite_create(created_by=people.alice, team=people.marketing, role="manager")

    client_for(people.dave).post(join_url(invite))

    assert Membership.objects.get(team=people.marketing, user=people.dave).role == "manager"


def test_the_link_works_once(people):
    invite = invite_create(created_by=people.alice, team=people.marketing)
    client_for(people.charlie).post(join_url(invite))

    again = client_for(people.dave).post(join_url(invite))

    assert again.status_code == 404
    assert not Membership.objects.filter(team=people.marketing, user=people.dave).exists()


def spoil_revoked(invite, people):
    invite_revoke(invite=invite, by=people.alice)


def spoil_expired(invite, people):
    Invite.objects.filter(pk=invite.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.parametrize("spoil", [spoil_revoked, spoil_expired])
def test_a_revoked_or_expired_invite_joins_nobody(people, spoil):
    invite = invite_create(created_by=people.alice, team=people.marketing)
    spoil(invite, people)
    client = client_for(people.charlie)

    statuses = (client.get(join_url(invite)).status_code, client.post(join_url(invite)).status_code)

    assert statuses == (404, 404)
    assert not Membership.objects.filter(user=people.charlie).exists()


def test_an_invite_without_a_group_and_an_unknown_token_are_404(people):
    plain = invite_create(created_by=people.alice)
    client = client_for(people.charlie)

    assert client.post(join_url(plain)).status_code == 404
    assert client.post(reverse("team_join", args=["no-such-token"])).status_code == 404
    assert Invite.objects.get(pk=plain.pk).used_at is None


def test_an_invite_for_an_address_is_for_the_account_with_that_address_only(people):
    invite = invite_create(created_by=people.alice, team=people.marketing, email="Charlie@Example.com")

    refused = client_for(people.dave).post(join_url(invite))
    accepted = client_for(people.charlie).post(join_url(invite))

    assert refused.status_code == 403 and "for another email address" in refused.content.decode()
    assert accepted.status_code == 200
    assert list(Membership.objects.filter(team=people.marketing).values_list("user__username", flat=True)
                .order_by("user__username")) == ["alice", "bob", "charlie"]


def test_a_stranger_is_offered_to_sign_up_or_log_in_and_cannot_join_without_an_account(people):
    invite = invite_create(created_by=people.alice, team=people.marketing)

    page = Client().get(join_url(invite)).content.decode()
    posted = Client().post(join_url(invite))

    assert invite.url in page and f"{reverse('login')}?next={join_url(invite)}" in page
    assert posted.status_code == 302 and reverse("login") in posted["Location"]
    assert Invite.objects.get(pk=invite.pk).used_at is None
