"""The Anthropic-compatible API through the official Python SDK (sync and async clients), against a real server
process (uvicorn, as every test server is started: tests/cluster.py) on SQLite, with the offline model.

The people and keys are made once, in the server's database, by `manage.py shell`; what the server wrote (the
ledger, reservations) is read from that database file directly, as sqlite3 rows.
"""

import json
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal

import anthropic
import httpx2
import pytest
from cluster import ROOT, AppServer, migrate, server_env

from chat.llm.catalog import MODELS, model_spec
from chat.llm.pricing import TokenUsage, usage_cost

MODEL = next(spec.id for spec in MODELS if spec.family == "haiku")
PASSWORD = "a-long-test-passphrase-9"
API_MAX_BODY_BYTES = 4 * 1024 * 1024
CALCULATOR = {
    "name": "calculator",
    "description": "Evaluates an arithmetic expression.",
    "input_schema": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
}

# Made in the server's database before it starts: each persona and key of the tests below.
SETUP = """
import json
from datetime import timedelta
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.utils import timezone
from apikeys.services import api_key_create, api_key_revoke

User = get_user_model()
def person(name, **fields):
    return User.objects.create_user(username=name, password=PASSWORD, email=name + "@example.com", **fields)

alice, broke, hasty = person("alice"), person("broke", monthly_budget=Decimal(0)), person(
    "hasty", rate_limit_requests_per_minute=1)
keys = {}
for name, user, options in [
    ("alice", alice, {}), ("capped", alice, {"monthly_cap": Decimal(0)}), ("broke", broke, {}),
    ("hasty", hasty, {}), ("revoked", alice, {}), ("expired", alice, {}),
]:
    key, secret = api_key_create(user=user, name=name, **options)
    keys[name] = {"id": key.pk, "secret": secret}
api_key_revoke(api_key=key.__class__.objects.get(pk=keys["revoked"]["id"]))
key.__class__.objects.filter(pk=keys["expired"]["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
print(json.dumps(keys))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("api")
    database = workdir / "db.sqlite3"
    env = server_env(
        DATABASE_URL=f"sqlite:///{database}", DJANGO_MEDIA_ROOT=str(workdir / "media"), REDIS_URL="",
        OFFLINE_MODEL_TOKENS_PER_SECOND=400, API_MAX_BODY_BYTES=API_MAX_BODY_BYTES,
        # Room for every test's calls; "hasty" has a limit of one request a minute of their own.
        CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE=100, CHAT_RATE_LIMIT_TOKENS_PER_MINUTE=0,
    )
    migrate(env)
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", f"PASSWORD = {PASSWORD!r}\n{SETUP}"],
        cwd=ROOT, env=env, check=True, timeout=120, capture_output=True, text=True,
    )
    server = AppServer(env, workdir, "server").start()
    server.keys = json.loads(made.stdout.strip().splitlines()[-1])
    server.database = database
    yield server
    server.stop()


def client(server, key="alice", **options) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=f"{server.url}/api/anthropic", api_key=server.keys[key]["secret"], max_retries=0, **options
    )


def rows(server, sql: str, *params) -> list[sqlite3.Row]:
    with sqlite3.connect(server.database, timeout=10) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(sql, params).fetchall()


def ledger_rows_of(server, key: str, count: int, wait: float = 10) -> list[sqlite3.Row]:
    """The key's ledger rows, once there are `count`: a call settles in its own task just after it answers."""
    deadline = time.monotonic() + wait
    while True:
        found = rows(server, "SELECT * FROM chat_apicall WHERE api_key_id = ? ORDER BY id", server.keys[key]["id"])
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def reservations(server) -> int:
    return rows(server, "SELECT COUNT(*) FROM billing_reservation")[0][0]


def expected_cost(usage) -> Decimal:
    return usage_cost(TokenUsage.from_sdk(usage), model_spec(MODEL).prices)


def test_a_streamed_message_arrives_event_by_event_and_its_key_pays_for_it(server):
    before = len(ledger_rows_of(server, "alice", 0, wait=0))
    with client(server).messages.stream(
        model=MODEL, max_tokens=500, messages=[{"role": "user", "content": "Hello from a script"}]
    ) as stream:
        pieces = list(stream.text_stream)
        message = stream.get_final_message()

    assert len(pieces) > 5  # event by event, not one block at the end
    assert "Hello from a script" in "".join(pieces)
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    calls = ledger_rows_of(server, "alice", before + 1)
    call = calls[-1]
    assert (call["purpose"], call["status"], call["conversation_id"], call["model"]) == ("api", "ok", None, MODEL)
    assert call["output_tokens"] == message.usage.output_tokens
    assert Decimal(str(call["cost"])) == expected_cost(message.usage)
    assert json.loads(call["price_snapshot"])["output"] == str(model_spec(MODEL).prices.output.normalize())
    assert reservations(server) == 0


async def test_the_async_client_makes_a_tool_round_trip(server):
    api = anthropic.AsyncAnthropic(
        base_url=f"{server.url}/api/anthropic", api_key=server.keys["alice"]["secret"], max_retries=0
    )
    asked = [{"role": "user", "content": "What is 6 * 7?"}]
    first = await api.messages.create(model=MODEL, max_tokens=500, tools=[CALCULATOR], messages=asked)
    call = next(block for block in first.content if block.type == "tool_use")
    assert (first.stop_reason, call.name, call.input) == ("tool_use", "calculator", {"expression": "6 * 7"})

    answered = asked + [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "42"}]},
    ]
    second = await api.messages.create(model=MODEL, max_tokens=500, tools=[CALCULATOR], messages=answered)
    await api.close()
    assert second.stop_reason == "end_turn"
    assert "The calculator returned 42." in second.content[0].text


def test_count_tokens_and_the_models_on_offer(server):
    api = client(server)
    counted = api.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Count me " * 50}])
    assert counted.input_tokens > 50

    assert [model.id for model in api.models.list(limit=2)] == [spec.id for spec in MODELS]  # every page
    assert api.models.retrieve(MODEL).max_tokens == model_spec(MODEL).max_output
    with pytest.raises(anthropic.NotFoundError) as raised:
        api.models.retrieve("claude-imaginary-1")
    assert raised.value.body["error"]["type"] == "not_found_error"


def test_a_model_not_on_offer_or_too_many_tokens_are_refused_before_anything_is_sent(server):
    before = len(ledger_rows_of(server, "alice", 0, wait=0))
    with pytest.raises(anthropic.NotFoundError) as raised:
        client(server).messages.create(model="claude-imaginary-1", max_tokens=10, messages=[
            {"role": "user", "content": "Hi"}])
    assert raised.value.body == {"type": "error", "error": {"type": "not_found_error",
                                                            "message": "model: claude-imaginary-1"}}
    with pytest.raises(anthropic.BadRequestError) as raised:
        client(server).messages.create(  # a timeout of its own, or the SDK refuses a long non-streamed request
            model=MODEL, max_tokens=model_spec(MODEL).max_output + 1, messages=[{"role": "user", "content": "Hi"}],
            timeout=30,
        )
    assert raised.value.body["error"]["type"] == "invalid_request_error"
    assert len(ledger_rows_of(server, "alice", 0, wait=0)) == before


@pytest.mark.parametrize("key, message", [
    ("revoked", "This API key has been revoked."), ("expired", "This API key has expired."),
])
def test_a_revoked_or_expired_key_is_refused(server, key, message):
    with pytest.raises(anthropic.AuthenticationError) as raised:
        client(server, key).messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert raised.value.body["error"] == {"type": "authentication_error", "message": message}
    assert ledger_rows_of(server, key, 0, wait=0) == []


def test_a_made_up_key_or_a_session_cookie_alone_authorises_nothing(server):
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=f"{server.url}/api/anthropic", api_key="sk-chat-made-up", max_retries=0
                            ).models.list()
    browser = httpx2.Client(base_url=server.url)
    page = browser.get("/accounts/login/")
    token = page.text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    signed_in = browser.post("/accounts/login/", data={
        "csrfmiddlewaretoken": token, "username": "alice", "password": PASSWORD})
    assert signed_in.status_code == 302 and "sessionid" in browser.cookies
    answer = browser.post("/api/anthropic/v1/messages", json={
        "model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]})
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("key", ["broke", "capped"])
def test_a_spent_budget_or_key_cap_is_a_billing_error(server, key):
    with pytest.raises(anthropic.PaymentRequiredError) as raised:
        client(server, key).messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert raised.value.body["error"]["type"] == "billing_error"
    assert ("API key" in raised.value.body["error"]["message"]) == (key == "capped")
    assert ledger_rows_of(server, key, 0, wait=0) == []
    assert reservations(server) == 0


def test_the_rate_limit_of_the_user_is_a_rate_limit_error_with_retry_after(server):
    api = client(server, "hasty")
    api.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(anthropic.RateLimitError) as raised:
        api.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert raised.value.body["error"]["type"] == "rate_limit_error"
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 60
    assert len(ledger_rows_of(server, "hasty", 1)) == 1


def test_an_admin_can_turn_the_api_off(server):
    rows(server, "UPDATE apikeys_apipolicy SET enabled = 0")
    try:
        with pytest.raises(anthropic.PermissionDeniedError) as raised:
            client(server).models.list()
        assert raised.value.body["error"]["type"] == "permission_error"
    finally:
        rows(server, "UPDATE apikeys_apipolicy SET enabled = 1")
    assert client(server).models.retrieve(MODEL).id == MODEL


def test_a_client_that_leaves_mid_stream_is_billed_for_what_streamed(server):
    before = len(ledger_rows_of(server, "alice", 0, wait=0))
    # The offline model quotes the question: a reply of over 1,000 tokens, some seconds at 400 a second.
    with client(server).messages.stream(
        model=MODEL, max_tokens=4000, messages=[{"role": "user", "content": "Tell me everything " * 200}]
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                break
    calls = ledger_rows_of(server, "alice", before + 1)
    assert len(calls) == before + 1
    call = calls[-1]
    assert call["status"] == "stopped"
    assert call["input_tokens"] > 900  # from message_start
    assert 0 < call["output_tokens"] < 1000  # what streamed before the client left, not the whole reply
    assert Decimal(str(call["cost"])) > 0
    assert reservations(server) == 0


def test_bodies_are_refused_in_the_api_shape(server):
    secret = {"x-api-key": server.keys["alice"]["secret"], "content-type": "application/json"}
    url = f"{server.url}/api/anthropic/v1/messages"
    malformed = httpx2.post(url, content=b"{not json", headers=secret)
    assert (malformed.status_code, malformed.json()["error"]["type"]) == (400, "invalid_request_error")

    big = json.dumps({"model": MODEL, "max_tokens": 10, "messages": [
        {"role": "user", "content": "x" * (3 * 1024 * 1024)}]}).encode()
    keyless = httpx2.post(url, content=big, headers={"content-type": "application/json"})
    assert (keyless.status_code, keyless.json()["error"]["type"]) == (413, "request_too_large")
    keyed = httpx2.post(url, content=big, headers=secret, timeout=60)
    assert keyed.status_code != 413  # a key lets the body carry API_MAX_BODY_BYTES
    too_big = httpx2.post(url, content=big + b" " * API_MAX_BODY_BYTES, headers=secret)
    assert (too_big.status_code, too_big.json()["error"]["type"]) == (413, "request_too_large")
