"""The API facing what a caller may send: bodies the SDK could not send again, a retired model, tools and betas
whose cost the budgets cannot count, a model out of reach; each refused (or failed) in the API's shape, nothing
billed for a request that never left, nothing reserved afterwards. And the settings page's forms need their CSRF
token. The SDK, or a plain HTTP client for bodies it would not make, talks to the ASGI app in this process
(httpx's ASGITransport), as in tests/test_api_upstream.py."""

import asyncio
from datetime import timedelta

import anthropic
import httpx2
import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apikeys import relay, services
from apikeys.models import ApiKey
from billing import selectors as billing_selectors
from billing.models import Reservation
from chat.llm.catalog import MODELS, model_spec
from chat.models import ApiCall
from config.asgi import application
from lifecycle.models import ModelLifecycle

MODEL = MODELS[-1].id
ASKED = [{"role": "user", "content": "Hello"}]
HEAD = f'{{"model": "{MODEL}", "max_tokens": 10, '


@pytest.fixture
def secret(owner):
    return services.api_key_create(user=owner, name="Script")[1]


def sdk(secret: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url="http://127.0.0.1/api/anthropic", api_key=secret, max_retries=0, http_client=http(),
    )


def http() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=application), base_url="http://127.0.0.1")


async def settled() -> list[ApiCall]:
    """The ledger once every call in flight has settled (each in a task of its own)."""
    while relay.in_flight:
        await asyncio.sleep(0.01)
    return [call async for call in ApiCall.objects.all()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["messages", "messages/count_tokens"])
@pytest.mark.parametrize("body, reason", [
    (HEAD + '"temperature": NaN, "messages": [{"role": "user", "content": "Hi"}]}', "is not valid JSON"),
    (HEAD + '"messages": [{"role": "user", "content": "\\ud800"}]}', "is not valid JSON"),  # a lone surrogate
    (HEAD.encode() + b'"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}', "is not valid JSON"),
    (HEAD + '"metadata": ' + "[" * 100_000 + "]" * 100_000 + ', "messages": []}', "is nested too deeply"),
    (HEAD + '"stream": "yes", "messages": [{"role": "user", "content": "Hi"}]}', "stream: Input should be"),
    ('{"model": "claude\\u0000", "max_tokens": 10, "messages": []}', "is not a model id"),
])
async def test_a_body_the_sdk_could_not_send_or_a_model_id_the_database_could_not_take_is_refused(
    secret, offline_model_reset, path, body, reason
):
    async with http() as client:
        answer = await client.post(f"/api/anthropic/v1/{path}", content=body, headers={"x-api-key": secret})

    if path == "messages/count_tokens" and reason.startswith("stream"):
        # count_tokens has no `stream` (nor `max_tokens`): the offline model refuses them as the API does
        assert answer.status_code == 400 and "Extra inputs are not permitted" in answer.json()["error"]["message"]
        return
    expected = (404, "not_found_error") if "model id" in reason else (400, "invalid_request_error")
    assert (answer.status_code, answer.json()["error"]["type"]) == expected
    assert reason in answer.json()["error"]["message"]
    assert await settled() == [] and not await Reservation.objects.aexists()
    assert not offline_model_reset.received


@pytest.mark.django_db(transaction=True)
async def test_no_depth_of_nesting_is_a_server_error_or_billed_unsent(secret, offline_model_reset, settings):
    """Near the recursion limit a body that parses here could be too deep for the SDK's encoder or the offline
    model's parser, further down the stack; where that is depends on the stack, so every depth near it is
    tried: each is answered or refused as too deep, and only what was answered costs anything."""
    settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    answers = []
    async with http() as client:
        for depth in range(500, 1000, 20):
            nested = "[" * depth + "]" * depth
            body = HEAD + f'"metadata": {nested}, "messages": [{{"role": "user", "content": "Hi"}}]}}'
            answers.append(await client.post("/api/anthropic/v1/messages", content=body, headers={"x-api-key": secret}))
    assert {answer.status_code for answer in answers} == {200, 400}
    assert all("nested too deeply" in answer.text for answer in answers if answer.status_code == 400)
    calls = await settled()
    assert [call.status for call in calls] == ["ok"] * len([a for a in answers if a.status_code == 200])
    assert not await Reservation.objects.aexists()


@pytest.mark.django_db(transaction=True)
async def test_a_retired_model_is_refused_naming_its_successor_and_never_sent(secret, offline_model_reset):
    successor = MODELS[0].id
    await ModelLifecycle.objects.aupdate_or_create(
        model=MODEL, defaults={"retires_on": timezone.now().date() - timedelta(days=1), "successor": successor},
    )
    api = sdk(secret)
    with pytest.raises(anthropic.NotFoundError) as raised:
        await api.messages.create(model=MODEL, max_tokens=10, messages=ASKED)
    assert raised.value.body["error"]["type"] == "not_found_error"
    assert f"use {successor} instead" in raised.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError):
        await api.messages.count_tokens(model=MODEL, messages=ASKED)
    assert MODEL not in [model.id async for model in api.models.list()]

    assert not offline_model_reset.received and await settled() == []


@pytest.mark.django_db(transaction=True)
async def test_tools_billed_per_use_and_betas_beyond_the_price_table_are_refused(secret, offline_model_reset):
    api = sdk(secret)
    with pytest.raises(anthropic.BadRequestError) as raised:
        await api.messages.create(model=MODEL, max_tokens=10, messages=ASKED, tools=[
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 50}])
    assert "tools.0: web_search_20250305 is billed per use" in raised.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as raised:
        await api.messages.create(model=MODEL, max_tokens=10, messages=ASKED, extra_headers={
            "anthropic-beta": "fine-grained-tool-streaming-2025-05-14, context-1m-2025-08-07"})
    assert "context-1m-2025-08-07 is not offered" in raised.value.body["error"]["message"]

    assert not offline_model_reset.received and await settled() == []


@pytest.mark.django_db(transaction=True)
async def test_a_model_out_of_reach_is_a_502_and_costs_nothing(secret, settings):
    settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL = "sk-ant-test", "http://127.0.0.1:9"  # nothing listens
    with pytest.raises(anthropic.InternalServerError) as raised:
        await sdk(secret).messages.create(model=MODEL, max_tokens=4000, messages=ASKED)
    assert raised.value.status_code == 502 and raised.value.body["error"]["type"] == "api_error"

    [call] = await settled()
    assert (call.status, call.cost, call.output_tokens) == ("error", 0, 0)
    assert not await Reservation.objects.aexists()


@pytest.mark.django_db
def test_an_api_call_reserves_its_input_as_one_hour_cache_writes(owner):
    """The caller sets cache_control, so the whole input may be written at the 1-hour price, the dearest."""
    key, _ = services.api_key_create(user=owner, name="Cached")
    admitted = services.api_call_admit(api_key=key, model=MODEL, input_tokens=50_000, max_tokens=1000)

    held = Reservation.objects.get(pk=admitted.reservation_id).amount
    spec = model_spec(MODEL)
    worst = {ttl: billing_selectors.reply_worst_case(
        input_tokens=50_000, max_tokens=1000, requests=1, window=spec.context_window, prices=spec.prices,
        cache_ttl=ttl,
    ) for ttl in ("5m", "1h")}
    assert held == worst["1h"] > worst["5m"]
    assert held >= 50_000 * spec.prices.cache_write_1h / 1_000_000 + 1000 * spec.prices.output / 1_000_000


@pytest.mark.django_db
def test_the_settings_forms_need_their_csrf_token(owner):
    key, _ = services.api_key_create(user=owner, name="CI")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)

    assert browser.post(reverse("api_key_create"), {"key-name": "Forged"}).status_code == 403
    assert browser.post(reverse("api_key_revoke", args=[key.pk])).status_code == 403
    assert list(ApiKey.objects.values_list("name", "revoked_at")) == [("CI", None)]


@pytest.mark.django_db(transaction=True)
async def test_a_key_revoked_while_its_call_waits_admits_nothing(owner, secret):
    """The key is read again under the user's lock: a revocation that lands between the key check and the
    reservation admits nothing."""
    key = await ApiKey.objects.aget(user=owner)
    await sync_to_async(services.api_key_revoke)(api_key=key)
    with pytest.raises(services.ApiError) as raised:
        await sync_to_async(services.api_call_admit)(api_key=key, model=MODEL, input_tokens=10, max_tokens=10)
    assert (raised.value.status, raised.value.message) == (401, "This API key has been revoked.")
    assert not await Reservation.objects.aexists() and not await ApiCall.objects.aexists()


@pytest.mark.django_db(transaction=True)
async def test_a_body_the_sdk_cannot_encode_after_all_is_refused_unsent_and_unbilled(owner, offline_model_reset):
    """The views let no such body through; should one pass them, the exchange refuses it and bills nothing."""
    key, _ = await sync_to_async(services.api_key_create)(user=owner, name="Script")
    admitted = await sync_to_async(services.api_call_admit)(
        api_key=key, model=MODEL, input_tokens=10, max_tokens=4000
    )
    exchange = relay.Exchange(admitted, model=MODEL, stream=False)
    with pytest.raises(services.ApiError) as raised:
        await exchange.send({"model": MODEL, "max_tokens": 4000, "messages": ASKED, "temperature": float("nan")}, {})
    exchange.done()

    assert raised.value.status == 400
    assert raised.value.message.startswith("The request cannot be sent: Out of range float values")
    [call] = await settled()
    assert (call.status, call.cost) == ("error", 0)
    assert not offline_model_reset.received and not await Reservation.objects.aexists()


@pytest.mark.django_db(transaction=True)
async def test_an_endpoint_not_served_is_a_404_in_the_apis_shape(secret):
    with pytest.raises(anthropic.NotFoundError) as raised:
        await sdk(secret).messages.batches.list()
    assert raised.value.body["error"] == {
        "type": "not_found_error", "message": "GET /api/anthropic/v1/messages/batches is not served here."}


@pytest.mark.django_db(transaction=True)
async def test_the_model_refusing_the_servers_own_key_is_not_the_callers_401(secret, offline_model_reset, monkeypatch):
    """Relayed as it came, the caller's SDK would raise AuthenticationError, as if the caller's key were bad."""
    from chat.llm.offline import model as offline

    monkeypatch.setitem(offline.STATUS_FAULTS, "unauthorised", (401, "authentication_error", "invalid x-api-key"))
    monkeypatch.setattr(offline, "FAULT_KINDS", (*offline.FAULT_KINDS, "unauthorised"))
    offline_model_reset.inject_fault("unauthorised")
    with pytest.raises(anthropic.InternalServerError) as raised:
        await sdk(secret).messages.create(model=MODEL, max_tokens=100, messages=ASKED)
    assert (raised.value.status_code, raised.value.body["error"]["type"]) == (502, "api_error")
    assert "this server's own credentials" in raised.value.body["error"]["message"]

    [call] = await settled()
    assert (call.http_status, call.cost) == (401, 0)


@pytest.mark.django_db
def test_a_user_holds_at_most_fifty_keys_that_are_not_revoked(owner):
    browser = Client()
    browser.force_login(owner)
    keys = [services.api_key_create(user=owner, name=f"Key {number}")[0] for number in range(50)]

    refused = browser.post(reverse("api_key_create"), {"key-name": "One more"})
    assert refused.status_code == 400
    assert "You have 50 keys that are not revoked" in refused.content.decode()
    assert ApiKey.objects.count() == 50

    services.api_key_revoke(api_key=keys[0])
    assert browser.post(reverse("api_key_create"), {"key-name": "One more"}).status_code == 201
