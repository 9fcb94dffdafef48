"""Invite links: single use, expiring, revocable, working in every registration mode, and joining the new
account to the invite's group with its role."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.mail import mail_sent_wait
from accounts.models import Invite, RegistrationPolicy, User
from audit.models import AuditEvent
from teams.models import Membership, Team

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1")


@pytest.fixture(autouse=True)
def closed_registration():
    RegistrationPolicy.objects.update_or_create(id=1, defaults={"mode": "closed"})


def link_request(client, invite, username="invitee", email="invitee@example.com"):
    """The invite's form, answered once the email it sends from a thread has gone out."""
    response = client.post(invite.url, {"username": username, "email": email})
    mail_sent_wait()
    return response


def accept(client, invite, username="invitee", email="invitee@example.com"):
    """Follow the invite link to the end: the form, the emailed link, the password."""
    response = link_request(client, invite, username, email)
    if response.status_code != 200 or not mail.outbox:
        return response
    path = re.search(r"http://testserver(/\S+)", mail.outbox[-1].body).group(1)
    return client.post(path, {"new_password1": PASSWORD, "new_password2": PASSWORD})


@pytest.mark.parametrize("mode", ["closed", "invite", "domains", "open"])
def test_an_invite_link_works_in_every_mode(client, admin_user, mode):
    RegistrationPolicy.objects.filter(id=1).update(mode=mode, domains="elsewhere.org")
    invite = services.invite_create(created_by=admin_user)

    response = accept(client, invite)

    assert response.status_code == 302
    invite.refresh_from_db()
    user = User.objects.get(username="invitee")
    assert invite.used_by == user and invite.used_at is not None and invite.status == "used"
    assert AuditEvent.objects.filter(action="invite.used", actor=user).count() == 1


def test_the_invite_page_says_who_invited_to_which_group(client, admin_user):
    team = Team.objects.create(name="Research")
    invite = services.invite_create(created_by=admin_user, team=team, role="manager")

    page = client.get(invite.url).content.decode()

    assert "You were invited by admin to join Research as manager." in page


def test_an_invite_with_a_group_adds_the_membership_with_its_role(client, admin_user):
    team = Team.objects.create(name="Research")
    invite = services.invite_create(created_by=admin_user, team=team, role=Membership.Role.MANAGER)

    accept(client, invite)

    membership = Membership.objects.get(user__username="invitee")
    assert (membership.team, membership.role) == (team, "manager")


def revoked(invite, admin_user):
    services.invite_revoke(invite=invite, by=admin_user)


def expired(invite, admin_user):
    Invite.objects.filter(pk=invite.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def used(invite, admin_user):
    Invite.objects.filter(pk=invite.pk).update(used_at=timezone.now(), used_by=admin_user)


@pytest.mark.parametrize("spoil", [revoked, expired, used])
def test_a_revoked_an_expired_and_a_used_invite_are_each_refused_with_nothing_created(client, admin_user, spoil):
    team = Team.objects.create(name="Research")
    invite = services.invite_create(created_by=admin_user, team=team)
    spoil(invite, admin_user)

    page = client.get(invite.url)
    response = link_request(client, invite)

    assert page.status_code == response.status_code == 404
    assert "can no longer be used" in page.content.decode() and 'name="username"' not in page.content.decode()
    assert mail.outbox == []
    assert list(User.objects.all()) == [admin_user] and not Membership.objects.exists()


@pytest.mark.parametrize("spoil", [revoked, expired, used])
def test_an_invite_spoilt_after_its_link_was_mailed_creates_nothing(client, admin_user, spoil):
    invite = services.invite_create(created_by=admin_user)
    link_request(client, invite)
    spoil(invite, admin_user)

    path = re.search(r"http://testserver(/\S+)", mail.outbox[-1].body).group(1)
    response = client.post(path, {"new_password1": PASSWORD, "new_password2": PASSWORD})

    assert response.status_code == 400 and "can no longer be used" in response.content.decode()
    assert list(User.objects.all()) == [admin_user]


def test_an_unknown_token_is_a_404(client):
    assert client.get(reverse("sign_up_invite", args=["no-such-token"])).status_code == 404


def test_one_invite_creates_one_account_though_two_links_were_mailed(client, admin_user):
    invite = services.invite_create(created_by=admin_user)
    link_request(client, invite, "first", "first@example.com")
    link_request(client, invite, "second", "second@example.com")
    first, second = (re.search(r"http://testserver(/\S+)", message.body).group(1) for message in mail.outbox)

    assert client.post(first, {"new_password1": PASSWORD, "new_password2": PASSWORD}).status_code == 302
    client.logout()
    response = client.post(second, {"new_password1": PASSWORD, "new_password2": PASSWORD})

    assert response.status_code == 400
    assert set(User.objects.values_list("username", flat=True)) == {"admin", "first"}


def test_an_invite_for_an_address_takes_only_that_address(client, admin_user):
    invite = services.invite_create(created_by=admin_user, email="Invitee@Example.com")

    page = client.get(invite.url).content.decode()
    refused = link_request(client, invite, "stranger", "stranger@example.com")
    response = accept(client, invite, email="invitee@example.com")

    assert 'value="Invitee@Example.com"' in page
    assert refused.status_code == 200 and "This invite is for another email address." in refused.content.decode()
    assert response.status_code == 302 and User.objects.filter(username="invitee").exists()


def test_creating_and_revoking_are_audited_and_revoking_a_used_invite_changes_nothing(admin_user):
    invite = services.invite_create(created_by=admin_user, email="someone@example.com", days=3)
    services.invite_revoke(invite=invite, by=admin_user)
    used_invite = services.invite_create(created_by=admin_user)
    used(used_invite, admin_user)
    services.invite_revoke(invite=used_invite, by=admin_user)

    assert timedelta(days=2, hours=23) < invite.expires_at - timezone.now() <= timedelta(days=3)
    assert invite.status == "revoked"
    used_invite.refresh_from_db()
    assert used_invite.status == "used" and used_invite.revoked_at is None
    actions = AuditEvent.objects.filter(actor=admin_user).order_by("id").values_list("action", "subject")
    assert list(actions) == [
        ("invite.created", "someone@example.com"), ("invite.revoked", "someone@example.com"),
        ("invite.created", f"invite {used_invite.pk}"),
    ]


def test_an_admin_creates_an_invite_in_the_admin_and_is_shown_its_link(client, admin_user):
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:accounts_invite_add"), {"email": "", "team": "", "role": "member", "days": "2"}, follow=True,
    )

    invite = Invite.objects.get()
    assert invite.created_by == admin_user and invite.is_usable
    assert f"http://testserver{invite.url}" in response.content.decode()
    assert AuditEvent.objects.filter(action="invite.created", actor=admin_user).count() == 1


def test_the_admins_revoke_action_revokes_the_open_invites(client, admin_user):
    open_invite = services.invite_create(created_by=admin_user)
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:accounts_invite_changelist"),
        {"action": "revoke", "_selected_action": [open_invite.pk]}, follow=True,
    )

    open_invite.refresh_from_db()
    assert open_invite.status == "revoked" and "Revoked 1 invite(s)." in response.content.decode()
