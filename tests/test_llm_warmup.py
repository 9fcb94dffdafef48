"""Warming a process up at start: the loop's client built, the SDK's first stream made, the models cached, and
a server that starts whatever the API says."""

import asyncio
import sys
import types

import pytest
import twisted.internet
from django.core.cache import cache

from chat.llm import client as client_module
from chat.llm import registry, warmup
from chat.llm.catalog import MODELS
from chat.llm.offline import OfflineModel


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


async def test_under_daphne_the_warm_up_starts_when_the_reactor_runs(monkeypatch, warm_up_models):
    started = []
    reactor = types.SimpleNamespace(callWhenRunning=started.append)
    monkeypatch.setitem(sys.modules, "twisted.internet.reactor", reactor)
    monkeypatch.setattr(twisted.internet, "reactor", reactor, raising=False)

    warmup.process_warm_up_when_serving()
    assert warm_up_models == []  # nothing before the reactor runs
    [start] = started
    start()
    await asyncio.gather(*warmup._started)

    assert len(warm_up_models) == 1
