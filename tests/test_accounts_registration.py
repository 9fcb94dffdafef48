"""The registration policy: seeded once from the environment, then the superusers' to change in the admin,
every change audited, and a system check that says when the environment names another mode than the stored
one; and who the single sign-on path may let in (`sign_up_allowed`)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks
from django.urls import reverse

from accounts import services
from accounts.models import RegistrationPolicy
from accounts.registration import registration_policy, sign_up_allowed
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
REAL_KEY = "k" * 20 + "-production-secret-that-is-long-enough-" + "z" * 10


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1")


@pytest.fixture
def staff_user(django_user_model):
    """Staff who may look at the policy (its view permission) but is no superuser."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("staff", password="x-staff-pass-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_registrationpolicy"))
    return user


def test_the_first_value_comes_from_the_environment_and_later_ones_from_the_database(settings):
    settings.REGISTRATION_MODE, settings.REGISTRATION_DOMAINS = "domains", ["Example.com", "example.org"]

    assert registration_policy().mode == "domains"
    assert registration_policy().domain_list == ["example.com", "example.org"]
    settings.REGISTRATION_MODE = "open"
    assert registration_policy().mode == "domains"


def mode_warnings() -> list[str]:
    return [message.msg for message in checks.run_checks(include_deployment_checks=True)
            if message.id == "accounts.W001"]


def test_a_mode_in_the_environment_that_the_database_contradicts_is_a_deploy_check_warning(settings, monkeypatch):
    """`make run` stored open on the first visit; production later sets REGISTRATION_MODE=closed."""
    RegistrationPolicy.objects.create(id=1, mode="open")
    monkeypatch.setenv("REGISTRATION_MODE", "closed")
    settings.REGISTRATION_MODE = "closed"

    assert mode_warnings() == [
        ("REGISTRATION_MODE is closed, but this site's registration policy, stored in its database, is open: "
         "open applies. The variable only sets the first value."),
    ]


def test_no_warning_when_they_agree_when_the_variable_is_unset_or_before_the_first_use(settings, monkeypatch):
    monkeypatch.setenv("REGISTRATION_MODE", "invite")
    settings.REGISTRATION_MODE = "invite"
    assert mode_warnings() == []  # no row yet: the variable will seed it
    RegistrationPolicy.objects.create(id=1, mode="invite")
    assert mode_warnings() == []
    RegistrationPolicy.objects.filter(id=1).update(mode="open")  # an admin's choice, the variable unset
    monkeypatch.delenv("REGISTRATION_MODE")
    assert mode_warnings() == []


def settings_of(**env) -> str:
    code = "import django; django.setup(); from django.conf import settings; print(settings.REGISTRATION_MODE)"
    clean = {name: value for name, value in os.environ.items() if name != "REGISTRATION_MODE"}
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_production_starts_closed_and_make_run_open():
    assert settings_of(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=REAL_KEY) == "closed"
    assert settings_of(DJANGO_DEBUG="1") == "open"
    assert settings_of(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=REAL_KEY, REGISTRATION_MODE="invite") == "invite"


def test_an_unknown_mode_stops_start_up():
    code = "import django; django.setup()"
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "REGISTRATION_MODE": "everyone"},
    )

    assert result.returncode != 0 and "REGISTRATION_MODE must be closed, invite, domains or open" in result.stderr


@pytest.mark.parametrize(
    ("mode", "email", "allowed"),
    [
        ("open", "anyone@anywhere.net", True),
        ("domains", "someone@example.com", True),
        ("domains", "someone@EXAMPLE.COM", True),
        ("domains", "someone@mail.example.com", False),
        ("domains", "someone@example.com.evil.net", False),
        ("domains", "", False),
        ("invite", "someone@example.com", False),
        ("closed", "someone@example.com", False),
    ],
)
def test_sign_up_allowed_without_an_invite_follows_the_mode(mode, email, allowed):
    RegistrationPolicy.objects.update_or_create(id=1, defaults={"mode": mode, "domains": "example.com"})

    assert sign_up_allowed(email=email) is allowed


def test_sign_up_allowed_with_an_invite_ignores_the_mode_but_not_the_invite(admin_user):
    RegistrationPolicy.objects.update_or_create(id=1, defaults={"mode": "closed"})
    invite = services.invite_create(created_by=admin_user, email="invitee@example.com")

    assert sign_up_allowed(email="INVITEE@example.com", invite=invite)
    assert not sign_up_allowed(email="other@example.com", invite=invite)
    services.invite_revoke(invite=invite, by=admin_user)
    assert not sign_up_allowed(email="invitee@example.com", invite=invite)


def test_a_superuser_changes_the_mode_in_the_admin_and_it_is_audited(client, admin_user, settings):
    settings.REGISTRATION_MODE = "open"
    registration_policy()
    client.force_login(admin_user)

    listing = client.get(reverse("admin:accounts_registrationpolicy_changelist"))
    response = client.post(
        reverse("admin:accounts_registrationpolicy_change", args=[1]), {"mode": "domains", "domains": "example.com"},
    )

    assert listing["Location"] == reverse("admin:accounts_registrationpolicy_change", args=[1])
    assert response.status_code == 302 and registration_policy().mode == "domains"
    event = AuditEvent.objects.get(action="registration.changed")
    assert event.actor == admin_user
    assert event.detail == {
        "mode": "domains", "previous_mode": "open", "domains": ["example.com"], "previous_domains": [],
    }


def test_staff_who_are_not_superusers_may_look_but_not_change(client, staff_user):
    registration_policy()
    client.force_login(staff_user)

    page = client.get(reverse("admin:accounts_registrationpolicy_change", args=[1]))
    response = client.post(reverse("admin:accounts_registrationpolicy_change", args=[1]), {"mode": "open"})

    assert page.status_code == 200 and 'name="mode"' not in page.content.decode()
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="registration.changed").exists()


def test_a_user_who_is_not_staff_is_sent_to_the_admin_login(client, owner):
    client.force_login(owner)

    response = client.get(reverse("admin:accounts_registrationpolicy_change", args=[1]))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_an_admin_creates_a_user_with_an_address_and_a_taken_address_is_refused(
    client, admin_user, django_user_model,
):
    client.force_login(admin_user)
    form = {"username": "newhire", "email": "newhire@example.com", "usable_password": "true",
            "password1": "a-long-passphrase-3", "password2": "a-long-passphrase-3"}

    created = client.post(reverse("admin:accounts_user_add"), form)
    refused = client.post(reverse("admin:accounts_user_add"), {**form, "username": "other", "email": "NEWHIRE@example.com"})

    assert created.status_code == 302
    assert refused.status_code == 200
    assert "An account with this email address already exists." in refused.content.decode()
    holders = django_user_model.objects.filter(email__iexact="newhire@example.com")
    assert list(holders.values_list("username", flat=True)) == ["newhire"]
