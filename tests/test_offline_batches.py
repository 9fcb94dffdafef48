"""The offline model's Message Batches API, through the real SDK: states, results, validation, files, HTTP."""

import asyncio
import json
import os
import re
import sys
from datetime import timedelta

import anthropic
import httpx2
import pytest
from anthropic import AsyncAnthropic
from anthropic.types.messages import MessageBatchIndividualResponse
from django.conf import settings as django_settings

from chat.llm.offline import batches as offline_batches
from chat.llm.offline import estimate_tokens, offline_model, offline_transport
from chat.llm.offline.model import OfflineModel

MODEL = "claude-sonnet-5-5"
OFFLINE_URL = "http://offline-model.invalid"
LONG_SYSTEM = "You are a careful assistant who answers questions about databases. " * 80  # ~1,400 tokens
UNKNOWN_ID = "msgbatch_offline_" + "0" * 24


def sdk_client(base_url: str = OFFLINE_URL, transport=None) -> AsyncAnthropic:
    in_process = {"transport": transport or offline_transport()} if base_url == OFFLINE_URL else {}
    return AsyncAnthropic(
        api_key="offline", base_url=base_url, http_client=httpx2.AsyncClient(**in_process), max_retries=0
    )


@pytest.fixture(autouse=True)
def batch_dir(settings, tmp_path):
    settings.OFFLINE_MODEL_BATCH_DIR = tmp_path / "batches"
    settings.OFFLINE_MODEL_BATCH_SECONDS = 0
    return settings.OFFLINE_MODEL_BATCH_DIR


@pytest.fixture
async def client():
    sdk = sdk_client()
    yield sdk
    await sdk.close()


@pytest.fixture
def wall_clock():
    """The batches' wall clock, moved by hand (`offline_model_reset` restores the real one)."""

    class FakeClock:
        now = 1_800_000_000.0

        def __call__(self):
            return self.now

    fake = FakeClock()
    offline_model.batches.clock = fake
    return fake


def params(text="What is a B-tree?", **extra):
    return {"model": MODEL, "max_tokens": 4000, "messages": [{"role": "user", "content": text}], **extra}


def request(custom_id, **extra):
    return {"custom_id": custom_id, "params": params(f"Question {custom_id}?", **extra)}


async def all_results(client, batch_id) -> dict[str, MessageBatchIndividualResponse]:
    return {line.custom_id: line async for line in await client.messages.batches.results(batch_id)}


async def raw(method, path, body=None):
    headers = {"x-api-key": "offline"}  # without a key the API answers 401
    async with httpx2.AsyncClient(transport=offline_transport(), base_url=OFFLINE_URL, headers=headers) as http:
        content = None if body is None else json.dumps(body).encode()
        return await http.request(method, path, content=content)


def batch_files(directory):
    return sorted(name for name in os.listdir(directory) if not name.startswith("."))


# States


async def test_a_batch_is_in_progress_until_its_time_then_ended_with_its_counts(client, settings, wall_clock):
    settings.OFFLINE_MODEL_BATCH_SECONDS = 20
    bad_turns = {"custom_id": "bad", "params": params(messages=[{"role": "assistant", "content": "Hi"}])}

    created = await client.messages.batches.create(requests=[request("a"), request("b"), bad_turns])
    wall_clock.now += 19
    early = await client.messages.batches.retrieve(created.id)
    wall_clock.now += 6  # read a while after its time
    ended = await client.messages.batches.retrieve(created.id)

    assert created.type == "message_batch" and created.id.startswith("msgbatch_offline_")
    assert created.processing_status == early.processing_status == "in_progress"
    assert created.request_counts.model_dump() == {
        "processing": 3,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert created.results_url is None and early.results_url is None and early.ended_at is None
    assert created.expires_at - created.created_at == timedelta(hours=24)
    assert created.cancel_initiated_at is None and created.archived_at is None
    assert ended.processing_status == "ended"
    assert ended.request_counts.model_dump() == {
        "processing": 0,
        "succeeded": 2,
        "errored": 1,
        "canceled": 0,
        "expired": 0,
    }
    assert ended.ended_at - ended.created_at == timedelta(seconds=20)  # it ended when it was due
    assert ended.results_url == f"{OFFLINE_URL}/v1/messages/batches/{created.id}/results"


async def test_a_succeeded_result_is_the_message_that_the_messages_api_returns(client):
    direct = await client.messages.create(**params("Price me later"))
    batch = await client.messages.batches.create(
        requests=[{"custom_id": "later", "params": params("Price me later")}]
    )

    results = await all_results(client, batch.id)

    result = results["later"].result
    assert result.type == "succeeded"
    assert result.message.model_dump(exclude={"id"}) == direct.model_dump(exclude={"id"})
    assert result.message.id.startswith("msg_offline_") and result.message.id != direct.id
    assert (
        "Offline model" in result.message.content[0].text
        and "> Price me later" in result.message.content[0].text
    )
    assert result.message.usage.input_tokens == estimate_tokens("Price me later") > 0
    assert result.message.usage.output_tokens == estimate_tokens(result.message.content[0].text)


async def test_batch_requests_write_and_read_the_prompt_cache(client):
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    requests = [{"custom_id": f"q{n}", "params": params(f"Question {n}", system=system)} for n in (1, 2)]

    batch = await client.messages.batches.create(requests=requests)
    results = await all_results(client, batch.id)
    after = await client.messages.create(**params("Question 3", system=system))

    prefix = estimate_tokens(LONG_SYSTEM)
    first, second = (results[name].result.message.usage for name in ("q1", "q2"))
    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens) == (prefix, 0)
    assert first.cache_creation.ephemeral_5m_input_tokens == prefix
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens) == (0, prefix)
    assert after.usage.cache_read_input_tokens == prefix  # the same cache as /v1/messages


async def test_a_request_the_messages_api_refuses_is_errored_inside_a_valid_batch(client):
    bad_turns = params(messages=[{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}])
    too_long = params(max_tokens=10_000_000)
    requests = [
        request("fine"),
        {"custom_id": "turns", "params": bad_turns},
        {"custom_id": "long", "params": too_long},
    ]

    batch = await client.messages.batches.create(requests=requests)
    results = await all_results(client, batch.id)
    ended = await client.messages.batches.retrieve(batch.id)

    assert results["fine"].result.type == "succeeded"
    for name, complaint in (("turns", "first message"), ("long", "max_tokens")):
        error = results[name].result
        assert error.type == "errored" and error.error.type == "error"
        assert error.error.error.type == "invalid_request_error" and complaint in error.error.error.message
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (1, 2)


async def test_a_batch_canceled_before_its_time_ends_with_every_request_canceled(client, settings):
    settings.OFFLINE_MODEL_BATCH_SECONDS = 60
    batch = await client.messages.batches.create(requests=[request("a"), request("b")])

    canceling = await client.messages.batches.cancel(batch.id)
    ended = await client.messages.batches.retrieve(batch.id)
    again = await client.messages.batches.cancel(batch.id)
    results = await all_results(client, batch.id)

    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    assert canceling.request_counts.processing == 2 and canceling.results_url is None
    assert ended.processing_status == "ended" and ended.cancel_initiated_at == canceling.cancel_initiated_at
    assert ended.request_counts.model_dump() == {
        "processing": 0,
        "succeeded": 0,
        "errored": 0,
        "canceled": 2,
        "expired": 0,
    }
    assert again.model_dump() == ended.model_dump()  # nothing left to cancel
    assert {name: line.result.type for name, line in results.items()} == {"a": "canceled", "b": "canceled"}


async def test_a_batch_whose_24_hours_pass_first_ends_with_every_request_expired(
    client, settings, wall_clock
):
    settings.OFFLINE_MODEL_BATCH_SECONDS = 2 * 24 * 3600
    batch = await client.messages.batches.create(requests=[request("a"), request("b")])
    wall_clock.now += 24 * 3600 - 1
    still = await client.messages.batches.retrieve(batch.id)
    wall_clock.now += 2

    ended = await client.messages.batches.retrieve(batch.id)
    results = await all_results(client, batch.id)

    assert still.processing_status == "in_progress"
    assert ended.processing_status == "ended" and ended.ended_at == ended.expires_at
    assert ended.request_counts.expired == 2 and ended.request_counts.processing == 0
    assert {line.result.type for line in results.values()} == {"expired"}


async def test_results_are_refused_until_the_batch_has_ended(client, settings):
    settings.OFFLINE_MODEL_BATCH_SECONDS = 60
    batch = await client.messages.batches.create(requests=[request("a")])

    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        await client.messages.batches.results(batch.id)
    response = await raw("GET", f"/v1/messages/batches/{batch.id}/results")

    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


# Listing and deleting


async def test_batches_are_listed_newest_first_in_pages(client):
    created = [(await client.messages.batches.create(requests=[request("a")])).id for _ in range(5)]
    newest_first = created[::-1]

    listed = [
        batch.id async for batch in client.messages.batches.list(limit=2)
    ]  # three pages, followed by the SDK
    first_page = await client.messages.batches.list(limit=2)
    after = await client.messages.batches.list(limit=2, after_id=newest_first[1])
    before = await client.messages.batches.list(limit=2, before_id=newest_first[4])
    last = await client.messages.batches.list(limit=10, after_id=newest_first[3])

    assert listed == newest_first
    assert [b.id for b in first_page.data] == newest_first[:2] and first_page.has_more
    assert (first_page.first_id, first_page.last_id) == (newest_first[0], newest_first[1])
    assert [b.id for b in after.data] == newest_first[2:4] and after.has_more
    assert [b.id for b in before.data] == newest_first[2:4] and before.has_more
    assert [b.id for b in last.data] == newest_first[4:] and not last.has_more
    assert {b.processing_status for b in first_page.data} == {"ended"}  # a listed batch is read as it is now


async def test_a_list_limit_out_of_range_is_refused(client):
    for limit in (0, 1001):
        with pytest.raises(anthropic.BadRequestError, match="limit"):
            await client.messages.batches.list(limit=limit)


async def test_a_batch_is_deleted_only_once_it_has_ended(client, settings, batch_dir):
    settings.OFFLINE_MODEL_BATCH_SECONDS = 60
    batch = await client.messages.batches.create(requests=[request("a")])

    with pytest.raises(anthropic.BadRequestError, match="cancel it first"):
        await client.messages.batches.delete(batch.id)
    await client.messages.batches.cancel(batch.id)
    deleted = await client.messages.batches.delete(batch.id)

    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    assert batch_files(batch_dir) == []
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.delete(batch.id)
    assert (await client.messages.batches.list()).data == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v1/messages/batches/{UNKNOWN_ID}"),
        ("GET", f"/v1/messages/batches/{UNKNOWN_ID}/results"),
        ("POST", f"/v1/messages/batches/{UNKNOWN_ID}/cancel"),
        ("DELETE", f"/v1/messages/batches/{UNKNOWN_ID}"),
        ("GET", "/v1/messages/batches/..%2F..%2Fsettings"),
        ("GET", "/v1/messages/batches/not-a-batch"),
        ("PUT", f"/v1/messages/batches/{UNKNOWN_ID}"),
    ],
)
async def test_an_unknown_batch_is_not_found_in_the_api_error_shape(method, path):
    response = await raw(method, path)

    payload = response.json()
    assert response.status_code == 404 and payload["type"] == "error"
    assert (
        payload["error"]["type"] == "not_found_error"
        and payload["request_id"] == response.headers["request-id"]
    )


async def test_an_unknown_batch_is_a_not_found_error_through_the_sdk(client):
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve(UNKNOWN_ID)


# Validation at creation


@pytest.mark.parametrize(
    ("requests", "complaint"),
    [
        ([], "1 to 100000 requests, not 0"),
        ([{"custom_id": "", "params": params()}], "custom_id"),
        ([{"custom_id": "x" * 65, "params": params()}], "custom_id"),
        ([{"custom_id": "has space", "params": params()}], "custom_id"),
        ([{"custom_id": "café", "params": params()}], "custom_id"),
        ([{"custom_id": 7, "params": params()}], "custom_id"),
        ([request("same"), request("other"), request("same")], "requests.2.custom_id: 'same' is used twice"),
        ([{"custom_id": "a"}], "requests.0.params"),
        ([{"custom_id": "a", "params": "hi"}], "requests.0.params"),
        ([{"custom_id": "a", "params": params(stream=True)}], "requests.0.params.stream"),
        ([{"custom_id": "a", "params": params(), "method": "POST"}], "requests.0.method"),
        (["not an object"], "requests.0"),
    ],
)
async def test_a_malformed_batch_is_refused_and_nothing_is_stored(client, batch_dir, requests, complaint):
    with pytest.raises(anthropic.BadRequestError) as refused:
        await client.messages.batches.create(requests=requests)

    assert refused.value.type == "invalid_request_error" and complaint in refused.value.message
    assert batch_files(batch_dir) == []


async def test_more_than_100_000_requests_are_refused():
    requests = [{"custom_id": f"r{n}", "params": {}} for n in range(100_001)]

    response = await raw(
        "POST", "/v1/messages/batches", {"requests": requests}
    )  # the SDK's own checks take long

    assert response.status_code == 400 and "not 100001" in response.json()["error"]["message"]


async def test_a_body_that_is_not_a_batch_is_refused():
    for body in ({"requests": "all of them"}, ["requests"], {}):
        response = await raw("POST", "/v1/messages/batches", body)

        assert response.status_code == 400 and "requests" in response.json()["error"]["message"]


async def test_a_body_over_the_size_limit_is_refused_as_too_large(client, monkeypatch, batch_dir):
    monkeypatch.setattr(
        offline_batches, "MAX_BODY_BYTES", 1000
    )  # the real limit, 256 MB, is too big for a test

    small = await client.messages.batches.create(requests=[request("a")])
    with pytest.raises(anthropic.ContentTooLargeError) as refused:
        await client.messages.batches.create(requests=[request(f"r{n}") for n in range(20)])

    assert small.request_counts.processing == 1
    assert refused.value.status_code == 413 and refused.value.type == "request_too_large"
    assert len(batch_files(batch_dir)) == 2  # the small batch's state and requests only


# Shared by processes


async def test_a_batch_outlives_the_model_that_took_it(client, batch_dir):
    batch = await client.messages.batches.create(requests=[request("a")])
    restarted = sdk_client(transport=httpx2.MockTransport(OfflineModel().handle))  # as a new process would

    ended = await restarted.messages.batches.retrieve(batch.id)
    results = await all_results(restarted, batch.id)
    seen_here = await client.messages.batches.retrieve(batch.id)
    await restarted.close()

    assert ended.processing_status == "ended" and results["a"].result.type == "succeeded"
    assert seen_here.model_dump() == ended.model_dump()
    assert batch_files(batch_dir) == [
        f"{batch.id}.{name}" for name in ("json", "requests.jsonl", "results.jsonl")
    ]


async def test_batches_are_served_over_http_and_shared_with_other_processes(client, batch_dir):
    env = {**os.environ, "OFFLINE_MODEL_BATCH_DIR": str(batch_dir), "OFFLINE_MODEL_BATCH_SECONDS": "0"}
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        str(django_settings.BASE_DIR / "manage.py"),
        "serve_offline_model",
        "--port",
        "0",
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        banner = (await asyncio.wait_for(server.stdout.readline(), timeout=60)).decode()
        url = re.search(r"http://127\.0\.0\.1:\d+", banner).group()
        over_http = sdk_client(base_url=url)
        batch = await over_http.messages.batches.create(requests=[request("a"), request("b")])
        ended_here = await client.messages.batches.retrieve(batch.id)  # this process processes it
        ended_there = await over_http.messages.batches.retrieve(batch.id)
        results = await all_results(over_http, batch.id)  # the server streams what this process wrote
        await over_http.close()
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)

    assert ended_here.processing_status == "ended" and ended_here.request_counts.succeeded == 2
    assert ended_there.model_dump(exclude={"results_url"}) == ended_here.model_dump(exclude={"results_url"})
    assert ended_there.results_url == f"{url}/v1/messages/batches/{batch.id}/results"
    assert {name: line.result.type for name, line in results.items()} == {"a": "succeeded", "b": "succeeded"}
