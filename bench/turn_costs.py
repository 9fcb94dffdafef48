"""What one turn costs the event loop and the worker threads before the first token, piece by piece.

    .venv/bin/python bench/turn_costs.py [--repeat 7]

No database and no network: each piece is timed alone, against the offline model, the median of `--repeat`
runs of many iterations. It runs unchanged on older commits (copy it into a checkout), which is how the
before/after table in BENCHMARKS.md was made.

- `tools`: the tool definitions of a reply (`tools_for` for a new user each time, then `tool_definitions`).
- `attachment block`: `content_block` of a stored 540 KB image, as every turn of its conversation builds it.
- `context measure`: `request_fit` of a short conversation (ten exchanges); `count_tokens requests` says how
  many round trips to the API it made (to the offline model here: in production each is a network round trip).
- `watchdog`: what the silence watchdog adds per chunk of a response body, over the bare body.
- `first stream`, `second stream`: the first and second SDK streams of a fresh process that imported
  config.asgi as the server does (and ran the warm-up, where there is one), each in its own process.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def median_us(work, iterations: int, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(iterations):
            work()
        runs.append((time.perf_counter() - started) / iterations * 1e6)
    return statistics.median(runs)


def bench_tools(repeat: int) -> float:
    from chat.llm import tools

    users = iter(range(10**9))

    def work():
        context = tools.ToolContext(next(users), "Europe/Paris", 1)
        tools.tool_definitions(tools.tools_for(context, list(tools.TOOL_NAMES)))

    return median_us(work, 200, repeat)


def bench_attachment_block(repeat: int) -> tuple[float, int]:
    from django.conf import settings

    from chat.attachments import blocks
    from chat.models import Attachment

    media = tempfile.mkdtemp()
    settings.MEDIA_ROOT = media
    name = "attachments/1/photo.jpg"
    (Path(media) / name).parent.mkdir(parents=True)
    (Path(media) / name).write_bytes(os.urandom(540_000))
    attachment = Attachment(pk=1, file=name, name="photo.jpg", kind=Attachment.Kind.IMAGE, media_type="image/jpeg")
    reads = []
    file_read = blocks.file_read
    blocks.file_read = lambda path: reads.append(path) or file_read(path)
    us = median_us(lambda: blocks.content_block(attachment), 50, repeat)
    return us, len(reads) / (50 * repeat)


def bench_context_measure(repeat: int) -> tuple[float, float]:
    from chat.llm import context, tools
    from chat.llm.catalog import MODELS_BY_ID
    from chat.llm.client import anthropic_client
    from chat.llm.offline import offline_model
    from chat.llm.request import Exchange, RequestParts, request_assemble

    line = "How do B-trees keep their height small while nodes split and merge? " * 3
    exchanges = [
        Exchange(
            turns=[
                {"role": "user", "content": [{"type": "text", "text": f"{number}. {line}"}]},
                {"role": "assistant", "content": [{"type": "text", "text": line * 4}]},
            ],
            message_count=2,
            tokens=len(line) * 5 // 4,
        )
        for number in range(10)
    ]
    reply_tools = tools.tools_for(tools.ToolContext(1, "UTC", 1), list(tools.TOOL_NAMES))
    parts = RequestParts(system="Be brief.", thinking="off", tools=reply_tools, exchanges=exchanges)
    model = MODELS_BY_ID["claude-haiku-4-5"]
    iterations = 50

    async def runs() -> list[float]:
        client = anthropic_client()
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            for _ in range(iterations):
                await context.request_fit(client, parts, model, lambda left_out: request_assemble(
                    parts, model=model, left_out=left_out
                ))
            timings.append((time.perf_counter() - started) / iterations * 1e6)
        return timings

    before = sum(count for path, count in _requests_by_path(offline_model).items() if path.endswith("count_tokens"))
    timings = asyncio.run(runs())
    after = sum(count for path, count in _requests_by_path(offline_model).items() if path.endswith("count_tokens"))
    return statistics.median(timings), (after - before) / (iterations * repeat)


def _requests_by_path(model) -> dict:
    """The offline model's count of requests by path; older versions have none, so count them here."""
    if hasattr(model, "requests_by_path"):
        return model.requests_by_path
    if not hasattr(model, "_bench_paths"):
        model._bench_paths = {}
        handle = model.handle

        async def counted(request):
            model._bench_paths[request.url.path] = model._bench_paths.get(request.url.path, 0) + 1
            return await handle(request)

        model.handle = counted
    return model._bench_paths


def bench_watchdog(repeat: int) -> float:
    import httpx2

    from chat.llm.client import _SilenceWatchedStream

    chunks = 20_000

    class Body(httpx2.AsyncByteStream):
        async def __aiter__(self):
            for _ in range(chunks):
                yield b"x"

    async def read(stream) -> float:
        started = time.perf_counter()
        async for _ in stream:
            pass
        return time.perf_counter() - started

    async def runs() -> float:
        overheads = []
        for _ in range(repeat):
            bare = await read(Body())
            watched = await read(_SilenceWatchedStream(Body(), 60))
            overheads.append((watched - bare) / chunks * 1e6)
        return statistics.median(overheads)

    return asyncio.run(runs())


FIRST_STREAMS = """
import asyncio, os, sys, time
sys.path.insert(0, {root!r})
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
import config.asgi

async def main():
    try:
        from chat.llm.warmup import process_warm_up
    except ImportError:
        pass
    else:
        await process_warm_up()
    from chat.llm.client import anthropic_client
    client = anthropic_client()
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        stream = await client.messages.create(
            model="claude-haiku-4-5", max_tokens=64, messages=[{{"role": "user", "content": "Hello"}}], stream=True
        )
        async with stream:
            async for _ in stream:
                pass
        timings.append((time.perf_counter() - started) * 1000)
    print(*timings)

asyncio.run(main())
"""


def bench_first_streams(repeat: int) -> tuple[float, float]:
    firsts, seconds = [], []
    for _ in range(repeat):
        output = subprocess.run(
            [sys.executable, "-c", FIRST_STREAMS.format(root=str(ROOT))],
            capture_output=True, text=True, check=True, env={**os.environ, "ANTHROPIC_API_KEY": ""},
        ).stdout.split()
        firsts.append(float(output[-2]))
        seconds.append(float(output[-1]))
    return statistics.median(firsts), statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    import logging

    import django
    from django.conf import settings

    django.setup()
    settings.ANTHROPIC_API_KEY = ""  # the offline model, always
    logging.disable(logging.INFO)
    rows = [("tools", f"{bench_tools(repeat):,.0f} µs a reply")]
    block_us, reads = bench_attachment_block(repeat)
    rows.append(("attachment block", f"{block_us:,.0f} µs a turn, {reads:.2f} file reads a turn"))
    measure_us, counts = bench_context_measure(repeat)
    rows.append(("context measure", f"{measure_us:,.0f} µs a request, {counts:.2f} count_tokens requests a request"))
    rows.append(("watchdog", f"{bench_watchdog(repeat):.2f} µs a chunk"))
    first, second = bench_first_streams(repeat)
    rows.append(("first stream", f"{first:.1f} ms"))
    rows.append(("second stream", f"{second:.1f} ms"))
    for name, value in rows:
        print(f"{name:18} {value}")


if __name__ == "__main__":
    main()
