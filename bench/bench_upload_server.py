"""Large request bodies against a real server process: what they cost its memory and the requests beside them.

    .venv/bin/python bench/bench_upload_server.py                    # uvicorn, as `make run` and deployments run it
    .venv/bin/python bench/bench_upload_server.py --server daphne    # the server before, for the "before" row

Cases, each against a fresh server process (production mode, SQLite), bodies streamed from a generator so the
client holds none of them:

- `anonymous 150 MB`: one multipart/form-data POST of a 150 MB file to `/`, with its Content-Length, no session.
- `anonymous 4 x 39 MB`: four such POSTs of 39 MB at once, to `/attachments/`.
- `signed in 60 MB`: one upload of a 60 MB file of random bytes to `/attachments/` with a session: under the
  upload limit, so the server receives it whole and the view answers (it refuses the file, which is junk).

For each: the server's VmRSS before (after a warm-up of one page and one small upload, its peak reset there
with /proc/PID/clear_refs), its peak (VmHWM) above that, and its VmRSS a second after the last answer; and the
latency of GET /accounts/login/, sent one after another from a separate process for as long as the bodies are
in flight (median and max; "idle" is the same page with nothing else going on).
"""

import argparse
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx2

from bench.load import seed_conversations
from tests.cluster import AppServer, migrate, server_env

MEGABYTE = 1024 * 1024
BOUNDARY = "bench-upload-server-boundary"
JUNK = os.urandom(MEGABYTE)  # repeated: random bytes, as a compressed file's, without making 150 MB of them
CSRF_TOKEN = secrets.token_hex(16)  # 32 characters: a valid unmasked CSRF secret, sent as cookie and header
CASES = {
    "anonymous 150 MB": ("/", [150], False),
    "anonymous 4 x 39 MB": ("/attachments/", [39, 39, 39, 39], False),
    "signed in 60 MB": ("/attachments/", [60], True),
}


class DaphneServer(AppServer):
    """The server before uvicorn, as `make run` started it."""

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
            "--websocket-max-message-size", "1048576", "config.asgi:application",
        ]


def multipart_body(megabytes: int) -> tuple[int, object]:
    """The length and the chunks of a multipart/form-data body carrying one file of `megabytes` MB."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="junk.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def chunks():
        yield head
        for _ in range(megabytes):
            yield JUNK
        yield tail

    return len(head) + megabytes * MEGABYTE + len(tail), chunks()


def post(url: str, megabytes: int, session: str | None, results: list) -> None:
    length, chunks = multipart_body(megabytes)
    headers = {"Content-Length": str(length), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if session:
        headers |= {"Cookie": f"sessionid={session}; csrftoken={CSRF_TOKEN}", "X-CSRFToken": CSRF_TOKEN}
    started = time.perf_counter()
    try:
        status = httpx2.post(url, content=chunks, headers=headers, timeout=300).status_code
    except httpx2.HTTPError as error:
        status = type(error).__name__
    results.append((status, time.perf_counter() - started))


def probe(url: str, ready, stop, latencies) -> None:
    """GET the page one request after another until `stop` is set (runs in its own process)."""
    with httpx2.Client(timeout=60) as client:
        client.get(url)
        ready.set()
        while not stop.is_set():
            started = time.perf_counter()
            client.get(url)
            latencies.append(time.perf_counter() - started)


def probed(url: str, work) -> list[float]:
    """Run `work()` while a separate process probes `url`; return the probe's latencies."""
    context = multiprocessing.get_context("fork")
    ready, stop, latencies = context.Event(), context.Event(), context.Manager().list()
    prober = context.Process(target=probe, args=(url, ready, stop, latencies))
    prober.start()
    ready.wait()
    try:
        work()
    finally:
        stop.set()
        prober.join()
    return list(latencies)


def run_case(server_class, env: dict, log_dir: Path, session: str, name: str) -> dict:
    path, sizes, signed_in = CASES[name]
    server = server_class(env, log_dir, name.replace(" ", "-")).start()
    try:
        small = []
        post(f"{server.url}/attachments/", 1, session, small)  # warm-up: the upload path's imports are paid
        httpx2.get(f"{server.url}/accounts/login/")
        before = server.memory_peak_reset()
        results: list = []

        def send_all():
            threads = [
                threading.Thread(target=post, args=(f"{server.url}{path}", size, session if signed_in else None,
                                                    results))
                for size in sizes
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        latencies = probed(f"{server.url}/accounts/login/", send_all)
        peak = server.memory()["VmHWM"]
        time.sleep(1)
        after = server.memory()["VmRSS"]
        idle = probed(f"{server.url}/accounts/login/", lambda: time.sleep(2))
    finally:
        server.stop()
    return {
        "case": name, "before": before, "peak": peak - before, "after": after,
        "statuses": sorted({str(status) for status, _ in results}), "wall": max(wall for _, wall in results),
        "median": statistics.median(latencies), "max": max(latencies), "probes": len(latencies),
        "idle": statistics.median(idle),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn")
    parser.add_argument("--case", choices=list(CASES), action="append", help="run only these (default: all)")
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-upload-server-"))
    env = server_env(
        DJANGO_DEBUG=0, DJANGO_SECRET_KEY=secrets.token_urlsafe(64), DJANGO_SECURE_SSL_REDIRECT=0,
        DATABASE_URL=f"sqlite:///{log_dir / 'bench.sqlite3'}", DJANGO_MEDIA_ROOT=str(log_dir / "media"),
        REDIS_URL="", TMPDIR=str(log_dir),
    )
    migrate(env)
    _, session = seed_conversations(env, 1)
    server_class = DaphneServer if args.server == "daphne" else AppServer
    print(f"server: {args.server}; logs in {log_dir}")
    print("| case | server | answers | slowest answer | RSS before | peak above it | RSS after | GET median (idle) "
          "| GET max (of n) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.case or CASES:
        row = run_case(server_class, env, log_dir, session, name)
        print(
            f"| {row['case']} | {args.server} | {', '.join(row['statuses'])} | {row['wall']:.2f} s "
            f"| {row['before'] / MEGABYTE:.0f} MB | +{row['peak'] / MEGABYTE:.0f} MB | {row['after'] / MEGABYTE:.0f} MB "
            f"| {row['median'] * 1000:.0f} ms ({row['idle'] * 1000:.0f} ms) | {row['max'] * 1000:.0f} ms ({row['probes']}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
