"""Real server processes for scale-out tests, the browser tests and the benchmarks: uvicorn, started as `make run`
and docs/deploy.md start it, on PostgreSQL + Redis (or the single-machine defaults), signed into over HTTP and
talked to over real websockets.

Also the one place that says where the test PostgreSQL and Redis are, and what a test does when they are not.
"""

import asyncio
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx2
import psycopg
import pytest
import redis
import websockets

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "http://127.0.0.1"
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Servers started by this run keep their channel-layer and cache keys under a prefix of their own, so two runs
# sharing one Redis never deliver to each other's sockets or count into each other's rate limits.
RUN_REDIS_PREFIX = f"claudechat-test-{uuid.uuid4().hex[:12]}"
# Servers started by this run deliver email as files here (Django's file backend), so a test can open the link
# a sign-up sends, as its recipient would.
RUN_MAIL_DIR = Path(tempfile.mkdtemp(prefix="claudechat-test-mail-"))
atexit.register(shutil.rmtree, RUN_MAIL_DIR, True)


def require(reachable: bool, what: str) -> None:
    """Skip a test whose service is missing; under CI=true, which has them all, fail it instead."""
    if reachable:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} must be reachable under CI=true")
    pytest.skip(f"{what} is not reachable here")


def npm_installed(folder: Path) -> Path:
    """`npm ci` in `folder` (a package.json and package-lock.json of the tests'), once: again only when its
    package-lock.json is newer than what was installed. Returns its node_modules."""
    npm = shutil.which("npm")
    require(bool(npm and shutil.which("node")), f"Node.js and npm (for {folder.name})")
    modules = folder / "node_modules"
    installed, lock = modules / ".package-lock.json", folder / "package-lock.json"
    if not (installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime):
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=folder, capture_output=True, text=True, timeout=600, check=False,
        )
        require(result.returncode == 0, f"npm ci in {folder} ({result.stderr[-1000:]})")
    return modules


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_reachable() -> bool:
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


def redis_reachable(url: str = REDIS_URL) -> bool:
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError:
        return False


def fresh_postgres_database(name: str) -> str:
    """Create an empty database `name` and return its URL; the servers and the test share it."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return re.sub(r"/[^/]*$", f"/{name}", POSTGRES_URL)


def drop_postgres_database(name: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Migrates, then removes the model retirements the lifecycle migration seeds: their days are real ones, and from
# them on every test on a 4.x model would be refused (tests/conftest.py does the same for pytest's database).
MIGRATE = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
from lifecycle.models import ModelLifecycle
ModelLifecycle.objects.all().delete()
"""


def migrate(env: dict) -> None:
    subprocess.run(
        [sys.executable, "-c", MIGRATE], cwd=ROOT, env={"DJANGO_SETTINGS_MODULE": "config.settings", **env},
        check=True, timeout=300,
    )


# The flags `make run` and docs/deploy.md give uvicorn (the Makefile says why each).
SERVER_FLAGS = [
    "--ws", "websockets-sansio", "--ws-max-size", "1048576", "--ws-per-message-deflate", "false",
    "--lifespan", "on", "--timeout-graceful-shutdown", "10",
]


def proxy_flags(env: dict) -> list[str]:
    """As the Makefile's PROXY_FLAGS: X-Forwarded-* believed only from the proxies TRUSTED_PROXY_IPS names."""
    if trusted := env.get("TRUSTED_PROXY_IPS"):
        return ["--proxy-headers", "--forwarded-allow-ips", trusted]
    return ["--no-proxy-headers"]


class AppServer:
    """One uvicorn process serving the app."""

    def __init__(self, env: dict, log_dir: Path, name: str):
        self.env, self.name = env, name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port), *SERVER_FLAGS,
            *proxy_flags(self.env), "config.asgi:application",
        ]

    def start(self) -> "AppServer":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command(), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx2.get(f"{self.url}/accounts/login/", timeout=2).status_code == 200:
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")

    def memory(self) -> dict[str, int]:
        """The process's resident memory now (VmRSS) and at its peak (VmHWM), in bytes, from /proc."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024
        return fields

    def memory_peak_reset(self) -> int:
        """Start VmHWM afresh from what is resident now (Linux's clear_refs), and return that."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
        return self.memory()["VmRSS"]

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def ws_url(self, conversation_id: int) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/conversations/{conversation_id}/"


def server_env(**overrides) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CHAT_LOG_LEVEL": "WARNING",
        "REDIS_PREFIX": RUN_REDIS_PREFIX,
        "EMAIL_URL": f"filemail:///{RUN_MAIL_DIR}",
        # Off as in the test process (tests/conftest.py): servers' tests count upstream requests and ledger rows.
        "CHAT_MODEL_TITLES": "0",
    }
    env.pop("ANTHROPIC_API_KEY", None)
    env.pop("ANTHROPIC_API_KEY_FILE", None)
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def mailed_link(address: str, wait: float = 20) -> str:
    """The first link in the newest email this run's servers sent to `address`; mail goes out on a thread just
    after the page answers (accounts/mail.py), so it is looked for until it arrives."""
    deadline = time.monotonic() + wait
    while True:
        for path in sorted(RUN_MAIL_DIR.glob("*.log"), key=lambda path: path.stat().st_mtime_ns, reverse=True):
            for message in reversed(path.read_text().split("-" * 79)):
                headers, _, body = message.strip().partition("\n\n")
                if f"\nTo: {address}\n" in f"\n{headers}\n":
                    return re.search(r"https?://\S+", body).group(0)
        if time.monotonic() > deadline:
            raise AssertionError(f"no email to {address} in {RUN_MAIL_DIR}")
        time.sleep(0.1)


class Visitor:
    """A person with a browser: signs up over HTTP (and the emailed link), then holds the session cookie for
    websockets."""

    def __init__(self, server: AppServer, username: str):
        self.http = httpx2.Client(base_url=server.url, timeout=30)
        address, password = f"{username}@example.com", "a-long-test-passphrase-9"
        response = self.post_form("/accounts/signup/", {"username": username, "email": address})
        assert response.status_code == 200, response.text[:500]
        response = self.post_form(mailed_link(address), {"new_password1": password, "new_password2": password})
        assert response.status_code == 302, response.text[:500]

    def post_form(self, url: str, data: dict):
        """GET the page for its CSRF token, then POST the form."""
        page = self.http.get(url)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return self.http.post(url, data={"csrfmiddlewaretoken": token, **data})

    def new_conversation(self) -> int:
        response = self.http.post(
            "/conversations/new/", headers={"X-CSRFToken": self.http.cookies["csrftoken"], "Referer": ORIGIN}
        )
        assert response.status_code == 302, response.text[:500]
        return int(re.search(r"/conversations/(\d+)/", response.headers["location"]).group(1))

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())

    def connect(self, server: AppServer, conversation_id: int):
        return websockets.connect(
            server.ws_url(conversation_id),
            origin=server.url,  # the page's own origin, port included: the only one the server accepts
            additional_headers={"Cookie": self.cookie_header},
            max_size=None,
            open_timeout=30,
        )


class ReplyFollower:
    """Applies frames as docs/protocol.md tells a client to, counting gaps and duplicates."""

    def __init__(self):
        self.blocks: list[str] = []
        self.last_seq = 0
        self.message_id: int | None = None
        self.status: str | None = None
        self.gaps = 0
        self.duplicates = 0
        self.final: dict | None = None

    def apply(self, frame: dict) -> str | None:
        """Returns "resume" when the client must ask for the message's state."""
        if frame["type"] == "message" and frame["message"]["role"] == "assistant":
            if self.message_id not in (None, frame["message"]["id"]):
                return None
            if self.message_id is None and frame["message"]["status"] != "streaming":
                return None  # an older reply's state; this follower follows a reply that is being written
            self.message_id = frame["message"]["id"]
            self.blocks = [block.get("text", "") for block in frame["message"]["content"]]
            self.last_seq = frame["message"]["seq"]
            self.status = frame["message"]["status"]
            if self.status != "streaming":
                self.final = frame["message"]
        elif frame["type"] == "delta" and frame["message"] == self.message_id:
            if frame["seq"] <= self.last_seq:
                self.duplicates += 1
            elif frame["seq"] > self.last_seq + 1:
                self.gaps += 1
                return "resume"
            else:
                for part in frame["parts"]:
                    self.blocks += [""] * (part["block"] + 1 - len(self.blocks))
                    self.blocks[part["block"]] += part["text"]
                self.last_seq = frame["seq"]
        return None

    @property
    def text(self) -> str:
        return "".join(self.blocks)

    @property
    def done(self) -> bool:
        return self.final is not None


async def receive_frame(connection, timeout: float = 30) -> dict:
    return json.loads(await asyncio.wait_for(connection.recv(), timeout))
