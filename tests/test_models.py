"""The models on offer, Auto's choice of model, and the fallback down the chain when a model stays overloaded."""

import httpx2
import pytest
from anthropic import AsyncAnthropic
from anthropic.types import ModelInfo
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from chat.llm import registry, routing
from chat.llm.catalog import MODELS
from chat.llm.offline import offline_transport
from chat.models import ApiCall, Conversation
from test_consumer import assistant_id, connected, frames_until_final, reload

CAPABLE = {"supported": True}
UNABLE = {"supported": False}


def offline_client() -> AsyncAnthropic:
    return AsyncAnthropic(
        api_key="offline", base_url="http://offline-model.invalid", max_retries=0,
        http_client=httpx2.AsyncClient(transport=offline_transport()),
    )


async def test_the_models_api_list_becomes_the_registry():
    client = offline_client()
    try:
        specs = await registry.models_fetch(client)
    finally:
        await client.close()

    assert [spec.id for spec in specs] == [spec.id for spec in MODELS]
    assert [(s.display_name, s.family, s.context_window, s.max_output, s.prices) for s in specs] == [
        (s.display_name, s.family, s.context_window, s.max_output, s.prices) for s in MODELS
    ]


def test_capabilities_from_the_api_say_what_a_model_can_do():
    info = ModelInfo.construct(**{
        "type": "model", "id": "claude-sonnet-9", "display_name": "Claude Sonnet 9",
        "created_at": "2027-01-01T00:00:00Z", "lifecycle": "active", "line": "sonnet", "max_input_tokens": 500_000, "max_tokens": 128_000,
        "capabilities": {
            "image_input": CAPABLE, "pdf_input": UNABLE,
            "thinking": {"supported": True, "types": {
                "adaptive": UNABLE, "enabled": CAPABLE, "disabled": CAPABLE, "between_tools": UNABLE,
            }},
        },
    })

    spec = registry.spec_from_api(info)

    assert (spec.family, spec.context_window, spec.max_output) == ("sonnet", 500_000, 128_000)
    assert (spec.vision, spec.pdf, spec.thinking) == (True, False, "enabled")
    assert spec.prices == next(s.prices for s in MODELS if s.family == "sonnet")


def test_without_a_key_the_built_in_catalog_is_offered(settings):
    settings.ANTHROPIC_API_KEY = ""

    assert registry.models_offered() == MODELS


def test_reading_the_models_on_offer_never_waits_on_the_network(settings, caplog):
    """Sync readers run on worker threads; a fetch there once deadlocked a busy server."""
    settings.ANTHROPIC_API_KEY = "sk-test"
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9"  # nothing listens there

    assert registry.models_offered() == MODELS
    assert "Models API" not in caplog.text


def test_an_unreachable_models_api_falls_back_to_the_catalog_for_a_while(settings, caplog):
    settings.ANTHROPIC_API_KEY = "sk-test"
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9"  # nothing listens there
    settings.ANTHROPIC_MAX_RETRIES = 0

    async_to_sync(registry.models_refresh)()
    async_to_sync(registry.models_refresh)()

    assert registry.models_offered() == MODELS
    assert caplog.text.count("the Models API failed") == 1  # the fallback is cached too


@pytest.mark.parametrize(
    ("text", "attachments", "family", "reason"),
    [
        ("Classify this review as positive or negative: great phone!", 0, "haiku", "“Classify”"),
        ("Extract the dates from: we met on 3 May and 9 June.", 0, "haiku", "“Extract”"),
        ("Prove that the square root of 2 is irrational.", 0, "opus", "careful reasoning (“Prove”)"),
        ("Walk me through it step by step", 0, "opus", "“step by step”"),
        ("Please review this. " * 250, 0, "opus", "a long message (5,000 characters)"),
        ("What do these show?", 3, "opus", "3 attachments"),
        ("Classify these", 1, "sonnet", "an everyday request"),
        ("What is a B-tree?", 0, "sonnet", "an everyday request"),
    ],
)
def test_auto_routes_by_the_task(text, attachments, family, reason):
    route = routing.route(registry.AUTO, text=text, attachment_count=attachments)

    assert registry.model_for(route.model).family == family
    assert reason in route.reason


def test_a_model_the_user_picked_is_kept_without_a_reason():
    assert routing.route("claude-opus-4-6", text="Classify this", attachment_count=0) == routing.Route("claude-opus-4-6")


def test_fallback_goes_down_the_chain_and_stops_at_haiku():
    chain, model = [], "claude-opus-5-5"
    while model:
        chain.append(model)
        fallback = routing.fallback_model(model)
        model = fallback.id if fallback else None

    assert chain == ["claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_auto_shows_its_choice_and_keeps_auto_for_the_next_message(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Classify this as spam or not: WIN A PRIZE", "model": "auto"})

    frames = await frames_until_final(socket)

    final = frames[-1]["message"]
    assert final["model"] == "claude-haiku-5-5" and final["route_reason"] == "a short, well-defined task (“Classify”)"
    assert (await reload(final["id"])).route_reason == final["route_reason"]
    changed = next(frame for frame in frames if frame["type"] == "conversation")
    assert changed["conversation"]["model"] == "auto"
    await socket.send_json_to({"type": "send", "text": "Now prove it, rigorously."})
    assert (await frames_until_final(socket))[-1]["message"]["model"] == "claude-opus-5-5"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_a_model_that_stays_overloaded_falls_back_to_the_next_one_down(
    socket_for, owner, conversation, settings, offline_model_reset
):
    settings.ANTHROPIC_MAX_RETRIES = 2
    offline_model_reset.inject_fault("overloaded", times=3)  # the first model's three attempts
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Hello?", "model": "claude-opus-5-5"})

    frames = await frames_until_final(socket)

    message = await reload(assistant_id(frames))
    assert (message.status, message.model) == ("complete", "claude-sonnet-5-5")
    assert message.notices == ["Claude Opus 5.5 was overloaded, so Claude Sonnet 5.5 wrote this reply instead."]
    assert frames[-1]["message"]["notices"] == message.notices
    calls = await database_sync_to_async(lambda: list(ApiCall.objects.filter(message=message).order_by("id")))()
    assert [(c.model, c.http_status, c.attempt, c.status, c.is_fallback) for c in calls] == [
        ("claude-opus-5-5", 529, 1, "error", False),
        ("claude-opus-5-5", 529, 2, "error", False),
        ("claude-opus-5-5", 529, 3, "error", False),
        ("claude-sonnet-5-5", 200, 1, "ok", True),
    ]
    assert message.cost == calls[-1].cost > 0
    conversation_model = await database_sync_to_async(lambda: Conversation.objects.get(pk=conversation.pk).model)()
    assert conversation_model == "claude-opus-5-5"  # the user's pick stays for the next message
