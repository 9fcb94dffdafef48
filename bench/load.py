"""Load benchmark: N authenticated websocket conversations against real server processes.

The offline model is served over loopback HTTP at a realistic token rate, and the app talks to it like to the
real API. Each client sends one message and reads every frame until its reply is final. Reports added time
to first token (versus calling the SDK directly against the same offline model, in the same run), the delay
between frames, frames per stream-second, websocket bytes per byte of final text, server CPU per
stream-second, server RSS, and lost or duplicated deltas.

    .venv/bin/python bench/load.py --clients 200                          # 1 process, SQLite + in-memory layer
    .venv/bin/python bench/load.py --clients 200 --processes 2 --scale-out   # PostgreSQL + Redis
"""

import argparse
import asyncio
import json
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

import websockets  # noqa: E402
from anthropic import AsyncAnthropic  # noqa: E402

from tests.cluster import (  # noqa: E402
    ORIGIN,
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
SILENT_REPLY_SECONDS = 10


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


async def sdk_time_to_first_token(base_url: str, clients: int) -> list[float]:
    """The baseline: the same offline model called directly through the SDK, with the same concurrency."""
    client = AsyncAnthropic(api_key="offline", base_url=base_url, max_retries=0)

    async def one() -> float:
        started = time.perf_counter()
        async with client.messages.stream(
            model="claude-sonnet-5-5", max_tokens=1024, messages=[{"role": "user", "content": QUESTION}]
        ) as stream:
            async for event in stream:
                if event.type == "content_block_delta":
                    first = time.perf_counter() - started
                    break
        return first

    try:
        return await asyncio.gather(*(one() for _ in range(clients)))
    finally:
        await client.close()


class StreamStats:
    def __init__(self):
        self.follower = ReplyFollower()
        self.sent_at = 0.0
        self.first_delta_at: float | None = None
        self.delta_times: list[float] = []
        self.bytes = 0
        self.finished_at = 0.0
        self.silent_resumes = 0


async def run_client(url: str, session: str, ready: asyncio.Barrier, stats: StreamStats) -> None:
    async with websockets.connect(
        url, origin=ORIGIN, additional_headers={"Cookie": f"sessionid={session}"}, max_size=None, open_timeout=120,
        # Client and servers share the CPUs here: at N=500 the client's own keepalive pings starve and drop
        # connections. Keepalive is not what this measures.
        ping_interval=None,
    ) as connection:
        await ready.wait()
        stats.sent_at = time.perf_counter()
        await connection.send(json.dumps({"type": "send", "text": QUESTION}))
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
            stats.bytes += len(raw.encode() if isinstance(raw, str) else raw)
            frame = json.loads(raw)
            if frame["type"] == "delta":
                stats.first_delta_at = stats.first_delta_at or now
                stats.delta_times.append(now)
            if stats.follower.apply(frame) == "resume":
                await connection.send(json.dumps({"type": "resume", "message": stats.follower.message_id}))
            if stats.first_delta_at is None and stats.follower.text:
                stats.first_delta_at = now  # the first text came in a snapshot (after a gap), not a delta
        stats.finished_at = time.perf_counter()


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def main(args) -> dict:
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
    try:
        migrate(env)
        conversation_ids, session = seed_conversations(env, args.clients)
        servers = [AppServer(env, log_dir, f"app-{i}").start() for i in range(args.processes)]
        baseline = await sdk_time_to_first_token(offline_url, args.clients)

        cpu_before = {server.name: process_cpu_seconds(server.process.pid) for server in servers}
        ready = asyncio.Barrier(args.clients)
        all_stats = [StreamStats() for _ in conversation_ids]
        await asyncio.gather(*(
            run_client(servers[i % len(servers)].ws_url(cid), session, ready, stats)
            for i, (cid, stats) in enumerate(zip(conversation_ids, all_stats))
        ))
        cpu = sum(process_cpu_seconds(s.process.pid) - cpu_before[s.name] for s in servers)
        rss = [process_peak_rss_mb(server.process.pid) for server in servers]
    finally:
        for server in servers:
            server.stop()
        offline.kill()
        if database_name:
            drop_postgres_database(database_name)

    ttft = [s.first_delta_at - s.sent_at for s in all_stats]
    gaps = [b - a for s in all_stats for a, b in zip(s.delta_times, s.delta_times[1:])]
    stream_seconds = sum(s.finished_at - s.first_delta_at for s in all_stats)
    final_text = sum(len(s.follower.final["content"][0]["text"].encode()) for s in all_stats)
    lost = sum(s.follower.text != s.follower.final["content"][0]["text"] for s in all_stats)
    return {
        "clients": args.clients,
        "setup": f"{args.processes} process(es), " + ("PostgreSQL + Redis" if args.scale_out else "SQLite + in-memory"),
        "token_rate": args.rate,
        "sdk_ttft_p50_ms": round(statistics.median(baseline) * 1000, 1),
        "ws_ttft_p50_ms": round(statistics.median(ttft) * 1000, 1),
        "added_ttft_p50_ms": round((statistics.median(ttft) - statistics.median(baseline)) * 1000, 1),
        "added_ttft_p99_ms": round((percentile(ttft, 0.99) - percentile(baseline, 0.99)) * 1000, 1),
        "frame_gap_p50_ms": round(percentile(gaps, 0.5) * 1000, 1),
        "frame_gap_p99_ms": round(percentile(gaps, 0.99) * 1000, 1),
        "frames_per_stream_second": round(sum(len(s.delta_times) for s in all_stats) / stream_seconds, 1),
        "ws_bytes_per_text_byte": round(sum(s.bytes for s in all_stats) / final_text, 2),
        "cpu_ms_per_stream_second": round(cpu / stream_seconds * 1000, 1),
        "server_peak_rss_mb": [round(value) for value in rss],
        "gaps_recovered": sum(s.follower.gaps for s in all_stats),
        "silent_replies_resumed": sum(s.silent_resumes for s in all_stats),
        "duplicates": sum(s.follower.duplicates for s in all_stats),
        "lost_or_wrong_replies": lost,
        "incomplete_replies": sum(s.follower.final["status"] != "complete" for s in all_stats),
    }


def exit_on_sigterm(*_):
    """`timeout` and CI send SIGTERM: exit through `finally`, so the servers started here are stopped."""
    raise SystemExit(143)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--scale-out", action="store_true", help="PostgreSQL + Redis (TEST_DATABASE_URL, TEST_REDIS_URL)")
    parser.add_argument("--rate", type=float, default=60, help="offline model tokens per second per stream")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
