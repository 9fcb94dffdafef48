"""Every form with a budget or a limit says what an empty field and what 0 mean, since they differ: empty is the
default (or none), 0 dollars is nothing to spend, 0 per minute is no rate limit (docs/deploy.md, "Hardening")."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.forms import UserSettingsForm
from teams.forms import TeamBudgetForm

pytestmark = pytest.mark.django_db

MEANINGS = {
    "monthly_budget": ("Empty: the site default.", "0: nothing may be spent."),
    "rate_limit_requests_per_minute": ("Empty: the site default.", "0: no limit."),
    "rate_limit_tokens_per_minute": ("Empty: the site default.", "0: no limit."),
}


def test_the_admins_user_page_says_what_empty_and_0_mean_for_each_budget_and_limit(owner, django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1")
    client = Client()
    client.force_login(admin)

    form = client.get(reverse("admin:accounts_user_change", args=[owner.pk])).context["adminform"].form

    for field, (empty, zero) in MEANINGS.items():
        assert empty in form.fields[field].help_text and zero in form.fields[field].help_text, field


def test_a_users_own_cap_says_what_empty_and_0_mean():
    help_text = UserSettingsForm().fields["monthly_cap"].help_text

    assert "Empty: no cap of your own." in help_text and "0: nothing may be spent." in help_text


def test_a_groups_budget_says_what_empty_and_0_mean():
    help_text = TeamBudgetForm().fields["monthly_budget"].help_text

    assert "Empty: no group budget." in help_text and "0: members may spend nothing." in help_text
