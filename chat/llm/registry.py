"""The models on offer: the Models API's list when a key is set, the built-in catalog otherwise.

The API's list is read at most once an hour per cache (Redis with REDIS_URL, so once for every process) and
falls back to the catalog, for five minutes, when the API cannot be reached: the picker never breaks because
the model list did. The API says what each model is (window, output limit, vision, PDFs, thinking); prices come
from the catalog, by id or else by family, since the API does not publish them (billing's price table wins).
"""

import asyncio
import logging
import time
import weakref

import anthropic
import httpx2
from django.conf import settings
from django.core.cache import cache

from chat.llm.catalog import MODELS, MODELS_BY_ID, UNKNOWN_MODEL_PRICES, ModelSpec, model_spec
from chat.llm.client import anthropic_client

log = logging.getLogger(__name__)

# The picker's choice that lets chat/llm/routing.py pick the model for each message.
AUTO = "auto"
CACHE_KEY = "chat:models-offered"
CACHE_SECONDS = 3600
CACHE_SECONDS_AFTER_FAILURE = 300
# Each process keeps the shared list this long, so a turn reads it from memory, not from Redis.
PROCESS_SECONDS = 60


class _ProcessCopy:
    """The list as this process last read it from the shared cache, and until when it is trusted."""

    models: tuple[ModelSpec, ...] = ()
    until: float = 0.0

    def fresh(self) -> tuple[ModelSpec, ...] | None:
        return self.models if self.models and time.monotonic() < self.until else None

    def keep(self, models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        self.models, self.until = models, time.monotonic() + PROCESS_SECONDS
        return models


_process_copy = _ProcessCopy()


def models_offered() -> tuple[ModelSpec, ...]:
    """Every model a user may pick, newest first within each family (the catalog's order, or the API's).

    Never waits on the network: it reads the list `models_refresh` last fetched, else the catalog. (Fetching
    here, from a worker thread, through async_to_sync, deadlocked a busy server: every pool thread waited on a
    fetch that needed a pool thread for its own DNS lookup.)
    """
    if not settings.ANTHROPIC_API_KEY:
        return MODELS
    kept = _process_copy.fresh()
    if kept is not None:
        return kept
    shared = cache.get(CACHE_KEY)
    return _process_copy.keep(shared) if shared else MODELS


async def models_refresh() -> None:
    """Fetch the Models API's list into the cache when it is missing or expired, on the event loop.

    Called from async code before the list is read; one fetch per process at a time, however many sockets ask.
    """
    if not settings.ANTHROPIC_API_KEY or _process_copy.fresh() is not None:
        return
    shared = await cache.aget(CACHE_KEY)
    if shared is not None:
        _process_copy.keep(shared)
        return
    loop = asyncio.get_running_loop()
    lock = _refresh_locks.setdefault(loop, asyncio.Lock())
    async with lock:
        if await cache.aget(CACHE_KEY) is not None:
            return
        try:
            offered = await _models_listed()
        except (anthropic.APIError, httpx2.HTTPError) as error:
            log.warning("the Models API failed, offering the built-in list: %r", error)
            offered = ()
        seconds = CACHE_SECONDS if offered else CACHE_SECONDS_AFTER_FAILURE
        await cache.aset(CACHE_KEY, offered or MODELS, seconds)
        _process_copy.keep(offered or MODELS)


_refresh_locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = weakref.WeakKeyDictionary()


def model_offered(model_id: str) -> bool:
    return any(spec.id == model_id for spec in models_offered())


def model_for(model_id: str) -> ModelSpec:
    """What we know of `model_id`: the offered entry, else the catalog's (conservative for an unknown id)."""
    return next((spec for spec in models_offered() if spec.id == model_id), None) or model_spec(model_id)


def family_model(family: str) -> ModelSpec | None:
    """The first offered model of a family ("opus", "sonnet", "haiku"): where Auto and fallbacks go."""
    return next((spec for spec in models_offered() if spec.family == family), None)


async def _models_listed() -> tuple[ModelSpec, ...]:
    return await models_fetch(anthropic_client())


async def models_fetch(client: anthropic.AsyncAnthropic) -> tuple[ModelSpec, ...]:
    """The active models the Models API lists (the SDK follows its pages), as ModelSpecs."""
    listed = [info async for info in client.models.list(limit=1000)]
    return tuple(spec_from_api(info) for info in listed if info.lifecycle == "active")


def spec_from_api(info) -> ModelSpec:
    known = MODELS_BY_ID.get(info.id) or model_spec(info.id)
    family = info.line or known.family
    capabilities = info.capabilities
    thinking = known.thinking
    if capabilities is not None:
        types = capabilities.thinking.types
        thinking = "adaptive" if types.adaptive.supported else "enabled" if types.enabled.supported else ""
    return ModelSpec(
        id=info.id,
        display_name=info.display_name,
        family=family,
        context_window=info.max_input_tokens or known.context_window,
        max_output=info.max_tokens or known.max_output,
        prices=known.prices if info.id in MODELS_BY_ID else _family_prices(family),
        vision=capabilities.image_input.supported if capabilities else known.vision,
        pdf=capabilities.pdf_input.supported if capabilities else known.pdf,
        created_at=info.created_at.isoformat().replace("+00:00", "Z"),
        thinking=thinking,
    )


def _family_prices(family: str):
    return next((spec.prices for spec in MODELS if spec.family == family), UNKNOWN_MODEL_PRICES)
