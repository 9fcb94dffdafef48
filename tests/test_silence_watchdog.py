"""The silence watchdog on response bodies: one timer a stream, a silent upstream abandoned, a Stop never swallowed.

(The end-to-end case, a stalled reply failed as silent, is tests/test_consumer.py.)"""

import asyncio

import httpx2
import pytest

from chat.llm.client import _SilenceWatchedStream

CHUNKS = 200


class Chunks(httpx2.AsyncByteStream):
    """`count` chunks, then silence forever when `stall` is set."""

    def __init__(self, count: int, *, stall: bool = False):
        self.count, self.stall = count, stall

    async def __aiter__(self):
        for _ in range(self.count):
            await asyncio.sleep(0)
            yield b"x"
        if self.stall:
            await asyncio.Event().wait()

    async def aclose(self):
        pass


async def read_all(stream) -> int:
    return sum([len(chunk) async for chunk in stream])


async def reading(stream) -> asyncio.Task:
    """A task suspended in a read of `stream` that will never complete on its own."""
    task = asyncio.create_task(read_all(stream))
    while stream._reader is None:
        await asyncio.sleep(0)
    return task


def silent_for_the_timeout(stream) -> None:
    """Move the start of the current wait back by the timeout, then let the watchdog look, as when it comes due."""
    stream._waiting_since -= stream.timeout
    stream._watch()


async def test_a_stream_arms_one_timer_however_many_chunks_it_has(monkeypatch):
    loop = asyncio.get_running_loop()
    timers = []
    call_at = loop.call_at
    monkeypatch.setattr(loop, "call_at", lambda *args, **kwargs: timers.append(args) or call_at(*args, **kwargs))

    received = await read_all(_SilenceWatchedStream(Chunks(CHUNKS), timeout=60))

    assert received == CHUNKS and len(timers) == 1


async def test_a_stream_that_goes_silent_fails_as_a_read_timeout():
    stream = _SilenceWatchedStream(Chunks(3, stall=True), timeout=0.05)

    with pytest.raises(httpx2.ReadTimeout, match="sent nothing for 0.05 seconds"):
        await read_all(stream)

    assert asyncio.current_task().cancelling() == 0


@pytest.mark.parametrize("first", ["stop", "watchdog"])
async def test_a_stop_that_lands_as_the_watchdog_fires_is_never_swallowed(first):
    stream = _SilenceWatchedStream(Chunks(3, stall=True), timeout=60)
    task = await reading(stream)

    if first == "stop":
        task.cancel()
        silent_for_the_timeout(stream)
    else:
        silent_for_the_timeout(stream)
        task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_a_read_waits_the_whole_timeout_from_its_own_start():
    """Time spent between reads, in the consumer, is not silence: the watchdog re-arms instead of firing."""
    stream = _SilenceWatchedStream(Chunks(3, stall=True), timeout=60)
    task = await reading(stream)

    stream._watch()  # due, but this read began just now

    await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
