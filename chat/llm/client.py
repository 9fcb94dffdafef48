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
    """A response body that fails with ReadTimeout once a read of it has waited `timeout` seconds for a byte.

    One watchdog timer per stream, not one per chunk. A reading task only notes when it began to wait; the
    timer, when it comes due, looks at that mark: a read that has waited long enough is cancelled, anything else
    re-arms the timer `timeout` after the current wait began. A healthy stream re-arms it once every `timeout`
    seconds, where `asyncio.timeout` around each read pushed and cancelled a timer for every token
    (bench/turn_costs.py).

    The cancellation follows asyncio.timeout's own protocol, because its lesson stands: `wait_for` on Python
    3.11 can swallow a cancellation (a user's Stop) that lands just as a chunk arrives. So the task is cancelled,
    and on the way out the cancellation is taken back (`uncancel`) and becomes a ReadTimeout only when nobody
    else cancelled the task meanwhile; a Stop that lands at the same moment goes on as a cancellation. The
    timer cancels only while the task is suspended in the read, so the CancelledError always surfaces at that
    read, never in the consumer's code between chunks.
    """

    def __init__(self, inner: httpx2.AsyncByteStream, timeout: float):
        self.inner = inner
        self.timeout = timeout
        self._reader: asyncio.Task | None = None  # the task waiting on a read now, if any
        self._waiting_since = 0.0
        self._expired = False
        self._timer: asyncio.TimerHandle | None = None

    async def __aiter__(self):
        loop = asyncio.get_running_loop()
        chunks = self.inner.__aiter__()
        self._timer = loop.call_at(loop.time() + self.timeout, self._watch)
        try:
            while True:
                task = asyncio.current_task()
                cancelling = task.cancelling()
                self._reader, self._waiting_since = task, loop.time()
                try:
                    chunk = await chunks.__anext__()
                except BaseException as error:
                    self._reader = None
                    # asyncio.timeout's exit: our cancellation is taken back whatever the read raised, and only a
                    # task that nobody else cancelled meanwhile times out.
                    timed_out = self._expired and task.uncancel() <= cancelling
                    if timed_out and isinstance(error, asyncio.CancelledError):
                        raise httpx2.ReadTimeout(f"the model sent nothing for {self.timeout:g} seconds") from None
                    if isinstance(error, StopAsyncIteration):
                        return
                    raise
                self._reader = None
                yield chunk
        finally:
            self._timer.cancel()

    def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._reader is not None and now - self._waiting_since >= self.timeout:
            self._expired = True
            self._reader.cancel()
            return
        began = self._waiting_since if self._reader is not None else now
        self._timer = loop.call_at(began + self.timeout, self._watch)

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
