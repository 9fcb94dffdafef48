"""Several server processes (uvicorn) on PostgreSQL and the Redis channel layer, as deployed.

These run whenever PostgreSQL and Redis are reachable, and must run under CI=true (CI has both).
"""

import asyncio
from decimal import Decimal
import signal
import subprocess
import uuid

import httpx2
import psycopg
import pytest
import websockets

from tests.cluster import (
    POSTGRES_URL,
    AppServer,
    ReplyFollower,
    Visitor,
    drop_postgres_database,
    free_port,
    fresh_postgres_database,
    migrate,
    postgres_reachable,
    receive_frame,
    redis_reachable,
    require,
    server_env,
    REDIS_URL,
)

pytestmark = pytest.mark.scaleout


@pytest.fixture(scope="module")
def database_url():
    """A database of this run's own, made empty and migrated, so no other run's rows are seen."""
    require(postgres_reachable(), "PostgreSQL")
    name = f"claudechat_scaleout_{uuid.uuid4().hex[:8]}"
    url = fresh_postgres_database(name)
    migrate(server_env(DATABASE_URL=url))
    yield url
    drop_postgres_database(name)


@pytest.fixture(scope="module")
def redis_url():
    require(redis_reachable(), "Redis")
    return REDIS_URL


@pytest.fixture
def cluster(database_url, redis_url, tmp_path):
    """Start servers sharing PostgreSQL and Redis: `cluster(2)` gives two, `cluster(1, REDIS_URL=...)` one."""
    servers = []

    def start(count: int = 2, **overrides) -> list[AppServer]:
        settings = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "OFFLINE_MODEL_TOKENS_PER_SECOND": 150,
            "CHAT_CHECKPOINT_INTERVAL": 0.2,
            "CHAT_HEARTBEAT_INTERVAL": 0.3,
            "CHAT_STREAM_STALE_AFTER": 2,
            "CHAT_DEFAULT_MONTHLY_BUDGET": "",
            **overrides,
        }
        started = [AppServer(server_env(**settings), tmp_path, f"server-{len(servers) + i}") for i in range(count)]
        servers.extend(started)
        for server in started:
            server.start()
        return started

    yield start
    for server in servers:
        server.stop()
        print(f"--- {server.name} log ---\n{server.log_path.read_text()[-4000:]}")


async def follow_until_done(connection, follower: ReplyFollower) -> ReplyFollower:
    while not follower.done:
        if follower.apply(await receive_frame(connection)) == "resume":
            await connection.send('{"type": "resume", "message": %d}' % follower.message_id)
    return follower


async def connect_with_retries(visitor, server, conversation, attempts: int = 20):
    """Reconnect as the page does: a refused handshake (the layer is still recovering) is tried again."""
    for _ in range(attempts - 1):
        try:
            return await visitor.connect(server, conversation)
        except (websockets.InvalidHandshake, websockets.InvalidMessage, OSError):
            await asyncio.sleep(0.25)
    return await visitor.connect(server, conversation)


async def settled_state(connection, message_id: int, polls: int = 200) -> dict:
    """Ask for a reply's state until it is no longer `streaming` (a dead process's reply goes stale first)."""
    state = None
    for _ in range(polls):
        await connection.send('{"type": "resume", "message": %d}' % message_id)
        frame = await receive_frame(connection)
        while frame["type"] != "message" or frame["message"]["id"] != message_id:
            frame = await receive_frame(connection)
        state = frame["message"]
        if state["status"] != "streaming":
            break
        await asyncio.sleep(0.1)
    return state


async def started_redis(command: list[str], port: int) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    for _ in range(100):
        if redis_reachable(f"redis://127.0.0.1:{port}/0"):
            break
        await asyncio.sleep(0.05)
    return process


async def send(connection, text: str) -> None:
    await connection.send('{"type": "send", "text": "%s"}' % text)


async def test_a_reply_made_in_one_process_streams_to_a_socket_on_another(cluster):
    server_a, server_b = cluster(2)
    visitor = Visitor(server_a, "alice")
    conversation = visitor.new_conversation()

    async with visitor.connect(server_a, conversation) as on_a, visitor.connect(server_b, conversation) as on_b:
        await send(on_a, "Hello across processes")
        follower_a, follower_b = await asyncio.gather(
            follow_until_done(on_a, ReplyFollower()), follow_until_done(on_b, ReplyFollower())
        )

    assert follower_b.final["status"] == "complete"
    assert "Hello across processes" in follower_b.text
    assert follower_b.text == follower_a.text == follower_b.final["content"][0]["text"]
    assert (follower_b.gaps, follower_b.duplicates) == (0, 0)


async def test_reconnecting_to_the_other_process_mid_reply_resumes_without_gap_or_duplicate(cluster):
    server_a, server_b = cluster(2)
    visitor = Visitor(server_a, "bob")
    conversation = visitor.new_conversation()
    follower = ReplyFollower()

    async with visitor.connect(server_a, conversation) as on_a:
        await send(on_a, "A long reply please")
        while follower.last_seq < 4:
            follower.apply(await receive_frame(on_a))
    seen_before = follower.text
    async with visitor.connect(server_b, conversation) as on_b:
        await on_b.send('{"type": "resume", "message": %d}' % follower.message_id)
        await follow_until_done(on_b, follower)

    assert follower.text.startswith(seen_before)
    assert follower.text == follower.final["content"][0]["text"] and follower.final["status"] == "complete"
    assert (follower.gaps, follower.duplicates) == (0, 0)


async def frame_of_type(connection, kind: str) -> dict:
    while (frame := await receive_frame(connection))["type"] != kind:
        pass
    return frame


async def test_a_switch_made_on_one_process_reaches_a_socket_on_another(cluster):
    server_a, server_b = cluster(2)
    visitor = Visitor(server_a, "dora")
    conversation = visitor.new_conversation()

    async with visitor.connect(server_a, conversation) as on_a, visitor.connect(server_b, conversation) as on_b:
        await send(on_a, "Versions please")
        first = await follow_until_done(on_a, ReplyFollower())
        await on_a.send('{"type": "regenerate"}')
        regenerated = await frame_of_type(on_b, "tree")
        second_id = regenerated["path"][-1]["id"]
        await settled_state(on_a, second_id)  # a switch waits for the reply to end
        await on_a.send('{"type": "switch", "message": %d}' % first.message_id)
        switched = await frame_of_type(on_b, "tree")

    assert regenerated["path"][-1]["versions"] == [first.message_id, second_id]
    assert [entry["id"] for entry in switched["path"]][-1] == first.message_id


async def test_stop_sent_to_another_process_stops_the_reply(cluster):
    server_a, server_b = cluster(2, OFFLINE_MODEL_TOKENS_PER_SECOND=60)
    visitor = Visitor(server_a, "carol")
    conversation = visitor.new_conversation()
    follower = ReplyFollower()

    async with visitor.connect(server_a, conversation) as on_a, visitor.connect(server_b, conversation) as on_b:
        await send(on_a, "Something long")
        while follower.last_seq < 2:
            follower.apply(await receive_frame(on_a))
        await on_b.send('{"type": "stop"}')
        await follow_until_done(on_a, follower)

    assert follower.final["status"] == "stopped" and follower.final["content"][0]["text"]


async def test_a_process_killed_mid_reply_leaves_it_interrupted_and_the_user_can_retry(cluster, database_url):
    server_a, server_b = cluster(2, OFFLINE_MODEL_TOKENS_PER_SECOND=60)
    visitor = Visitor(server_a, "dave")
    conversation = visitor.new_conversation()
    follower = ReplyFollower()

    async with visitor.connect(server_a, conversation) as on_a:
        await send(on_a, "Write slowly")
        while follower.last_seq < 10:
            follower.apply(await receive_frame(on_a))
        await asyncio.sleep(0.5)  # past one checkpoint interval, so the checkpoint holds text
        server_a.signal(signal.SIGKILL)
        server_a.wait(timeout=10)

    async with visitor.connect(server_b, conversation) as on_b:
        settled = await settled_state(on_b, follower.message_id)
        assert settled["status"] == "interrupted"
        kept = settled["content"][0]["text"]
        shared = min(len(kept), len(follower.text))
        assert kept and kept[:shared] == follower.text[:shared]

        await send(on_b, "Try again")
        retry = await follow_until_done(on_b, ReplyFollower())
    assert retry.final["status"] == "complete" and "Try again" in retry.text


async def test_sigterm_drains_running_replies_and_refuses_new_ones(cluster):
    (server,) = cluster(1, OFFLINE_MODEL_TOKENS_PER_SECOND=100, CHAT_DRAIN_TIMEOUT=20)
    visitor = Visitor(server, "erin")
    conversation = visitor.new_conversation()
    follower = ReplyFollower()

    async with visitor.connect(server, conversation) as connection:
        await send(connection, "Finish what you started")
        while follower.last_seq < 2:
            follower.apply(await receive_frame(connection))
        server.signal(signal.SIGTERM)
        try:
            await follow_until_done(connection, follower)
        except websockets.ConnectionClosed:
            pass

    # uvicorn exits by re-raising the signal once it has shut down, as a process that SIGTERM ended should.
    assert server.wait(timeout=60) == -signal.SIGTERM
    assert "Application shutdown complete" in server.log_path.read_text()
    stored = psycopg.connect(server.env["DATABASE_URL"]).execute(
        "select status, content from chat_message where id = %s", [follower.message_id]
    ).fetchone()
    assert stored[0] == "complete" and "Finish what you started" in stored[1][0]["text"]


async def test_while_redis_is_down_sockets_get_a_clear_error_and_nothing_generated_is_lost(cluster, tmp_path):
    redis_port = free_port()
    private_redis = [
        "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(tmp_path),
    ]
    redis_process = await started_redis(private_redis, redis_port)
    try:
        (server,) = cluster(
            1, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", OFFLINE_MODEL_TOKENS_PER_SECOND=80,
            CHAT_LAYER_PROBE_INTERVAL=0.5,
        )
        visitor = Visitor(server, "frank")
        conversation = visitor.new_conversation()
        follower = ReplyFollower()

        async with visitor.connect(server, conversation) as connection:
            await send(connection, "Keep writing through the outage")
            while follower.last_seq < 3:
                follower.apply(await receive_frame(connection))
            seen_before = follower.text
            redis_process.kill()
            redis_process.wait(timeout=10)
            frames = []
            try:
                while True:
                    frames.append(await receive_frame(connection))
            except websockets.ConnectionClosed:
                pass
        errors = [frame for frame in frames if frame["type"] == "error"]
        assert errors and errors[-1]["code"] == "unavailable"

        redis_process = await started_redis(private_redis, redis_port)
        async with await connect_with_retries(visitor, server, conversation) as connection:
            final = await settled_state(connection, follower.message_id)
        assert final["status"] == "complete"
        assert final["content"][0]["text"].startswith(seen_before)
    finally:
        redis_process.kill()


async def test_a_process_holds_no_more_database_connections_than_its_pool(cluster, database_url):
    with psycopg.connect(database_url, autocommit=True) as watcher:
        # Backends started from now on are this server's; earlier tests' servers' may still be closing.
        (started_at,) = watcher.execute("select now()").fetchone()
        (server,) = cluster(1, DATABASE_POOL_MAX_SIZE=2)
        visitor = Visitor(server, "grace")
        cookies = visitor.http.cookies
        async with httpx2.AsyncClient(base_url=server.url, cookies=cookies, timeout=60) as browser:
            pages = await asyncio.gather(*(browser.get("/") for _ in range(30)))
        (connections,) = watcher.execute(
            "select count(*) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid() and backend_start >= %s",
            [started_at],
        ).fetchone()

    assert [page.status_code for page in pages] == [200] * 30
    assert 1 <= connections <= 2


async def test_a_database_outage_of_30_seconds_mid_reply_loses_nothing(cluster, database_url):
    """PostgreSQL refuses this database's connections for 30 s, its open ones killed, while a reply streams: the
    reply streams on, its settling waits the outage out, and then the reply, its ledger row and the release of
    its reservation are all there. The sweep (every second here) must not take the live reply for dead."""
    (server,) = cluster(1, OFFLINE_MODEL_TOKENS_PER_SECOND=20, CHAT_STALE_SWEEP_INTERVAL=1)
    visitor = Visitor(server, "heidi")
    conversation = visitor.new_conversation()
    name = database_url.rsplit("/", 1)[1]
    follower = ReplyFollower()

    async with visitor.connect(server, conversation) as connection:
        await send(connection, "Keep writing while the database is away")
        while follower.last_seq < 1:
            follower.apply(await receive_frame(connection))
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
            await asyncio.sleep(30)
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await follow_until_done(connection, follower)

    assert follower.final["status"] == "complete" and (follower.gaps, follower.duplicates) == (0, 0)
    with psycopg.connect(database_url) as database:
        status, text = database.execute(
            "SELECT status, content->0->>'text' FROM chat_message WHERE id = %s", [follower.message_id]
        ).fetchone()
        calls = database.execute(
            "SELECT status, output_tokens FROM chat_apicall WHERE message_id = %s", [follower.message_id]
        ).fetchall()
        (reservations,) = database.execute("SELECT count(*) FROM billing_reservation").fetchone()
    assert (status, text) == ("complete", follower.text)
    assert len(calls) == 1 and calls[0][0] == "ok" and calls[0][1] > 0
    assert reservations == 0


async def test_five_tabs_on_two_processes_never_spend_more_than_the_budget(cluster, database_url):
    budget = Decimal("0.09")  # one full 4,096-token Sonnet reply ($0.06 and its input), not two
    servers = cluster(2, CHAT_DEFAULT_MONTHLY_BUDGET=str(budget), CHAT_TOOL_MAX_ROUNDS=0,
                      OFFLINE_MODEL_TOKENS_PER_SECOND=400)
    visitor = Visitor(servers[0], "ivan")
    with psycopg.connect(database_url) as database:  # five tabs, five conversations ("New chat" reuses an empty one)
        conversations = [row[0] for row in database.execute(
            "INSERT INTO chat_conversation"
            " (owner_id, title, title_source, model, system_prompt, thinking, cache_ttl, tree_version, created_at,"
            " updated_at)"
            " SELECT id, '', '', 'claude-sonnet-5-5', '', 'off', '5m', 0, now(), now()"
            " FROM accounts_user, generate_series(1, 5)"
            " WHERE username = 'ivan' RETURNING id"
        ).fetchall()]
    outcomes = []

    async def tab(index: int, conversation: int) -> None:
        async with visitor.connect(servers[index % 2], conversation) as connection:
            await send(connection, "Tell me everything about B-trees")
            follower = ReplyFollower()
            while not follower.done:
                frame = await receive_frame(connection)
                if frame["type"] == "error":
                    outcomes.append(frame["code"])
                    return
                follower.apply(frame)
            outcomes.append("shortened" if follower.final["notices"] else follower.final["status"])

    await asyncio.gather(*(tab(index, conversation) for index, conversation in enumerate(conversations)))

    with psycopg.connect(database_url) as database:
        (spent,) = database.execute(
            "SELECT coalesce(sum(cost), 0) FROM chat_apicall JOIN accounts_user u ON u.id = user_id"
            " WHERE u.username = 'ivan'"
        ).fetchone()
        (reservations,) = database.execute("SELECT count(*) FROM billing_reservation").fetchone()
    assert spent <= budget and reservations == 0
    assert outcomes.count("complete") == 1 and set(outcomes) <= {"complete", "shortened", "budget_exceeded"}
