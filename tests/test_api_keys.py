"""Personal API keys: made, listed and revoked on the settings page, stored as a hash, checked and admitted
with the key's own cap as one more budget (the API itself, through the SDK: tests/test_api_proxy.py)."""

import hashlib
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apikeys import selectors, services
from apikeys.errors import ApiError
from apikeys.models import ApiKey, ApiPolicy
from billing.ledger import UpstreamRequest
from billing.models import Reservation
from chat.llm.catalog import MODELS
from chat.llm.pricing import TokenUsage
from chat.models import ApiCall
from teams.models import Membership, Team

pytestmark = pytest.mark.django_db
MODEL = MODELS[-1].id


@pytest.fixture
def signed_in(owner):
    client = Client()
    client.force_login(owner)
    return client


def test_the_settings_page_makes_a_key_and_shows_its_secret_once(signed_in, owner):
    response = signed_in.post(reverse("api_key_create"), {"key-name": "My script", "key-monthly_cap": "5"})

    assert response.status_code == 201
    assert response["cache-control"] == "no-store"
    secret = re.search(r'<code id="api-key-secret">(sk-chat-[\w-]{43})</code>', response.content.decode()).group(1)
    key = ApiKey.objects.get(user=owner)
    assert (key.name, key.monthly_cap, key.prefix) == ("My script", Decimal("5.00"), secret[:12])
    assert key.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(ApiKey.objects.filter(pk=key.pk).values().get())

    page = signed_in.get(reverse("user_settings")).content.decode()
    assert "My script" in page and key.prefix in page
    assert secret not in page


def test_a_key_cannot_expire_today_or_before(signed_in, owner):
    response = signed_in.post(reverse("api_key_create"), {"key-name": "Old", "key-expires_on": timezone.localdate()})
    assert response.status_code == 400
    assert "Choose a day after today." in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_owner_revokes_a_key_and_an_outsider_cannot(signed_in, owner, outsider):
    key, _ = services.api_key_create(user=owner, name="CI")
    stranger = Client()
    stranger.force_login(outsider)

    assert stranger.post(reverse("api_key_revoke", args=[key.pk])).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None

    assert signed_in.post(reverse("api_key_revoke", args=[key.pk])).status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "Revoked" in signed_in.get(reverse("user_settings")).content.decode()


def test_a_key_is_found_by_its_hash_and_checked(owner):
    key, secret = services.api_key_create(user=owner, name="CLI")
    assert services.api_key_authorise(secret=secret) == key
    assert services.api_key_authorise(secret=selectors.presented_secret({"authorization": f"Bearer {secret}"})) == key
    for made_up in ("sk-chat-" + "x" * 43, secret + "x", "x" * 1000):
        with pytest.raises(ApiError) as raised:
            services.api_key_authorise(secret=made_up)
        assert (raised.value.status, raised.value.error_type) == (401, "authentication_error")
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now())
    with pytest.raises(ApiError, match="expired"):
        services.api_key_authorise(secret=secret)


def test_last_used_is_written_at_most_once_a_minute(owner):
    key, secret = services.api_key_create(user=owner, name="Busy")
    half_a_minute_ago = timezone.now() - timedelta(seconds=30)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=half_a_minute_ago)
    services.api_key_authorise(secret=secret)
    key.refresh_from_db()
    assert key.last_used_at == half_a_minute_ago

    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    services.api_key_authorise(secret=secret)
    key.refresh_from_db()
    assert key.last_used_at > half_a_minute_ago


def test_the_api_can_be_kept_to_groups(owner, outsider):
    team = Team.objects.create(name="Engineering")
    Membership.objects.create(team=team, user=owner)
    policy = selectors.api_policy()
    policy.groups.add(team)
    owner_key, owner_secret = services.api_key_create(user=owner, name="Mine")
    _, outsider_secret = services.api_key_create(user=outsider, name="Theirs")

    assert services.api_key_authorise(secret=owner_secret) == owner_key
    with pytest.raises(ApiError) as raised:
        services.api_key_authorise(secret=outsider_secret)
    assert (raised.value.status, raised.value.error_type) == (403, "permission_error")

    ApiPolicy.objects.update(enabled=False)
    with pytest.raises(ApiError, match="turned off"):
        services.api_key_authorise(secret=owner_secret)


def test_a_keys_cap_counts_its_calls_in_flight_and_its_settled_calls(owner):
    key, _ = services.api_key_create(user=owner, name="Capped", monthly_cap=Decimal("0.04"))
    first = services.api_call_admit(api_key=key, model=MODEL, input_tokens=1000, max_tokens=4000)
    held = Reservation.objects.get(pk=first.reservation_id).amount
    assert Decimal("0.02") < held <= Decimal("0.04")  # a second worst case no longer fits the cap

    with pytest.raises(ApiError) as raised:
        services.api_call_admit(api_key=key, model=MODEL, input_tokens=1000, max_tokens=4000)
    assert (raised.value.status, raised.value.error_type) == (402, "billing_error")
    assert "this API key's $0.04 monthly cap" in raised.value.message

    usage = TokenUsage(input_tokens=1000, output_tokens=100)
    upstream = UpstreamRequest(model=MODEL, usage=usage, purpose=ApiCall.Purpose.API, api_key_id=key.pk)
    services.api_call_settle(admitted=first, upstream=upstream)
    services.api_call_settle(admitted=first, upstream=upstream)  # a retried settle writes nothing twice
    call = ApiCall.objects.get()
    assert (call.api_key, call.purpose, call.conversation, call.message) == (key, "api", None, None)
    assert call.cost == Decimal("0.0015")  # 1,000 in at $1 and 100 out at $5 a million
    assert not Reservation.objects.exists()
    assert services.api_call_admit(api_key=key, model=MODEL, input_tokens=1000, max_tokens=4000)


def test_the_usage_page_has_a_line_per_key(signed_in, owner):
    key, _ = services.api_key_create(user=owner, name="Nightly job")
    ApiCall.objects.create(user=owner, api_key=key, model=MODEL, purpose=ApiCall.Purpose.API, cost=Decimal("0.25"))
    page = signed_in.get(reverse("usage")).content.decode()
    section = page[page.index("Per API key"):]
    assert "Nightly job" in section and "$0.2500" in section
    assert "Deleted conversations" not in page


def test_admins_see_the_key_of_each_call_and_revoke_keys(admin_client, owner):
    key, _ = services.api_key_create(user=owner, name="Deploy bot")
    ApiCall.objects.create(user=owner, api_key=key, model=MODEL, purpose=ApiCall.Purpose.API, cost=Decimal("0.1"))

    ledger = admin_client.get(reverse("admin:chat_apicall_changelist")).content.decode()
    assert f"Deploy bot ({key.prefix}…)" in ledger
    keys_page = admin_client.get(reverse("admin:apikeys_apikey_changelist")).content.decode()
    assert "Deploy bot" in keys_page and key.secret_sha256 not in keys_page

    response = admin_client.post(reverse("admin:apikeys_apikey_changelist"), {
        "action": "revoke", "_selected_action": [key.pk]}, follow=True)
    assert "1 keys revoked" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert admin_client.get(reverse("admin:apikeys_apipolicy_change", args=[1])).status_code == 200
