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
from django.db import DatabaseError

from chat.db import db_async
from chat.llm.catalog import MODELS, MODELS_BY_ID, UNKNOWN_MODEL_PRICES, ModelSpec, model_spec
from chat.llm.client import anthropic_client
from lifecycle import selectors as lifecycle_selectors
from lifecycle import services as lifecycle_services

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
    """Every model a user may pick, newest first within each family (the catalog's order, or the API's); never
    a retired one (the lifecycle table, lifecycle/selectors.py), so neither Auto nor a fallback goes to one.

    Never waits on the network: it reads the list `models_refresh` last fetched, else the catalog. (Fetching
    here, from a worker thread, through async_to_sync, deadlocked a busy server: every pool thread waited on a
    fetch that needed a pool thread for its own DNS lookup.)
    """
    retired = lifecycle_selectors.retired_model_ids()
    return tuple(spec for spec in _models_listed_or_built_in() if spec.id not in retired)


def _models_listed_or_built_in() -> tuple[ModelSpec, ...]:
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
    """The API's list, whose lifecycle dates also go to the lifecycle table (an admin's rows excepted)."""
    listed = [info async for info in anthropic_client().models.list(limit=1000)]
    try:
        await db_async(lifecycle_services.lifecycles_from_api)(infos=listed)
    except DatabaseError:  # the table waits for the next refresh; the list is offered all the same
        log.exception("writing the Models API's lifecycle dates failed")
    return _specs_offered(listed)


async def models_fetch(client: anthropic.AsyncAnthropic) -> tuple[ModelSpec, ...]:
    """The models the Models API lists (the SDK follows its pages) that still answer, as ModelSpecs."""
    return _specs_offered([info async for info in client.models.list(limit=1000)])


def _specs_offered(listed) -> tuple[ModelSpec, ...]:
    """Active and deprecated models (the picker labels the deprecated); a retired one no longer answers."""
    return tuple(spec_from_api(info) for info in listed if info.lifecycle != "retired")


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
        server_tools=_server_tools(capabilities, known),
        max_effort=thinking == "adaptive" and _max_effort(capabilities, known),
    )


def _max_effort(capabilities, known: ModelSpec) -> bool:
    """Whether the API says the model takes effort "max"; the catalog's word when it says nothing of effort."""
    level = getattr(getattr(capabilities, "effort", None), "max", None) if capabilities is not None else None
    return known.max_effort if level is None else bool(level.supported)


def _server_tools(capabilities, known: ModelSpec) -> tuple[str, ...]:
    """The server tools the API says the model takes; web fetch goes with web search (the Models API lists no
    capability of its own for it)."""
    server = getattr(capabilities, "server_tools", None) if capabilities is not None else None
    if server is None:
        return known.server_tools
    search = server.web_search.supported
    named = (("web_search", search), ("web_fetch", search), ("code_execution", server.code_execution.supported))
    return tuple(name for name, supported in named if supported)


def _family_prices(family: str):
    return next((spec.prices for spec in MODELS if spec.family == family), UNKNOWN_MODEL_PRICES)
