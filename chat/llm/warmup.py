"""Process warm-up: a process's first turn costs what its next ones do.

A cold process paid, on its first turn, for everything built on first use: the event loop's SDK client, the
SDK's first stream and count (the response and event types' validators, the SSE decoder: about 20 ms, ten times
a warm stream, bench/turn_costs.py), and, with a key, the Models API's list. `process_warm_up` pays for them
when the server starts instead: config/asgi.py's lifespan startup runs it as a task on the server's loop (the
loop the turns run on). Elsewhere (tests, `manage.py` commands) nothing runs it, and the first turn warms the
process. The tools' schemas need nothing here: they are built when chat/llm/tools.py is imported, which asgi.py
does.
"""

import logging

import httpx2
from anthropic import AsyncAnthropic

from chat.llm import registry
from chat.llm.client import OFFLINE_BASE_URL, SilenceWatchdogTransport, anthropic_client
from chat.llm.offline import OfflineModel

log = logging.getLogger(__name__)

WARM_UP_REQUEST = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hello"}]}


async def process_warm_up() -> None:
    """Build what the first turn would, on the running loop (the client belongs to it).

    Never raises: a process that cannot reach the API (or the cache) still starts, and its first turn pays.
    """
    try:
        anthropic_client()
        await registry.models_refresh()
        await _sdk_exercise()
    except Exception:
        log.warning("warming up failed; the first turn will do it instead", exc_info=True)


async def _sdk_exercise() -> None:
    """One count and one tiny stream, the SDK calls a turn makes, through a throwaway client on an offline model
    of its own: nothing is sent to the API, billed, or seen by the process's offline model."""
    transport = SilenceWatchdogTransport(httpx2.MockTransport(OfflineModel().handle))
    client = AsyncAnthropic(
        api_key="offline", base_url=OFFLINE_BASE_URL, max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
    )
    try:
        await client.messages.count_tokens(**WARM_UP_REQUEST)
        async with await client.messages.create(**WARM_UP_REQUEST, max_tokens=16, stream=True) as stream:
            async for _ in stream:
                pass
    finally:
        await client.close()

