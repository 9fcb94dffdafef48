"""The one place that builds the SDK client: the real API with a key, the offline model without.

Nothing above this module knows which of the two it talks to.
"""

import asyncio

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
    """Fails a response body that goes silent for `timeout` seconds.

    It watches bytes, not SDK events: the SDK drops `ping` events before we see them, and a ping is proof
    that the upstream is alive. It wraps every transport alike, so the real API and the offline model are
    abandoned by the same rule.
    """

    def __init__(self, inner: httpx2.AsyncBaseTransport, timeout: float):
        self.inner = inner
        self.timeout = timeout

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        response.stream = _SilenceWatchedStream(response.stream, self.timeout)
        return response

    async def aclose(self):
        await self.inner.aclose()


def anthropic_client(*, on_response=None, max_retries: int | None = None) -> AsyncAnthropic:
    """A client for one turn. `on_response` sees every HTTP attempt, retries included (the ledger needs them)."""
    if settings.ANTHROPIC_API_KEY:
        inner, api_key = httpx2.AsyncHTTPTransport(), settings.ANTHROPIC_API_KEY
        base_url = settings.ANTHROPIC_BASE_URL or None
    else:
        inner, api_key, base_url = offline_transport(), "offline", OFFLINE_BASE_URL
    http_client = httpx2.AsyncClient(
        transport=SilenceWatchdogTransport(inner, settings.CHAT_UPSTREAM_SILENCE_TIMEOUT),
        event_hooks={"response": [on_response]} if on_response else {},
        timeout=httpx2.Timeout(600, connect=10),
    )
    return AsyncAnthropic(
        api_key=api_key,
        base_url=base_url,
        http_client=http_client,
        max_retries=settings.ANTHROPIC_MAX_RETRIES if max_retries is None else max_retries,
    )
