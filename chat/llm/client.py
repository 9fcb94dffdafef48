"""The one place that builds the SDK client: the real API with a key, the offline model without.

Nothing above this module knows which of the two it talks to.
"""

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

import httpx2
from anthropic import AsyncAnthropic
from django.conf import settings

from chat.llm.offline import offline_transport

OFFLINE_BASE_URL = "http://offline-model.invalid"


class _SilenceWatchedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, timeout: float):
        self.inner = inner
        self.timeout = timeout

    async def __aiter__(self):
        chunks = self.inner.__aiter__()
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation (a user's
                # Stop) that lands just as a chunk arrives.
                async with asyncio.timeout(self.timeout):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise httpx2.ReadTimeout(f"the model sent nothing for {self.timeout:g} seconds") from None
            yield chunk

    async def aclose(self):
        await self.inner.aclose()


class SilenceWatchdogTransport(httpx2.AsyncBaseTransport):
    """Fails a response body that goes silent for CHAT_UPSTREAM_SILENCE_TIMEOUT seconds.

    It watches bytes, not SDK events: the SDK drops `ping` events before we see them, and a ping is proof
    that the upstream is alive. It wraps every transport alike, so the real API and the offline model are
    abandoned by the same rule.
    """

    def __init__(self, inner: httpx2.AsyncBaseTransport):
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        response.stream = _SilenceWatchedStream(response.stream, settings.CHAT_UPSTREAM_SILENCE_TIMEOUT)
        return response

    async def aclose(self):
        await self.inner.aclose()


# Where the HTTP attempts of the request being made are reported (the ledger records retries too). One client
# serves every turn, so each turn's task sets its own recorder.
attempt_recorder: ContextVar[Callable[[httpx2.Response], Awaitable[None]] | None] = ContextVar(
    "attempt_recorder", default=None
)

# Like the SDK's own default: a shared client must not queue hundreds of concurrent streams behind 100 sockets.
CONNECTION_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, AsyncAnthropic]]" = (
    weakref.WeakKeyDictionary()
)


def anthropic_client() -> AsyncAnthropic:
    """The client of the running event loop, shared by every turn.

    Built once per loop (and per settings, so tests that change them get a matching client): a client per turn
    cost a new TLS context and certificate load each time, most of the event loop's time before the first
    token under load, and a shared one keeps connections to the API alive between turns. Never close it.
    """
    key = (settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL, settings.ANTHROPIC_MAX_RETRIES)
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    if key not in clients:
        clients[key] = _client_build()
    return clients[key]


def _client_build() -> AsyncAnthropic:
    if settings.ANTHROPIC_API_KEY:
        inner, api_key = httpx2.AsyncHTTPTransport(limits=CONNECTION_LIMITS), settings.ANTHROPIC_API_KEY
        base_url = settings.ANTHROPIC_BASE_URL or None
    else:
        inner, api_key, base_url = offline_transport(), "offline", OFFLINE_BASE_URL
    http_client = httpx2.AsyncClient(
        transport=SilenceWatchdogTransport(inner),
        event_hooks={"response": [_report_attempt]},
        timeout=httpx2.Timeout(600, connect=10),
    )
    return AsyncAnthropic(
        api_key=api_key, base_url=base_url, http_client=http_client, max_retries=settings.ANTHROPIC_MAX_RETRIES
    )


async def _report_attempt(response: httpx2.Response) -> None:
    recorder = attempt_recorder.get()
    if recorder is not None:
        await recorder(response)
