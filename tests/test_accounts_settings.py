"""A user's own monthly cap on the settings page: it can only lower the budget; empty is no cap of their own;
each change is audited."""

from decimal import Decimal

import pytest
from django.urls import reverse

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

VALID = {"default_model": "", "system_prompt": "", "time_zone": "UTC"}


def test_the_form_says_the_cap_only_lowers_the_budget(client, owner):
    client.force_login(owner)

    page = client.get(reverse("user_settings")).content.decode()

    assert "It can only lower your budget, never raise it" in page and "Empty: no cap of your own." in page


def test_a_user_sets_and_clears_their_cap(client, owner):
    client.force_login(owner)

    client.post(reverse("user_settings"), {**VALID, "monthly_cap": "5.50"})
    owner.refresh_from_db()
    assert owner.monthly_cap == Decimal("5.50")

    client.post(reverse("user_settings"), {**VALID, "monthly_cap": ""})
    owner.refresh_from_db()
    assert owner.monthly_cap is None


def test_each_change_of_the_cap_is_audited_and_other_settings_are_not(client, owner):
    client.force_login(owner)

    client.post(reverse("user_settings"), {**VALID, "monthly_cap": "5.50"}, REMOTE_ADDR="192.0.2.1")
    client.post(reverse("user_settings"), {**VALID, "monthly_cap": "5.5", "system_prompt": "Be brief."})
    client.post(reverse("user_settings"), {**VALID, "monthly_cap": ""})

    events = AuditEvent.objects.filter(action="account.cap_changed").order_by("id")
    assert [(event.actor, event.subject, event.detail) for event in events] == [
        (owner, "owner", {"monthly_cap": "5.50", "previous": None}),
        (owner, "owner", {"monthly_cap": None, "previous": "5.50"}),
    ]
    assert events[0].address == "192.0.2.1"


def test_a_negative_cap_is_refused(client, owner):
    client.force_login(owner)

    response = client.post(reverse("user_settings"), {**VALID, "monthly_cap": "-1"})

    owner.refresh_from_db()
    assert response.status_code == 200 and "field-invalid" in response.content.decode()
    assert owner.monthly_cap is None


def test_the_settings_page_links_to_the_password_change(client, owner):
    client.force_login(owner)

    assert reverse("password_change") in client.get(reverse("user_settings")).content.decode()
