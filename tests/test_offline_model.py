"""The offline model, through the real SDK client: the event grammar, usage and caching, tools, faults."""

import asyncio
import base64
import hashlib
import io
import json
import re
import signal
import sys

import anthropic
import httpx2
import pytest
from anthropic import AsyncAnthropic
from django.conf import settings as django_settings
from PIL import Image

from chat.llm.catalog import MODELS
from chat.llm.offline import estimate_tokens, offline_model, offline_transport

MODEL = "claude-sonnet-5-5"
OFFLINE_URL = "http://offline-model.invalid"
RAW_EVENT_TYPES = {
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
}
SCHEMA = {"type": "object"}
CALCULATOR = {"name": "calculator", "description": "Evaluates arithmetic.", "input_schema": SCHEMA}
CURRENT_TIME = {"name": "current_time", "description": "Says the time.", "input_schema": SCHEMA}
SEARCH = {"name": "search_conversations", "description": "Searches.", "input_schema": SCHEMA}
CACHED = {"type": "ephemeral"}
LONG_SYSTEM = "You are a careful assistant who answers questions about databases. " * 80  # ~1,400 tokens


def make_client(*, max_retries: int = 0, base_url: str = OFFLINE_URL, **http_options) -> AsyncAnthropic:
    transport = {} if base_url != OFFLINE_URL else {"transport": offline_transport()}
    return AsyncAnthropic(
        api_key="offline",
        base_url=base_url,
        http_client=httpx2.AsyncClient(**transport, **http_options),
        max_retries=max_retries,
    )


@pytest.fixture
async def client():
    sdk = make_client()
    yield sdk
    await sdk.close()


@pytest.fixture
def clock():
    class FakeClock:
        now = 1_000.0

        def __call__(self):
            return self.now

    fake = FakeClock()
    offline_model.clock = fake
    return fake


def ask(text, **request):
    return {"model": MODEL, "max_tokens": 4000, "messages": [{"role": "user", "content": text}], **request}


def cached(system=LONG_SYSTEM, question="What is a B-tree?", *, ttl=None, model=MODEL):
    control = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return ask(question, model=model, system=[{"type": "text", "text": system, "cache_control": control}])


async def stream_reply(client, **request):
    """The raw events (the SDK's derived ones left out) and the final message of one streamed reply."""
    async with client.messages.stream(**request) as stream:
        events = [event async for event in stream if event.type in RAW_EVENT_TYPES]
        return events, await stream.get_final_message()


async def raw_post(path, body):
    headers = {"x-api-key": "offline"}  # without a key the API answers 401
    async with httpx2.AsyncClient(transport=offline_transport(), base_url=OFFLINE_URL, headers=headers) as http:
        return await http.post(path, content=json.dumps(body).encode())


def png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def pdf(*page_texts):
    """A minimal PDF with one line of Helvetica text per page."""
    count = len(page_texts)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(page_texts):
        content = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return base64.b64encode(bytes(out)).decode()


# The reply


async def test_a_streamed_reply_follows_the_event_grammar(client):
    events, message = await stream_reply(client, **ask("What is a B-tree?"))

    types = [event.type for event in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert set(types[2:-3]) == {"content_block_delta"}
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = events[0].message
    assert start.id.startswith("msg_offline_") and start.model == MODEL and start.usage.output_tokens == 1
    assert start.usage.cache_creation.ephemeral_5m_input_tokens == 0
    deltas = [event.delta.text for event in events if event.type == "content_block_delta"]
    assert message.content[0].text == "".join(deltas)
    assert message.stop_reason == "end_turn" == events[-2].delta.stop_reason
    assert message.usage.output_tokens == len(deltas) == events[-2].usage.output_tokens
    assert message.usage.input_tokens == estimate_tokens("What is a B-tree?")


async def test_the_wire_format_is_server_sent_events_with_one_ping_and_a_request_id():
    response = await raw_post("/v1/messages", ask("Hi", stream=True))

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert re.fullmatch(r"req_offline_\d+", response.headers["request-id"])
    frames = response.text.split("\n\n")
    assert frames[-1] == ""
    names = [frame.split("\n")[0] for frame in frames[:-1]]
    assert names[:2] == ["event: message_start", "event: ping"] and names.count("event: ping") == 1
    for frame in frames[:-1]:
        name, data = frame.split("\n")
        assert json.loads(data.removeprefix("data: "))["type"] == name.removeprefix("event: ")


async def test_a_non_streamed_reply_is_the_same_message(client):
    _, streamed = await stream_reply(client, **ask("Same either way?"))

    created = await client.messages.create(**ask("Same either way?"))

    assert created.content[0].text == streamed.content[0].text
    assert created.usage == streamed.usage and created.stop_reason == "end_turn"
    assert created.id.startswith("msg_offline_") and created.id != streamed.id


async def test_the_reply_quotes_the_question_verbatim_and_renders_a_list_and_code(client):
    question = 'Is <script>alert("x")</script> **escaped**?'

    message = await client.messages.create(**ask(question))

    text = message.content[0].text
    assert f"> {question}\n" in text
    assert f"`{MODEL}`" in text and "Offline model" in text
    assert "\n- " in text and "```python\n" in text


async def test_the_reply_counts_turns_and_names_the_system_prompt(client):
    messages = [
        {"role": "user", "content": "First"},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Second\nwith two lines"},
    ]

    with_system = await client.messages.create(
        model=MODEL, max_tokens=4000, system="You answer in French, always and only.", messages=messages
    )
    without_system = await client.messages.create(model=MODEL, max_tokens=4000, messages=messages[:1])

    text = with_system.content[0].text
    assert "This is turn 2 of our conversation" in text and "> Second\n> with two lines\n" in text
    assert 'The system prompt begins: "You answer in French, always and only."' in text
    assert "This is turn 1 of our conversation. There is no system prompt." in without_system.content[0].text


async def test_the_same_request_gets_the_same_reply(client):
    request = ask("Deterministic?", tools=[CALCULATOR], thinking={"type": "adaptive"})

    first = await client.messages.create(**request)
    second = await client.messages.create(**request)

    assert first.model_dump(exclude={"id"}) == second.model_dump(exclude={"id"})


async def test_events_arrive_while_the_reply_is_still_being_generated(client, settings):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 2000

    async with client.messages.stream(**ask("Stream it")) as stream:
        first = await anext(aiter(stream))
        received_with_the_first_event = stream.response.num_bytes_downloaded
        await stream.until_done()

    assert first.type == "message_start"
    assert received_with_the_first_event < stream.response.num_bytes_downloaded


async def test_images_and_pdfs_are_described_and_priced(client):
    report = pdf("Quarterly report", "Page two")
    document = {"type": "base64", "media_type": "application/pdf", "data": report}
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png(64, 48)}},
        {"type": "document", "source": document},
        {"type": "text", "text": "What are these?"},
    ]

    message = await client.messages.create(
        model=MODEL, max_tokens=4000, messages=[{"role": "user", "content": content}]
    )

    text = message.content[0].text
    assert "- Image 1: PNG, 64 x 48, RGB." in text
    assert '- Document 1: PDF, 2 pages, first line "Quarterly report".' in text
    pdf_tokens = estimate_tokens("Quarterly report") + estimate_tokens("Page two") + 2 * 1_500
    assert message.usage.input_tokens == 5 + pdf_tokens + estimate_tokens("What are these?")  # 64*48/750 -> 5


async def test_tools_offered_are_listed_by_name(client):
    message = await client.messages.create(**ask("Hello", tools=[CALCULATOR, CURRENT_TIME]))

    assert "- Tools offered: `calculator`, `current_time`." in message.content[0].text


async def test_max_tokens_cuts_the_reply(client):
    events, message = await stream_reply(client, **ask("Long answer please", max_tokens=10))

    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 10
    assert len(message.content[0].text) == 40
    assert events[-2].delta.stop_reason == "max_tokens"


async def test_thinking_comes_first_and_is_signed(client):
    events, message = await stream_reply(client, **ask("Think first", thinking={"type": "adaptive"}))

    thinking, text = message.content
    assert thinking.type == "thinking" and "Think first" in thinking.thinking
    digest = hashlib.sha256(thinking.thinking.encode()).digest()
    assert thinking.signature == base64.b64encode(digest).decode()
    delta_types = [event.delta.type for event in events if event.type == "content_block_delta"]
    assert delta_types.index("signature_delta") == delta_types.index("text_delta") - 1
    assert message.usage.output_tokens == estimate_tokens(thinking.thinking) + estimate_tokens(text.text)


async def test_the_input_tokens_are_counted_like_the_input_accounting(client):
    request = ask("Count me", system="Be brief.", tools=[CALCULATOR])
    del request["max_tokens"]

    counted = await client.messages.count_tokens(**request)
    message = await client.messages.create(**request, max_tokens=100)

    assert counted.input_tokens == message.usage.input_tokens > 0


async def test_the_models_api_serves_the_catalogue(client):
    listed = [model async for model in client.models.list(limit=4)]  # two pages, followed by the SDK
    one = await client.models.retrieve("claude-haiku-4-5")

    assert [model.id for model in listed] == [spec.id for spec in MODELS]
    assert (one.display_name, one.max_tokens, one.lifecycle) == ("Claude Haiku 4.5", 64_000, "active")
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("claude-unknown")


# Tools


@pytest.mark.parametrize(
    ("question", "tool", "expected_input"),
    [
        ("what is 17*23", CALCULATOR, {"expression": "17*23"}),
        ("What time is it?", CURRENT_TIME, {}),
        ("Please search my conversations for B-trees.", SEARCH, {"query": "B-trees"}),
    ],
)
async def test_a_plainly_requested_tool_is_called(client, question, tool, expected_input):
    events, message = await stream_reply(client, **ask(question, tools=[tool]))

    text, call = message.content
    assert text.type == "text" and call.type == "tool_use"
    assert (call.name, call.input) == (tool["name"], expected_input) and call.id.startswith("toolu_offline_")
    assert message.stop_reason == "tool_use"
    delta_types = {event.delta.type for event in events if event.type == "content_block_delta"}
    assert delta_types == {"text_delta", "input_json_delta"}


async def test_two_expressions_make_two_parallel_calls(client):
    message = await client.messages.create(**ask("what is 17*23 and 4+5", tools=[CALCULATOR]))

    calls = [block for block in message.content if block.type == "tool_use"]
    assert [call.input for call in calls] == [{"expression": "17*23"}, {"expression": "4+5"}]
    assert calls[0].id != calls[1].id


async def test_no_tool_is_called_unless_offered_and_allowed(client):
    not_offered = await client.messages.create(**ask("what is 17*23", tools=[CURRENT_TIME]))
    refused = await client.messages.create(
        **ask("what is 17*23", tools=[CALCULATOR], tool_choice={"type": "none"})
    )

    assert not_offered.stop_reason == refused.stop_reason == "end_turn"


async def test_a_tool_result_is_answered_in_text_without_calling_again(client):
    first = await client.messages.create(**ask("what is 17*23", tools=[CALCULATOR]))
    text, call = first.content
    history = [
        {"role": "user", "content": "what is 17*23"},
        {"role": "assistant", "content": [
            {"type": "text", "text": text.text},
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input},
        ]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "391"}]},
    ]

    answer = await client.messages.create(model=MODEL, max_tokens=4000, tools=[CALCULATOR], messages=history)

    assert answer.stop_reason == "end_turn" and [block.type for block in answer.content] == ["text"]
    assert "The calculator returned 391." in answer.content[0].text
    assert "> what is 17*23\n" in answer.content[0].text


# Bad requests


ORPHAN_TOOL_RESULT = {"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}
NOT_AN_IMAGE = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": "bm90IGFuIGltYWdl"},  # "not an image"
}


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"model": None}, "model"),
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 1_000_000}, "max_tokens"),
        ({"messages": None}, "messages"),
        ({"messages": [{"role": "assistant", "content": "Hi"}]}, "first message"),
        ({"messages": [{"role": "user", "content": ""}]}, "content"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "  "}]}]}, "non-whitespace"),
        ({"temperature": 0.5}, "temperature"),
        ({"messages": [{"role": "user", "content": [ORPHAN_TOOL_RESULT]}]}, "tool_use_id"),
        ({"messages": [{"role": "user", "content": [NOT_AN_IMAGE]}]}, "Could not process image"),
    ],
)
async def test_a_malformed_request_is_refused_in_the_api_error_shape(change, complaint):
    body = {key: value for key, value in {**ask("Hi"), **change}.items() if value is not None}

    response = await raw_post("/v1/messages", body)

    assert response.status_code == 400
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    assert complaint in payload["error"]["message"]
    assert payload["request_id"] == response.headers["request-id"]


async def test_temperature_is_a_bad_request_through_the_sdk(client):
    with pytest.raises(anthropic.BadRequestError) as refused:
        await client.messages.create(**ask("Hi"), extra_body={"temperature": 0.2})

    assert refused.value.type == "invalid_request_error"
    assert refused.value.request_id.startswith("req_offline_")


async def test_an_unknown_path_is_not_found():
    response = await raw_post("/v1/complete", {"prompt": "Hi"})

    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"


# Prompt caching


async def test_the_first_request_writes_the_cache_and_the_same_prefix_reads_it(client):
    prefix = estimate_tokens(LONG_SYSTEM)
    question = estimate_tokens("What is a B-tree?")

    first = await client.messages.create(**cached())
    second = await client.messages.create(**cached())

    assert (first.usage.cache_creation_input_tokens, first.usage.cache_read_input_tokens) == (prefix, 0)
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == prefix
    assert (second.usage.cache_creation_input_tokens, second.usage.cache_read_input_tokens) == (0, prefix)
    assert first.usage.input_tokens == second.usage.input_tokens == question


async def test_one_changed_byte_in_the_prefix_misses(client):
    await client.messages.create(**cached())

    changed = await client.messages.create(**cached(system=LONG_SYSTEM[:-1] + "!"))

    assert changed.usage.cache_read_input_tokens == 0 and changed.usage.cache_creation_input_tokens > 0


async def test_the_cache_is_per_model(client):
    await client.messages.create(**cached())

    other = await client.messages.create(**cached(model="claude-opus-5-5"))

    assert other.usage.cache_read_input_tokens == 0


async def test_an_entry_expires_after_its_ttl_and_a_read_refreshes_it(client, clock):
    await client.messages.create(**cached())
    clock.now += 200
    refreshed = await client.messages.create(**cached())
    clock.now += 299
    still_there = await client.messages.create(**cached())
    clock.now += 301
    expired = await client.messages.create(**cached())

    assert refreshed.usage.cache_read_input_tokens > 0 and still_there.usage.cache_read_input_tokens > 0
    assert expired.usage.cache_read_input_tokens == 0 and expired.usage.cache_creation_input_tokens > 0


async def test_a_one_hour_breakpoint_is_billed_and_kept_apart(client, clock):
    tool = {**CALCULATOR, "description": "Adds. " * 800, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    request = {**cached(), "tools": [tool]}
    counted = await client.messages.count_tokens(**{k: v for k, v in request.items() if k != "max_tokens"})

    first = await client.messages.create(**request)
    clock.now += 600
    later = await client.messages.create(**request)

    split = first.usage.cache_creation
    assert split.ephemeral_5m_input_tokens == estimate_tokens(LONG_SYSTEM)
    assert split.ephemeral_1h_input_tokens > 1024
    billed = split.ephemeral_1h_input_tokens + split.ephemeral_5m_input_tokens + first.usage.input_tokens
    assert billed == counted.input_tokens
    assert later.usage.cache_read_input_tokens == split.ephemeral_1h_input_tokens
    assert later.usage.cache_creation.ephemeral_5m_input_tokens == split.ephemeral_5m_input_tokens


async def test_a_prefix_below_the_minimum_is_not_cached(client):
    short = await client.messages.create(**cached(system="Too short to cache."))
    again = await client.messages.create(**cached(system="Too short to cache."))
    haiku = await client.messages.create(**cached(model="claude-haiku-4-5"))  # Haiku's minimum is 2,048

    for message in (short, again, haiku):
        assert message.usage.cache_creation_input_tokens == message.usage.cache_read_input_tokens == 0
    question = estimate_tokens("What is a B-tree?")
    assert again.usage.input_tokens == estimate_tokens("Too short to cache.") + question


async def test_the_next_turn_reads_what_the_last_turn_wrote_when_the_breakpoint_moves(client):
    turn_one = [{"role": "user", "content": [{"type": "text", "text": LONG_SYSTEM, "cache_control": CACHED}]}]
    turn_two = [
        {"role": "user", "content": [{"type": "text", "text": LONG_SYSTEM}]},
        {"role": "assistant", "content": "Understood."},
        {"role": "user", "content": [{"type": "text", "text": "And now?", "cache_control": CACHED}]},
    ]

    await client.messages.create(model=MODEL, max_tokens=4000, messages=turn_one)
    second = await client.messages.create(model=MODEL, max_tokens=4000, messages=turn_two)

    assert second.usage.cache_read_input_tokens == estimate_tokens(LONG_SYSTEM)
    written = estimate_tokens("Understood.") + estimate_tokens("And now?")
    assert second.usage.cache_creation_input_tokens == written
    assert second.usage.input_tokens == 0


async def test_more_than_four_breakpoints_are_refused(client):
    system = [{"type": "text", "text": f"Rule {i}.", "cache_control": CACHED} for i in range(5)]

    with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks with cache_control"):
        await client.messages.create(**ask("Hi", system=system))


# Faults


async def test_a_rate_limit_surfaces_as_rate_limit_error_with_retry_after(client):
    offline_model.inject_fault("rate_limit", retry_after=7)

    with pytest.raises(anthropic.RateLimitError) as limited:
        await client.messages.create(**ask("Hi"))

    error = limited.value
    assert (error.status_code, error.type) == (429, "rate_limit_error")
    assert error.response.headers["retry-after"] == "7"
    assert error.request_id.startswith("req_offline_")


async def test_a_rate_limit_outlasting_the_retries_surfaces_and_is_used_up():
    offline_model.inject_fault("rate_limit", times=3, retry_after=0.01)
    sdk = make_client(max_retries=2)

    with pytest.raises(anthropic.RateLimitError):
        await sdk.messages.create(**ask("Hi"))
    after = await sdk.messages.create(**ask("Hi"))

    assert after.stop_reason == "end_turn"


async def test_the_sdk_retries_past_one_rate_limit():
    statuses = []

    async def record(response):
        statuses.append(response.status_code)

    offline_model.inject_fault("rate_limit", retry_after=0.01)
    sdk = make_client(max_retries=2, event_hooks={"response": [record]})

    async with sdk.messages.stream(**ask("Hi")) as stream:
        message = await stream.get_final_message()

    assert statuses == [429, 200] and message.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("kind", "error_class", "status"),
    [("overloaded", anthropic.OverloadedError, 529), ("server_error", anthropic.InternalServerError, 500)],
)
async def test_server_faults_surface_as_their_sdk_errors(client, kind, error_class, status):
    offline_model.inject_fault(kind)

    with pytest.raises(error_class) as failed:
        async with client.messages.stream(**ask("Hi")) as stream:
            await stream.get_final_message()

    assert isinstance(failed.value, anthropic.InternalServerError) and failed.value.status_code == status


async def test_an_error_event_mid_stream_raises_a_status_error_after_the_text(client):
    offline_model.inject_fault("error_event", after_tokens=3)
    texts = []

    with pytest.raises(anthropic.APIStatusError) as failed:
        async with client.messages.stream(**ask("Hi")) as stream:
            async for text in stream.text_stream:
                texts.append(text)

    assert len(texts) == 3
    assert type(failed.value) is anthropic.APIStatusError
    assert (failed.value.status_code, failed.value.type) == (200, "overloaded_error")


async def test_a_dropped_connection_mid_stream_raises_the_httpx_protocol_error(client):
    offline_model.inject_fault("disconnect", after_tokens=4)
    texts = []

    with pytest.raises(httpx2.RemoteProtocolError, match="peer closed connection"):
        async with client.messages.stream(**ask("Hi")) as stream:
            async for text in stream.text_stream:
                texts.append(text)

    assert len(texts) == 4 and offline_model.open_streams == 0


async def test_a_stalled_stream_sends_nothing_until_the_consumer_closes_it(client):
    offline_model.inject_fault("stall", after_tokens=3)

    async with client.messages.stream(**ask("Hi")) as stream:
        events = aiter(stream)
        texts = 0
        while texts < 3:  # the SDK's "text" event follows the content_block_delta it came from
            texts += (await anext(events)).type == "text"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(events), timeout=0.05)
        await stream.close()

    assert offline_model.open_streams == 0


async def test_a_stream_abandoned_midway_is_closed(client, settings):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 1000

    async with client.messages.stream(**ask("Hi")) as stream:
        await anext(aiter(stream))
        assert offline_model.open_streams == 1

    assert offline_model.open_streams == 0


async def test_without_a_stream_an_error_event_fault_is_an_overload(client):
    offline_model.inject_fault("error_event")

    with pytest.raises(anthropic.OverloadedError):
        await client.messages.create(**ask("Hi"))


async def test_faults_are_used_one_request_each_then_replies_resume(client):
    offline_model.inject_fault("server_error")

    with pytest.raises(anthropic.InternalServerError):
        await client.messages.create(**ask("Hi"))
    recovered = await client.messages.create(**ask("Hi"))

    assert recovered.stop_reason == "end_turn"


def test_an_unknown_fault_kind_is_refused():
    with pytest.raises(ValueError, match="unknown fault"):
        offline_model.inject_fault("meteor")


# Over real HTTP


async def test_the_management_command_serves_the_model_over_loopback_http():
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(django_settings.BASE_DIR / "manage.py"), "serve_offline_model", "--port", "0",
        cwd=django_settings.BASE_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        banner = (await asyncio.wait_for(server.stdout.readline(), timeout=60)).decode()
        url = re.search(r"http://127\.0\.0\.1:\d+", banner).group()
        sdk = make_client(base_url=url)
        async with httpx2.AsyncClient(base_url=url) as http:
            async with sdk.messages.stream(**ask("Over the wire?")) as stream:
                message = await stream.get_final_message()
            await http.post("/_offline/faults", json={"kind": "disconnect", "after_tokens": 2})
            with pytest.raises(httpx2.RemoteProtocolError):
                async with sdk.messages.stream(**ask("Then cut")) as stream:
                    await stream.get_final_message()
            reset = await http.post("/_offline/reset")
        await sdk.close()
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)

    assert server.returncode == -signal.SIGTERM  # uvicorn exits by re-raising the signal it stopped on

    assert "> Over the wire?\n" in message.content[0].text and stream.request_id.startswith("req_offline_")
    assert reset.status_code == 200
