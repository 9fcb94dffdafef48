"""Settings come from the environment; production refuses unsafe defaults."""

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from asgiref.testing import ApplicationCommunicator

from chat.db import db_async
from chat.replies import generation
from tests.cluster import POSTGRES_URL, postgres_reachable, require

ROOT = Path(__file__).resolve().parent.parent
REAL_KEY = "k" * 20 + "-production-secret-that-is-long-enough-" + "z" * 10
# Read by the settings these tests are about; the environment running the tests must not decide them.
SERVICE_VARIABLES = (
    "DATABASE_URL", "DATABASE_POOL_MAX_SIZE", "DATABASE_POOL_TIMEOUT", "ASGI_THREADS",
    "REDIS_URL", "REDIS_PREFIX",
)


def manage(*args, **env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_with_the_default_secret():
    result = manage("check", DJANGO_DEBUG="0", DJANGO_SECRET_KEY="")

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_with_a_real_secret_passes_the_deploy_check():
    result = manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=REAL_KEY)

    assert result.returncode == 0, result.stdout + result.stderr


def services_settings(**env) -> dict:
    """The database, channel layer and cache settings of a process started with `env`."""
    code = (
        "import django, json; django.setup(); from django.conf import settings; print(json.dumps("
        "{'database': settings.DATABASES['default'], 'layer': settings.CHANNEL_LAYERS['default'],"
        " 'cache': settings.CACHES['default']}, default=str))"
    )
    clean = {name: value for name, value in os.environ.items() if name not in SERVICE_VARIABLES}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_database_url_selects_postgresql_through_a_bounded_pool():
    database = services_settings(
        DATABASE_URL="postgres://u@127.0.0.1/db?sslmode=require", DATABASE_POOL_MAX_SIZE="7"
    )["database"]

    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["OPTIONS"] == {
        "sslmode": "require",
        "pool": {"min_size": 1, "max_size": 7, "timeout": 10.0},
    }
    assert database["CONN_MAX_AGE"] == 0


def test_the_pool_has_a_connection_for_each_database_thread_and_four_for_page_loads():
    database = services_settings(DATABASE_URL="postgres://u@127.0.0.1/db", ASGI_THREADS="12")["database"]

    assert database["OPTIONS"]["pool"]["max_size"] == 16


async def test_the_server_runs_database_calls_from_async_code_on_asgi_threads_threads(monkeypatch):
    """The pool above is sized from ASGI_THREADS; the server's lifespan startup gives its loop that many."""
    from config.asgi import application

    monkeypatch.setenv("ASGI_THREADS", "3")
    monkeypatch.setattr(generation, "draining", False)  # the lifespan's shutdown sets it for the process
    lifespan = ApplicationCommunicator(application, {"type": "lifespan"})
    await lifespan.send_input({"type": "lifespan.startup"})
    assert await lifespan.receive_output(timeout=10) == {"type": "lifespan.startup.complete"}
    meeting = threading.Barrier(3, timeout=10)

    def thread_that_ran_it() -> int:
        meeting.wait()  # three at a time: a fourth call finds every thread busy
        return threading.get_ident()

    threads = await asyncio.gather(*(db_async(thread_that_ran_it)() for _ in range(6)))
    await lifespan.send_input({"type": "lifespan.shutdown"})
    await lifespan.receive_output(timeout=10)

    assert len(set(threads)) == 3


def test_a_pool_without_connections_stops_start_up():
    result = manage("check", DATABASE_URL="postgres://u@127.0.0.1/db", DATABASE_POOL_MAX_SIZE="0")

    assert result.returncode != 0
    assert "DATABASE_POOL_MAX_SIZE must be at least 1" in result.stderr


def test_the_pool_connects_to_postgresql():
    """The pool's options reach psycopg_pool (installed through the psycopg[pool] extra) only on first use."""
    require(postgres_reachable(), "PostgreSQL")
    code = "from django.db import connection; connection.ensure_connection(); print(connection.pool.max_size)"

    result = manage(
        "shell", "--no-imports", "-c", code, DATABASE_URL=POSTGRES_URL, DATABASE_POOL_MAX_SIZE="3"
    )

    assert result.stdout.strip() == "3", result.stderr


def test_the_channel_layer_and_the_cache_share_one_redis_prefix():
    default = services_settings(REDIS_URL="redis://127.0.0.1:6379/0")
    chosen = services_settings(REDIS_URL="redis://127.0.0.1:6379/0", REDIS_PREFIX="staging")

    assert default["layer"]["CONFIG"]["prefix"] == default["cache"]["KEY_PREFIX"] == "claudechat"
    assert chosen["layer"]["CONFIG"]["prefix"] == chosen["cache"]["KEY_PREFIX"] == "staging"


def test_the_development_server_serves_static_files_itself():
    """`make run` runs bare uvicorn, which serves no static files unless the ASGI app does."""
    code = """
import asyncio
from asgiref.testing import ApplicationCommunicator
from config.asgi import application

async def fetch():
    scope = {"type": "http", "method": "GET", "path": "/static/chat/main.js", "query_string": b"", "headers": []}
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(timeout=10)
    body = await communicator.receive_output(timeout=10)
    print(start["status"], len(body.get("body", b"")))

asyncio.run(fetch())
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    status, size = result.stdout.split()
    assert status == "200" and int(size) > 1000, result.stderr
