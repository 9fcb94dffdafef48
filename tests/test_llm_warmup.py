"""Warming a process up at start: the loop's client built, the SDK's first stream made, the models cached, and
a server that starts whatever the API says, and starts warming up as it starts serving."""

import asyncio

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.cache import cache

from chat.llm import client as client_module
from chat.llm import registry, warmup
from chat.llm.catalog import MODELS
from chat.llm.offline import OfflineModel
from chat.replies import generation


@pytest.fixture
def warm_up_models(monkeypatch):
    """The offline models the warm-up makes, to count what it asked them."""
    made = []

    def offline_model():
        made.append(OfflineModel())
        return made[-1]

    monkeypatch.setattr(warmup, "OfflineModel", offline_model)
    return made


async def test_the_warm_up_builds_the_loops_client_and_makes_one_count_and_one_stream(
    warm_up_models, offline_model_reset
):
    loop = asyncio.get_running_loop()

    await warmup.process_warm_up()

    assert len(client_module._clients[loop]) == 1
    assert client_module.anthropic_client() is next(iter(client_module._clients[loop].values()))
    [model] = warm_up_models
    assert dict(model.requests_by_path) == {"/v1/messages/count_tokens": 1, "/v1/messages": 1}
    assert dict(offline_model_reset.requests_by_path) == {}  # the process's offline model saw nothing


async def test_with_a_key_the_warm_up_fills_the_models_cache_even_when_the_api_is_unreachable(
    settings, warm_up_models
):
    settings.ANTHROPIC_API_KEY = "sk-test"
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9"  # nothing listens there
    settings.ANTHROPIC_MAX_RETRIES = 0

    await warmup.process_warm_up()

    assert await cache.aget(registry.CACHE_KEY) == MODELS
    assert len(warm_up_models) == 1  # and it carried on to the SDK's first stream


async def test_a_failing_warm_up_is_logged_and_never_raised(monkeypatch, caplog):
    def broken():
        raise OSError("no certificates")

    monkeypatch.setattr(warmup, "anthropic_client", broken)

    await warmup.process_warm_up()

    assert "warming up failed" in caplog.text


async def test_the_servers_lifespan_warms_the_process_up_at_start_and_drains_replies_at_shutdown(
    warm_up_models, monkeypatch
):
    """The server (uvicorn, `--lifespan on`) serves at once; the warm-up runs beside it, on its loop."""
    from config.asgi import application

    monkeypatch.setattr(generation, "draining", False)  # shutdown sets it for the rest of the process

    lifespan = ApplicationCommunicator(application, {"type": "lifespan", "asgi": {"version": "3.0"}})
    await lifespan.send_input({"type": "lifespan.startup"})
    assert await lifespan.receive_output(timeout=10) == {"type": "lifespan.startup.complete"}
    for _ in range(1000):  # the warm-up is a task of its own: wait until it has made its stream
        if warm_up_models and warm_up_models[0].requests_by_path["/v1/messages"]:
            break
        await asyncio.sleep(0.01)
    await lifespan.send_input({"type": "lifespan.shutdown"})
    assert await lifespan.receive_output(timeout=10) == {"type": "lifespan.shutdown.complete"}

    [model] = warm_up_models
    assert dict(model.requests_by_path) == {"/v1/messages/count_tokens": 1, "/v1/messages": 1}
    assert generation.draining  # new turns are refused from shutdown on
