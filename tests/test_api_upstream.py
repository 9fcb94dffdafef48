"""The API when the model fails: its refusal relayed with its status and shape, and the call settled all the
same. The SDK talks to the ASGI app in this process (httpx's ASGITransport), so the offline model's faults,
which live in the serving process, can be injected; tests/test_api_proxy.py covers a real server."""

import asyncio

import anthropic
import httpx2
import pytest

from apikeys import relay, services
from billing.models import Reservation
from chat.llm.catalog import MODELS
from chat.models import ApiCall
from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = MODELS[-1].id
ASKED = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def api(owner):
    _, secret = services.api_key_create(user=owner, name="Script")
    transport = httpx2.ASGITransport(app=application)
    return anthropic.AsyncAnthropic(
        base_url="http://127.0.0.1/api/anthropic", api_key=secret, max_retries=0,
        http_client=httpx2.AsyncClient(transport=transport),
    )


async def settled() -> list[ApiCall]:
    """The ledger once every call in flight has settled (each in a task of its own)."""
    while relay.in_flight:
        await asyncio.sleep(0.01)
    return [call async for call in ApiCall.objects.all()]


async def test_an_overloaded_model_is_relayed_with_its_status_and_costs_nothing(api, offline_model_reset):
    offline_model_reset.inject_fault("overloaded")
    with pytest.raises(anthropic.OverloadedError) as raised:
        await api.messages.create(model=MODEL, max_tokens=100, messages=ASKED)
    assert raised.value.body["error"]["type"] == "overloaded_error"

    [call] = await settled()
    assert (call.status, call.http_status, call.cost, call.purpose) == ("error", 529, 0, "api")
    assert not await Reservation.objects.aexists()


async def test_an_upstream_rate_limit_keeps_its_retry_after(api, offline_model_reset):
    offline_model_reset.inject_fault("rate_limit", retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as raised:
        await api.messages.create(model=MODEL, max_tokens=100, messages=ASKED)
    assert raised.value.response.headers["retry-after"] == "7"
    assert (await settled())[0].http_status == 429


async def test_an_error_event_mid_stream_reaches_the_client_and_what_streamed_is_billed(api, offline_model_reset):
    offline_model_reset.inject_fault("error_event", after_tokens=3)
    with pytest.raises(anthropic.APIStatusError) as raised:
        async with api.messages.stream(model=MODEL, max_tokens=500, messages=ASKED) as stream:
            async for _ in stream.text_stream:
                pass
    assert "Overloaded" in str(raised.value)

    [call] = await settled()
    assert call.status == "error" and "error mid-stream" in call.error
    assert call.output_tokens >= 3 and call.cost > 0
    assert not await Reservation.objects.aexists()


async def test_a_call_in_flight_keeps_its_reservation_fresh_for_the_stale_sweep(api, settings):
    settings.CHAT_HEARTBEAT_INTERVAL = 0.05
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 100  # a streamed reply of about a second
    dated = set()

    async def watch():
        while True:
            dated.update([reservation.created_at async for reservation in Reservation.objects.all()])
            await asyncio.sleep(0.02)

    watching = asyncio.create_task(watch())
    async with api.messages.stream(model=MODEL, max_tokens=500, messages=ASKED) as stream:
        await stream.get_final_message()
    watching.cancel()
    assert len(dated) > 2  # dated afresh while the model was answering
    await settled()
    assert not await Reservation.objects.aexists()
