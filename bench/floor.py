"""The floor for bench/load.py: the least work streaming the same replies takes, each part in its own process.

- `sse`: N concurrent streams read straight from the offline model's /v1/messages and parsed by the SDK's
  cheapest path (`messages.create(stream=True)`: raw events, no message accumulated). What receiving the
  replies costs.
- `websocket`: a bare `websockets` server sending N clients delta-shaped JSON frames of a given size at a given
  rate (the clients are bench/load.py's). What delivering the frames costs.

bench/load.py reads each process's CPU clock around exactly the work, so each one talks over its standard
streams: it prints "ready" once set up, starts on the next line of stdin, prints its result as one JSON line
when done, and exits on the line after that (still alive, so its CPU can be read, until then).
"""

import argparse
import asyncio
import json
import sys
import time

from anthropic import AsyncAnthropic
from websockets.asyncio.server import serve

SDK_WARMUP_STREAMS = 3


async def next_stdin_line() -> str:
    return await asyncio.to_thread(sys.stdin.readline)


def say(line: str) -> None:
    print(line, flush=True)


async def stream_raw(client: AsyncAnthropic, request: dict, first_delta_only: bool = False) -> list[float]:
    """[first text delta, message_stop], on the clock bench/load.py reads (perf_counter: CLOCK_MONOTONIC)."""
    first = None
    stream = await client.messages.create(**request, stream=True)
    async with stream:
        async for event in stream:
            if event.type == "content_block_delta" and first is None:
                first = time.perf_counter()
                if first_delta_only:
                    break
    return [first, time.perf_counter()]


async def floor_sse(args) -> None:
    client = AsyncAnthropic(api_key="offline", base_url=args.base_url, max_retries=0)
    messages = [{"role": "user", "content": args.question}]
    request = {"model": args.model, "max_tokens": args.max_tokens, "messages": messages}
    # Untimed, as the app server is warmed before it is measured: imports, pydantic models, the pool.
    warmup = [stream_raw(client, request, first_delta_only=True) for _ in range(SDK_WARMUP_STREAMS)]
    await asyncio.gather(*warmup)
    say("ready")
    await next_stdin_line()
    spans = await asyncio.gather(*(stream_raw(client, request) for _ in range(args.streams)))
    say(json.dumps({"spans": spans}))
    await next_stdin_line()
    await client.close()


def delta_frame(seq: int, text: str) -> str:
    """Shaped as the app's (docs/protocol.md), and encoded per send as the app must."""
    part = {"block": 0, "type": "text", "text": text}
    return json.dumps({"type": "delta", "message": 1, "seq": seq, "parts": [part]})


async def floor_websocket(args) -> None:
    go = asyncio.Event()
    done = asyncio.Event()
    finished = 0
    frames = max(2, round(args.frames_per_second * args.seconds) + 1)
    text = "x" * max(0, args.frame_bytes - len(delta_frame(frames, "")))

    async def send_frames(connection) -> None:
        nonlocal finished
        await go.wait()
        started = time.perf_counter()
        for seq in range(1, frames + 1):
            await asyncio.sleep(started + (seq - 1) / args.frames_per_second - time.perf_counter())
            await connection.send(delta_frame(seq, text))
        finished += 1
        if finished == args.clients:
            done.set()

    # As the server runs: no compression, and keepalive pings are not what this measures.
    async with serve(send_frames, "127.0.0.1", args.port, compression=None, ping_interval=None, max_queue=None):
        say("ready")
        await next_stdin_line()
        go.set()
        await done.wait()
        say(json.dumps({"frames_per_client": frames}))
        await next_stdin_line()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", required=True)
    sse = kinds.add_parser("sse", help="raw SSE streams from the offline model")
    sse.add_argument("--base-url", required=True)
    sse.add_argument("--streams", type=int, required=True)
    sse.add_argument("--model", required=True)
    sse.add_argument("--max-tokens", type=int, required=True)
    sse.add_argument("--question", required=True)
    websocket = kinds.add_parser("websocket", help="a bare websocket server sending frames at a fixed rate")
    websocket.add_argument("--port", type=int, required=True)
    websocket.add_argument("--clients", type=int, required=True)
    websocket.add_argument("--frame-bytes", type=int, required=True)
    websocket.add_argument("--frames-per-second", type=float, required=True)
    websocket.add_argument("--seconds", type=float, required=True)
    arguments = parser.parse_args()
    asyncio.run(floor_sse(arguments) if arguments.kind == "sse" else floor_websocket(arguments))
