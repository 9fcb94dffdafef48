"""Load benchmark: N authenticated websocket conversations against real server processes, beside their floor.

The offline model is served over loopback HTTP at a realistic token rate, and the app talks to it like to the
real API. Before anything is timed, the SDK and each server are warmed; the first turn of each fresh server is
timed on its own ("cold"), and so are a few turns after warm-up ("warm"), one at a time. Then each of N clients
sends one message at the same instant and reads every frame until its reply is final.

Reports added time to first token (versus calling the SDK directly against the same offline model, in the same
run), the delay between frames, frames per stream-second, websocket bytes per byte of final text, server CPU per
stream-second, server RSS, and lost or duplicated deltas. And, in the same run, the floor (bench/floor.py): the
CPU per stream-second of parsing the same N streams straight from the offline model, plus that of a bare
websocket server sending N clients frames of the same size at the same rate. The app's CPU per stream-second is
reported as a multiple of it ("x floor").

--steady asks a question whose quote streams for --reply-seconds (the offline model quotes the question in its
reply, then adds its account of the request: a few seconds more), and measures only the window in which all N
replies are streaming.

    .venv/bin/python bench/load.py --clients 200                            # 1 process, SQLite + in-memory
    .venv/bin/python bench/load.py --clients 200 --steady                   # ~30 s replies
    .venv/bin/python bench/load.py --clients 200 --processes 2 --scale-out  # PostgreSQL + Redis
"""

import argparse
import asyncio
import ctypes
import itertools
import json
import math
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import websockets
from anthropic import AsyncAnthropic

from bench.floor import SDK_WARMUP_STREAMS
from chat.llm.tokens import TOKEN_CHARS
from tests.cluster import (
    REDIS_URL,
    AppServer,
    ReplyFollower,
    drop_postgres_database,
    free_port,
    fresh_postgres_database,
    migrate,
    server_env,
)

QUESTION = "Explain how a B-tree keeps itself balanced"
# Repeated to the length --steady needs; no word in it makes Auto routing or the offline model do anything else.
STEADY_SENTENCE = "Please tell me at length how a B-tree stays balanced as keys come and go. "
MODEL = "claude-sonnet-5-5"  # CHAT_DEFAULT_MODEL: what the seeded conversations use
MAX_TOKENS = 4096  # CHAT_MAX_OUTPUT_TOKENS: what the app asks for, so the floor's replies are as long
SILENT_REPLY_SECONDS = 10
WARMUP_TURNS = 3  # untimed, at once, on each server after its cold turn
WARM_TURNS = 3  # timed one at a time after warm-up; their median is "warm"
SINGLE_BASELINE_STREAMS = 3  # SDK streams one at a time; their median is the N=1 baseline
FRAME_GAP_TARGET_S = 0.1
CPU_SAMPLE_INTERVAL_S = 0.1
LIBC = ctypes.CDLL(None)


def steady_question(rate: float, seconds: float) -> str:
    """A question whose verbatim quote in the reply streams for `seconds` at `rate` tokens a second.

    The rest of the offline model's reply (its account of the request, ~150 tokens) comes on top."""
    chars = TOKEN_CHARS * round(rate * seconds)
    return (STEADY_SENTENCE * (chars // len(STEADY_SENTENCE) + 1))[:chars].strip()


def start_offline_model(rate: float, log_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve_offline_model", "--port", str(port), "--tokens-per-second", str(rate)],
        cwd=ROOT, env=server_env(), stdout=open(log_dir / "offline.log", "wb"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    import httpx2

    for _ in range(300):
        try:
            httpx2.get(f"{url}/v1/models", timeout=1)
            return process, url
        except httpx2.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("offline model did not start")


def seed_conversations(env: dict, count: int) -> tuple[list[int], str]:
    """One user with `count` conversations and a session, written straight to the database."""
    script = f"""
import json
from django.contrib.sessions.backends.db import SessionStore
from accounts.models import User
from chat.services import conversation_create
user = User.objects.create_user("bench-{uuid.uuid4().hex[:6]}", password="unused-password-123")
ids = [conversation_create(owner=user).pk for _ in range({count})]
session = SessionStore()
session["_auth_user_id"] = str(user.pk)
session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
session["_auth_user_hash"] = user.get_session_auth_hash()
session.create()
print(json.dumps({{"ids": ids, "session": session.session_key}}))
"""
    output = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True, timeout=300,
    ).stdout
    seeded = json.loads(output.strip().splitlines()[-1])
    return seeded["ids"], seeded["session"]


async def sdk_time_to_first_token(client: AsyncAnthropic, question: str, streams: int) -> list[float]:
    """The baseline: the same offline model called through the SDK, as the app calls it, `streams` at once."""

    async def one() -> float:
        started = time.perf_counter()
        async with client.messages.stream(
            model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": question}]
        ) as stream:
            async for event in stream:
                if event.type == "content_block_delta":
                    return time.perf_counter() - started
        raise RuntimeError("the offline model sent no delta")

    return await asyncio.gather(*(one() for _ in range(streams)))


class CpuTrace:
    """CPU seconds of some processes, sampled as time goes, so that any window can be read after."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.samples: list[tuple[float, float]] = []

    def sample(self) -> float:
        now = time.perf_counter()
        self.samples.append((now, sum(process_cpu_seconds(pid) for pid in self.pids)))
        return now

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(CPU_SAMPLE_INTERVAL_S)

    def between(self, start: float, stop: float) -> tuple[float, float]:
        """(CPU seconds, wall seconds) from the first sample at or after `start` to the last up to `stop`."""
        inside = [sample for sample in self.samples if start <= sample[0] <= stop]
        if len(inside) < 2:
            return math.nan, math.nan
        (began, cpu_began), (ended, cpu_ended) = inside[0], inside[-1]
        return cpu_ended - cpu_began, ended - began


Span = tuple[float, float]  # one stream: its first delta, and its end


def cpu_per_stream_second(
    trace: CpuTrace, spans: list[Span], started: float, ended: float, steady: bool
) -> float:
    """Burst: all CPU from the send to the last reply, over the summed stream time. Steady: the CPU while all
    streams are streaming, over that window times N, so neither the admission of turns nor the tail counts."""
    if steady:
        cpu, seconds = trace.between(*steady_window(spans))
        return cpu / (seconds * len(spans)) if seconds > 0 else math.nan
    cpu, _ = trace.between(started, ended)
    return cpu / sum(last - first for first, last in spans)


def steady_window(spans: list[Span]) -> Span:
    """From the moment the last stream started to the moment the first ended: empty when they never overlap."""
    return max(first for first, _ in spans), min(last for _, last in spans)


class StreamStats:
    def __init__(self):
        self.follower = ReplyFollower()
        self.sent_at = 0.0
        self.first_delta_at: float | None = None
        self.delta_times: list[float] = []
        self.delta_sizes: list[int] = []
        self.bytes = 0
        self.finished_at = 0.0
        self.silent_resumes = 0

    @property
    def ttft(self) -> float:
        return self.first_delta_at - self.sent_at

    @property
    def span(self) -> Span:
        return self.first_delta_at, self.finished_at


async def start_together(clients: list, connected: asyncio.Barrier, go) -> list:
    """Runs `clients`, calls `go()` once all have connected (each waits on `connected`), returns results."""
    running = asyncio.gather(*clients)
    try:
        await connected.wait()
    except asyncio.BrokenBarrierError:
        await running  # raises the error of the client that broke the barrier
        raise
    go()
    return await running


async def follow_reply(
    url: str, session: str, question: str, stats: StreamStats, connected: asyncio.Barrier, go: asyncio.Event
) -> None:
    try:
        connection = await websockets.connect(
            url, origin=url.replace("ws://", "http://").split("/ws/")[0], additional_headers={"Cookie": f"sessionid={session}"}, max_size=None,
            open_timeout=120,
            # Client and servers share the CPUs here: at N=500 the client's own keepalive pings starve and drop
            # connections. Keepalive is not what this measures.
            ping_interval=None,
        )
    except BaseException:
        connected.abort()
        raise
    async with connection:
        await connected.wait()
        await go.wait()
        stats.sent_at = time.perf_counter()
        await connection.send(json.dumps({"type": "send", "text": question}))
        deadline = time.perf_counter() + 600
        while not stats.follower.done:
            if time.perf_counter() > deadline:
                raise TimeoutError("a reply took over 10 minutes")
            try:
                raw = await asyncio.wait_for(connection.recv(), SILENT_REPLY_SECONDS)
            except TimeoutError:
                # As the page does (docs/protocol.md): a silent reply is asked for, in case its final frame was lost.
                if stats.follower.message_id is not None:
                    stats.silent_resumes += 1
                    await connection.send(json.dumps({"type": "resume", "message": stats.follower.message_id}))
                continue
            now = time.perf_counter()
            size = len(raw.encode() if isinstance(raw, str) else raw)
            stats.bytes += size
            frame = json.loads(raw)
            if frame["type"] == "delta":
                stats.first_delta_at = stats.first_delta_at or now
                stats.delta_times.append(now)
                stats.delta_sizes.append(size)
            if stats.follower.apply(frame) == "resume":
                await connection.send(json.dumps({"type": "resume", "message": stats.follower.message_id}))
            if stats.first_delta_at is None and stats.follower.text:
                stats.first_delta_at = now  # the first text came in a snapshot (after a gap), not a delta
        stats.finished_at = time.perf_counter()


async def run_turns(urls: list[str], session: str, question: str, on_send=lambda: None) -> list[StreamStats]:
    """One turn on each conversation at `urls`, sent at the same instant once all are connected; `on_send()`
    runs just before."""
    connected, go = asyncio.Barrier(len(urls) + 1), asyncio.Event()
    all_stats = [StreamStats() for _ in urls]
    clients = [follow_reply(url, session, question, one, connected, go) for url, one in zip(urls, all_stats)]

    def send() -> None:
        on_send()
        go.set()

    await start_together(clients, connected, send)
    return all_stats


async def measure_cold_and_warm(
    server: AppServer, ids: list[int], session: str, baseline: float
) -> tuple[float, float]:
    """Added TTFT at N=1: the first turn of the fresh `server`, and the median of later ones after warm-up."""
    urls = [server.ws_url(conversation_id) for conversation_id in ids]
    (cold,) = await run_turns(urls[:1], session, QUESTION)
    await run_turns(urls[1 : 1 + WARMUP_TURNS], session, QUESTION)
    warm = [(await run_turns([url], session, QUESTION))[0].ttft for url in urls[1 + WARMUP_TURNS :]]
    return cold.ttft - baseline, statistics.median(warm) - baseline


class FloorProcess:
    """One bench/floor.py process, spoken to over its standard streams as its docstring says."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path):
        self.process, self.log_path = process, log_path
        self.cpu = CpuTrace([process.pid])

    @classmethod
    async def start(cls, log_dir: Path, kind: str, *arguments: str) -> "FloorProcess":
        log_path = log_dir / f"floor-{kind}.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "bench" / "floor.py"), kind, *arguments, cwd=ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log, limit=2**24,
            )
        return cls(process, log_path)

    async def read_line(self) -> str:
        line = (await self.process.stdout.readline()).decode().strip()
        if not line:
            raise RuntimeError(f"{self.log_path.name} ended:\n{self.log_path.read_text()[-3000:]}")
        return line

    async def ready(self) -> None:
        if (line := await self.read_line()) != "ready":
            raise RuntimeError(f"{self.log_path.name} said {line!r}")

    def go(self) -> float:
        started = self.cpu.sample()
        self.process.stdin.write(b"go\n")
        return started

    async def result(self) -> tuple[dict, float]:
        return json.loads(await self.read_line()), self.cpu.sample()

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.stdin.write(b"stop\n")
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()


async def receive_floor_frames(url: str, connected: asyncio.Barrier) -> list[float]:
    try:
        connection = await websockets.connect(url, max_size=None, open_timeout=120, ping_interval=None)
    except BaseException:
        connected.abort()
        raise
    async with connection:
        await connected.wait()
        return [time.perf_counter() async for _ in connection]


async def measure_floor(
    log_dir: Path, offline_url: str, question: str, clients: int, frame_bytes: int, frames_per_second: float,
    seconds: float, steady: bool,
) -> dict:
    """Both parts of the floor at once (as the app ran beside the offline model and the clients), each in its
    own process, each with the app's N: (a) raw SSE parsing of the same streams, (b) websocket frames of the
    size and at the rate the app sent."""
    port = free_port()
    sse = await FloorProcess.start(
        log_dir, "sse", "--base-url", offline_url, "--streams", str(clients), "--model", MODEL,
        "--max-tokens", str(MAX_TOKENS), "--question", question,
    )
    websocket = await FloorProcess.start(
        log_dir, "websocket", "--port", str(port), "--clients", str(clients), "--frame-bytes", str(frame_bytes),
        "--frames-per-second", str(frames_per_second), "--seconds", str(seconds),
    )
    sampling = [asyncio.ensure_future(floor.cpu.run()) for floor in (sse, websocket)]
    try:
        await sse.ready()
        await websocket.ready()
        connected = asyncio.Barrier(clients + 1)
        receivers = [receive_floor_frames(f"ws://127.0.0.1:{port}/", connected) for _ in range(clients)]
        started = {}

        def go() -> None:
            started.update(sse=sse.go(), websocket=websocket.go())

        (sse_result, sse_ended), frame_times, (_, websocket_ended) = await asyncio.gather(
            sse.result(), start_together(receivers, connected, go), websocket.result()
        )
    finally:
        for task in sampling:
            task.cancel()
        for floor in (sse, websocket):
            await floor.stop()
    sse_spans = [tuple(span) for span in sse_result["spans"]]
    frame_spans = [(times[0], times[-1]) for times in frame_times]
    frame_gaps = [b - a for times in frame_times for a, b in itertools.pairwise(times)]
    return {
        "sse": cpu_per_stream_second(sse.cpu, sse_spans, started["sse"], sse_ended, steady),
        "websocket": cpu_per_stream_second(
            websocket.cpu, frame_spans, started["websocket"], websocket_ended, steady
        ),
        "frame_gap_p99": percentile(frame_gaps, 0.99),
    }


def process_cpu_seconds(pid: int) -> float:
    """All threads' CPU time, to the nanosecond: /proc/<pid>/stat counts 10 ms ticks, as much as an N=1 run
    of the websocket floor takes in all."""
    clock = ctypes.c_int()
    if error := LIBC.clock_getcpuclockid(pid, ctypes.byref(clock)):
        raise OSError(error, os.strerror(error))
    return time.clock_gettime(clock.value)


def process_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else math.nan


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class Delivered:
    """The delta frames the clients received in the measured window: the whole run (burst), or while all N
    replies were streaming (steady)."""

    def __init__(self, all_stats: list[StreamStats], steady: bool):
        self.spans = [stats.span for stats in all_stats]
        self.window = steady_window(self.spans) if steady else (-math.inf, math.inf)
        self.deltas = [
            [(at, size) for at, size in zip(stats.delta_times, stats.delta_sizes) if self._inside(at)]
            for stats in all_stats
        ]
        if steady:
            self.stream_seconds = len(self.spans) * max(0.0, self.window[1] - self.window[0])
        else:
            self.stream_seconds = sum(last - first for first, last in self.spans)
        self.reply_seconds = statistics.median(last - first for first, last in self.spans)
        sizes = [size for deltas in self.deltas for _, size in deltas]
        self.frame_bytes = round(statistics.fmean(sizes)) if sizes else 0
        self.frames_per_stream_second = len(sizes) / self.stream_seconds if self.stream_seconds else 0.0
        self.gaps = [b - a for deltas in self.deltas for (a, _), (b, _) in itertools.pairwise(deltas)]

    def _inside(self, at: float) -> bool:
        return self.window[0] <= at <= self.window[1]


async def main(args) -> dict:
    question = steady_question(args.rate, args.reply_seconds) if args.steady else QUESTION
    log_dir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    offline, offline_url = start_offline_model(args.rate, log_dir)
    database_name = None
    overrides = {
        # Production mode: DEBUG's per-query logging is not what a deployment pays for.
        "DJANGO_DEBUG": 0,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_SECURE_SSL_REDIRECT": 0,
        "ANTHROPIC_API_KEY": "offline",
        "ANTHROPIC_BASE_URL": offline_url,
        "CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE": 0,
        "CHAT_SOCKETS_PER_USER": 10_000,  # one benchmark user holds every stream's socket
        "CHAT_RATE_LIMIT_TOKENS_PER_MINUTE": 0,
        "CHAT_DEFAULT_MONTHLY_BUDGET": "",
    }
    if args.scale_out:
        database_name = f"claudechat_bench_{uuid.uuid4().hex[:6]}"
        overrides.update(DATABASE_URL=fresh_postgres_database(database_name), REDIS_URL=REDIS_URL)
    else:
        overrides["DATABASE_URL"] = f"sqlite:///{log_dir / 'bench.sqlite3'}"
    env = server_env(**overrides)
    servers = []
    sdk = AsyncAnthropic(api_key="offline", base_url=offline_url, max_retries=0)
    try:
        migrate(env)
        per_server = 1 + WARMUP_TURNS + WARM_TURNS
        conversation_ids, session = seed_conversations(env, args.clients + per_server * args.processes)
        burst_ids, single_ids = conversation_ids[: args.clients], conversation_ids[args.clients :]
        servers = [AppServer(env, log_dir, f"app-{i}").start() for i in range(args.processes)]

        await sdk_time_to_first_token(sdk, question, SDK_WARMUP_STREAMS)  # untimed: imports, pool, models
        single = statistics.median(
            [(await sdk_time_to_first_token(sdk, QUESTION, 1))[0] for _ in range(SINGLE_BASELINE_STREAMS)]
        )
        cold_and_warm = []
        for index, server in enumerate(servers):
            ids = single_ids[index * per_server : (index + 1) * per_server]
            cold_and_warm.append(await measure_cold_and_warm(server, ids, session, single))
        baseline = await sdk_time_to_first_token(sdk, question, args.clients)

        cpu = CpuTrace([server.process.pid for server in servers])
        sampling = asyncio.ensure_future(cpu.run())
        sent = {}
        urls = [servers[i % len(servers)].ws_url(cid) for i, cid in enumerate(burst_ids)]
        all_stats = await run_turns(urls, session, question, on_send=lambda: sent.update(at=cpu.sample()))
        ended = cpu.sample()
        sampling.cancel()
        rss = [process_peak_rss_mb(server.process.pid) for server in servers]
        for server in servers:
            server.stop()  # the floor runs next, on CPUs the app no longer takes

        delivered = Delivered(all_stats, args.steady)
        # A saturated app may deliver no delta (whole replies come through `resume`): one frame a reply then.
        frame_rate = max(delivered.frames_per_stream_second, 1 / delivered.reply_seconds)
        floor = await measure_floor(
            log_dir, offline_url, question, args.clients, delivered.frame_bytes, frame_rate,
            delivered.reply_seconds, args.steady,
        )
    finally:
        for server in servers:
            server.stop()
        offline.kill()
        if database_name:
            drop_postgres_database(database_name)
        await sdk.close()

    ttft = [stats.ttft for stats in all_stats]
    gaps = delivered.gaps
    final_text = sum(len(s.follower.final["content"][0]["text"].encode()) for s in all_stats)
    lost = sum(s.follower.text != s.follower.final["content"][0]["text"] for s in all_stats)
    app_cpu = cpu_per_stream_second(cpu, delivered.spans, sent["at"], ended, args.steady)
    floor_cpu = floor["sse"] + floor["websocket"]
    window = delivered.window
    return {
        "clients": args.clients,
        "mode": "steady" if args.steady else "burst",
        "setup": f"{args.processes} process{'es' if args.processes > 1 else ''}, "
        + ("PostgreSQL + Redis" if args.scale_out else "SQLite + in-memory"),
        "token_rate": args.rate,
        "reply_seconds_p50": round(delivered.reply_seconds, 1),
        **({"steady_window_seconds": round(max(0.0, window[1] - window[0]), 1)} if args.steady else {}),
        "cold_added_ttft_ms": [ms(cold) for cold, _ in cold_and_warm],
        "warm_added_ttft_ms": [ms(warm) for _, warm in cold_and_warm],
        "sdk_ttft_p50_ms": ms(statistics.median(baseline)),
        "ws_ttft_p50_ms": ms(statistics.median(ttft)),
        "added_ttft_p50_ms": ms(statistics.median(ttft) - statistics.median(baseline)),
        "added_ttft_p99_ms": ms(percentile(ttft, 0.99) - percentile(baseline, 0.99)),
        "frame_gap_p50_ms": ms(percentile(gaps, 0.5)),
        "frame_gap_p99_ms": ms(percentile(gaps, 0.99)),
        "frame_gap_p99_within_100ms": percentile(gaps, 0.99) <= FRAME_GAP_TARGET_S,
        "frames_per_stream_second": round(delivered.frames_per_stream_second, 1),
        "delta_frame_bytes": delivered.frame_bytes,
        "ws_bytes_per_text_byte": round(sum(s.bytes for s in all_stats) / final_text, 2),
        "cpu_ms_per_stream_second": ms(app_cpu),
        "floor_sse_cpu_ms_per_stream_second": ms(floor["sse"]),
        "floor_websocket_cpu_ms_per_stream_second": ms(floor["websocket"]),
        "floor_cpu_ms_per_stream_second": ms(floor_cpu),
        "x_floor": round(app_cpu / floor_cpu, 1),
        "floor_frame_gap_p99_ms": ms(floor["frame_gap_p99"]),
        "server_peak_rss_mb": [round(value) for value in rss],
        "gaps_recovered": sum(s.follower.gaps for s in all_stats),
        "silent_replies_resumed": sum(s.silent_resumes for s in all_stats),
        "duplicates": sum(s.follower.duplicates for s in all_stats),
        "lost_or_wrong_replies": lost,
        "incomplete_replies": sum(s.follower.final["status"] != "complete" for s in all_stats),
    }


TABLE_HEADER = (
    "| setup | mode | N | added TTFT N=1 cold / warm | added TTFT p50 / p99 | frame gap p50 / p99"
    " | p99 gap ≤ 100 ms | frames/stream-s | ws bytes/text byte | CPU/stream-s | floor (SSE + ws) | x floor | RSS | gaps recovered"
    " | silent replies resumed | lost / dup |"
)


def table_row(result: dict) -> str:
    def each(values: list[float]) -> str:
        return ", ".join(f"{value:.0f}" for value in values)

    def duration(milliseconds: float) -> str:
        return f"{milliseconds:.0f} ms" if abs(milliseconds) < 1000 else f"{milliseconds / 1000:.1f} s"

    floor_sse = result["floor_sse_cpu_ms_per_stream_second"]
    floor_websocket = result["floor_websocket_cpu_ms_per_stream_second"]
    cells = [
        result["setup"],
        f"{result['mode']} ({result['reply_seconds_p50']:g} s replies)",
        result["clients"],
        f"{each(result['cold_added_ttft_ms'])} ms / {each(result['warm_added_ttft_ms'])} ms",
        f"{duration(result['added_ttft_p50_ms'])} / {duration(result['added_ttft_p99_ms'])}",
        f"{duration(result['frame_gap_p50_ms'])} / {duration(result['frame_gap_p99_ms'])}",
        "yes" if result["frame_gap_p99_within_100ms"] else "no",
        result["frames_per_stream_second"],
        result["ws_bytes_per_text_byte"],
        f"{result['cpu_ms_per_stream_second']:.1f} ms",
        f"{floor_sse:.1f} + {floor_websocket:.1f} ms",
        f"{result['x_floor']}",
        f"{each(result['server_peak_rss_mb'])} MB",
        result["gaps_recovered"],
        result["silent_replies_resumed"],
        f"{result['lost_or_wrong_replies']} / {result['duplicates']}",
    ]
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


async def main_until_sigterm(args) -> dict:
    """`timeout` and CI send SIGTERM: it cancels the run, whose `finally` blocks stop every process started here.
    (Raising from a plain signal handler would leave the event loop without running them.)"""
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    return await main(args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--scale-out", action="store_true", help="PostgreSQL + Redis (TEST_DATABASE_URL, TEST_REDIS_URL)")
    parser.add_argument("--rate", type=float, default=60, help="offline model tokens per second per stream")
    parser.add_argument("--steady", action="store_true", help="long replies; measure while all N stream")
    parser.add_argument(
        "--reply-seconds", type=float, default=30, help="--steady: how long the quoted question streams in a reply"
    )
    try:
        result = asyncio.run(main_until_sigterm(parser.parse_args()))
    except asyncio.CancelledError:
        sys.exit(143)
    print(json.dumps(result, indent=2))
    print()
    print(TABLE_HEADER)
    print("|" + " --- |" * TABLE_HEADER.count(" | ") + " --- |")
    print(table_row(result))
