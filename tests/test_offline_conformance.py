"""The offline model as clients that nobody here wrote see it: the official SDK's high-level helpers (stream
helpers and events, the tool runner, parse, count_tokens) and the API's validation rules, through the real SDK.

The TypeScript SDK's tool runner runs too, with Node.js: the SDK is installed from npm into tests/ts_sdk/ on first
use (package-lock.json pins it), as tests/test_sso.py installs its OpenID provider."""

import asyncio
import base64
import io
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Literal

import anthropic
import httpx2
import pytest
from anthropic import AsyncAnthropic, beta_async_tool
from cluster import npm_installed
from django.conf import settings as django_settings
from PIL import Image
from pydantic import BaseModel

from chat.llm.offline import estimate_tokens, offline_model, offline_transport
from chat.llm.offline.prompt import IMAGE_LONG_EDGE

MODEL = "claude-sonnet-5-5"
TS_SDK_DIR = Path(__file__).resolve().parent / "ts_sdk"
PREFILL_MODEL = "claude-haiku-4-5"  # the catalogue's one model that still takes a prefill
OFFLINE_URL = "http://offline-model.invalid"
THREADS_BETA = "message-threads-2026-08-12"
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "where": {
                "type": "object",
                "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                "required": ["lat", "lon"],
            },
            "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "string"},
        },
        "required": ["city", "unit", "days", "where", "tags"],
    },
}
CALCULATOR = {"name": "calculator", "description": "Arithmetic.", "input_schema": {"type": "object"}}


def make_client(**options) -> AsyncAnthropic:
    http = httpx2.AsyncClient(transport=offline_transport())
    return AsyncAnthropic(api_key="offline", base_url=OFFLINE_URL, http_client=http, max_retries=0, **options)


@pytest.fixture
async def client():
    sdk = make_client()
    yield sdk
    await sdk.close()


def ask(text="What is a B-tree?", **overrides):
    return {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": text}], **overrides}


async def raw_post(path, body, headers=None):
    headers = {"x-api-key": "offline", **(headers or {})}
    async with httpx2.AsyncClient(transport=offline_transport(), base_url=OFFLINE_URL, headers=headers) as http:
        return await http.post(path, content=json.dumps(body).encode())


def png(width, height):
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, "PNG")
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                        "data": base64.b64encode(buffer.getvalue()).decode()}}


# The stream helpers


async def test_the_stream_helpers_yield_text_events_and_the_final_message(client):
    async with client.messages.stream(**ask("Stream to me")) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
        final_text = await stream.get_final_text()

    assert "".join(pieces) == final_text == final.content[0].text
    assert "> Stream to me" in final_text and final.stop_reason == "end_turn"


async def test_the_stream_helpers_accumulate_a_tool_call_from_its_json_deltas(client):
    request = ask("What is the weather in Lisbon?", tools=[WEATHER])
    async with client.messages.stream(**request) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()

    call = next(block for block in final.content if block.type == "tool_use")
    assert {"input_json", "content_block_stop", "message_stop"} <= set(kinds)
    assert call.name == "get_weather" and call.input["unit"] == "celsius"
    assert final.stop_reason == "tool_use"


async def test_count_tokens_agrees_with_what_create_bills(client):
    request = ask("Count me", tools=[WEATHER], system="Be brief.")
    counted = await client.messages.count_tokens(**{k: v for k, v in request.items() if k != "max_tokens"})
    message = await client.messages.create(**request)

    assert counted.input_tokens == message.usage.input_tokens


# The tool runner


async def test_the_sdk_tool_runner_completes_a_loop_over_a_message_thread(client):
    cities = []

    @beta_async_tool
    async def get_weather(city: str) -> str:
        """The weather in a city."""
        cities.append(city)
        return f"Sunny in {city}"

    runner = client.beta.messages.tool_runner(
        model=MODEL, max_tokens=1024, tools=[get_weather],
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    replies = [message async for message in runner]

    assert [reply.stop_reason for reply in replies] == ["tool_use", "end_turn"]
    assert cities == ["offline city"]
    assert "The get_weather returned Sunny in offline city." in replies[-1].content[0].text
    first, second = list(offline_model.received)
    assert first["thread"] == {"type": "create"}
    assert second["thread"] == {"type": "continue", "previous_message_id": replies[0].id}
    assert "tools" not in second and len(second["messages"]) == 1  # the server holds the rest


async def test_a_thread_the_server_no_longer_holds_is_replayed_whole_by_the_runner(client):
    @beta_async_tool
    async def get_weather(city: str) -> str:
        """The weather in a city."""
        offline_model.threads.clear()  # the server loses the thread between the turns
        return "Rain"

    runner = client.beta.messages.tool_runner(
        model=MODEL, max_tokens=1024, tools=[get_weather],
        messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
    )
    replies = [message async for message in runner]

    assert replies[-1].stop_reason == "end_turn"
    continued, replayed = list(offline_model.received)[1:]
    assert continued["thread"]["type"] == "continue"
    assert replayed["thread"] == {"type": "create"} and len(replayed["messages"]) == 3


async def test_the_thread_field_is_refused_without_its_beta_header_and_a_lost_thread_is_not_found():
    plain = await raw_post("/v1/messages", ask(thread={"type": "create"}))
    lost = await raw_post(
        "/v1/messages", ask(thread={"type": "continue", "previous_message_id": "msg_gone"}),
        {"anthropic-beta": THREADS_BETA},
    )

    assert plain.status_code == 400 and plain.json()["error"]["message"] == "thread: Extra inputs are not permitted"
    assert lost.status_code == 404 and lost.json()["error"]["details"] == {"error_code": "thread_not_found"}


# tool_choice


async def test_tool_choice_tool_forces_that_tool_with_input_made_from_its_schema(client):
    message = await client.messages.create(
        **ask("Hello", tools=[CALCULATOR, WEATHER], tool_choice={"type": "tool", "name": "get_weather"})
    )

    assert [block.type for block in message.content] == ["tool_use"]  # no text before a forced call
    call = message.content[0]
    assert call.name == "get_weather" and message.stop_reason == "tool_use"
    assert call.input["unit"] in ("celsius", "fahrenheit") and 1 <= call.input["days"] <= 7
    assert set(call.input["where"]) == {"lat", "lon"} and isinstance(call.input["tags"], list)
    assert "note" not in call.input  # optional properties are left out of a tool's input


async def test_tool_choice_any_calls_some_tool_and_none_calls_nothing(client):
    forced = await client.messages.create(**ask("Hello", tools=[WEATHER], tool_choice={"type": "any"}))
    refrained = await client.messages.create(**ask("What is 2 + 2?", tools=[CALCULATOR], tool_choice={"type": "none"}))

    assert [block.type for block in forced.content] == ["tool_use"]
    assert [block.type for block in refrained.content] == ["text"] and refrained.stop_reason == "end_turn"


async def test_disable_parallel_tool_use_keeps_one_call(client):
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    both = await client.messages.create(**ask("What is 2 + 2 and 3 * 4?", tools=[CALCULATOR]))
    one = await client.messages.create(**ask("What is 2 + 2 and 3 * 4?", tools=[CALCULATOR], tool_choice=choice))

    assert [block.type for block in both.content].count("tool_use") == 2
    assert [block.type for block in one.content].count("tool_use") == 1


@pytest.mark.parametrize(
    ("choice", "complaint"),
    [
        ({"type": "tool", "name": "nowhere"}, "Tool 'nowhere' not found"),
        ({"type": "sometimes"}, "tool_choice.type"),
    ],
)
async def test_a_tool_choice_the_api_refuses_is_a_bad_request(client, choice, complaint):
    with pytest.raises(anthropic.BadRequestError, match=complaint):
        await client.messages.create(**ask(tools=[WEATHER], tool_choice=choice))


async def test_forcing_a_tool_while_thinking_is_refused(client):
    with pytest.raises(anthropic.BadRequestError, match="Thinking may not be enabled"):
        await client.messages.create(
            **ask(tools=[WEATHER], tool_choice={"type": "any"}, thinking={"type": "adaptive"})
        )


# stop_sequences


async def test_a_stop_sequence_cuts_the_text_before_it_and_is_named(client):
    message = await client.messages.create(**ask("Where am I?", stop_sequences=["What I received"]))
    async with client.messages.stream(**ask("Where am I?", stop_sequences=["What I received"])) as stream:
        streamed = await stream.get_final_message()

    for reply in (message, streamed):
        assert reply.stop_reason == "stop_sequence" and reply.stop_sequence == "What I received"
        assert "> Where am I?" in reply.content[0].text and "What I received" not in reply.content[0].text


async def test_a_stop_sequence_that_never_appears_changes_nothing(client):
    message = await client.messages.create(**ask(stop_sequences=["never said"]))

    assert message.stop_reason == "end_turn" and message.stop_sequence is None


# Structured outputs


class Address(BaseModel):
    street: str
    city: str


class Contact(BaseModel):
    name: str
    age: int
    kind: Literal["person", "company"]
    addresses: list[Address]
    email: str | None = None


async def test_parse_returns_the_pydantic_model_that_the_schema_asked_for(client):
    message = await client.messages.parse(**ask("Extract the contact"), output_format=Contact)

    contact = message.parsed_output
    assert isinstance(contact, Contact) and contact.kind == "person"
    assert contact.addresses and isinstance(contact.addresses[0], Address)
    assert json.loads(message.content[0].text)["name"] == contact.name


async def test_structured_output_with_citations_is_refused(client):
    document = {
        "type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A fact."},
        "citations": {"enabled": True},
    }
    request = ask(output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}})
    request["messages"] = [{"role": "user", "content": [document, {"type": "text", "text": "Cite it"}]}]

    with pytest.raises(anthropic.BadRequestError, match="Citations are not supported"):
        await client.messages.create(**request)


# Validation like the API


async def test_an_unknown_model_is_not_found_unless_any_model_is_accepted(client, settings):
    with pytest.raises(anthropic.NotFoundError, match="claude-imaginary-1"):
        await client.messages.create(**ask(model="claude-imaginary-1"))

    settings.OFFLINE_MODEL_ACCEPT_ANY_MODEL = True
    served = await client.messages.create(**ask(model="claude-imaginary-1"))
    assert served.model == "claude-imaginary-1"


async def test_a_request_without_credentials_is_unauthorized():
    async with httpx2.AsyncClient(transport=offline_transport(), base_url=OFFLINE_URL) as http:
        response = await http.post("/v1/messages", content=json.dumps(ask()).encode())

    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


async def test_unknown_fields_are_refused_and_every_documented_field_is_accepted(client):
    with pytest.raises(anthropic.BadRequestError, match="top_k: Extra inputs are not permitted"):
        await client.messages.create(**ask(), extra_body={"top_k": 5})

    message = await client.messages.create(
        **ask(), metadata={"user_id": "u-1"}, service_tier="auto", output_config={"effort": "low"},
        inference_geo="us", speed="standard", cache_control={"type": "ephemeral"},
    )
    assert message.stop_reason == "end_turn"


async def test_consecutive_turns_of_one_role_are_combined_as_the_api_combines_them(client):
    message = await client.messages.create(
        **ask(messages=[{"role": "user", "content": "First part."}, {"role": "user", "content": "Second part."}])
    )

    assert "> First part.\n>\n> Second part." in message.content[0].text


async def test_a_prefill_is_refused_by_the_models_that_take_none(client):
    prefilled = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]

    with pytest.raises(anthropic.BadRequestError, match="does not support assistant message prefill"):
        await client.messages.create(**ask(messages=prefilled))
    accepted = await client.messages.create(**ask(model=PREFILL_MODEL, messages=prefilled))
    assert accepted.stop_reason == "end_turn"


async def test_the_cache_minimum_is_the_models_own(client):
    long_text = "Indexes speed up reads and slow down writes in every database. " * 200  # ~3,000 tokens
    system = [{"type": "text", "text": long_text, "cache_control": {"type": "ephemeral"}}]

    sonnet = await client.messages.create(**ask(system=system))
    haiku = await client.messages.create(**ask(model=PREFILL_MODEL, system=system))  # minimum 4,096

    assert 2048 < estimate_tokens(long_text) < 4096
    assert sonnet.usage.cache_creation_input_tokens == estimate_tokens(long_text)
    assert haiku.usage.cache_creation_input_tokens == 0


async def test_a_large_image_is_counted_at_its_scaled_size_and_an_oversized_one_is_refused(client):
    def counted(image):
        messages = [{"role": "user", "content": [image, {"type": "text", "text": "See"}]}]
        return client.messages.count_tokens(model=MODEL, messages=messages)

    small, large, huge = await asyncio.gather(counted(png(200, 100)), counted(png(2000, 1000)), counted(png(4000, 2000)))
    text = estimate_tokens("See")

    assert small.input_tokens - text == math.ceil(200 * 100 / 750)  # under the limits: counted as it is
    assert large.input_tokens == huge.input_tokens  # both scaled to the same size
    assert large.input_tokens - text <= IMAGE_LONG_EDGE * IMAGE_LONG_EDGE // 2 // 750
    with pytest.raises(anthropic.BadRequestError, match="8000 pixels"):
        await counted(png(8001, 10))
    too_heavy = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": base64.b64encode(b"\0" * (5 * 1024 * 1024 + 1)).decode()}}
    with pytest.raises(anthropic.BadRequestError, match="5 MB"):
        await counted(too_heavy)


async def test_every_response_carries_rate_limit_headers(client):
    first = await client.messages.with_raw_response.create(**ask())
    second = await client.messages.with_raw_response.create(**ask())
    refused = await raw_post("/v1/messages", ask(model="claude-imaginary-1"))

    for response in (first, second, refused):
        for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
            assert int(response.headers[f"anthropic-ratelimit-{kind}-limit"]) > 0
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", response.headers[f"anthropic-ratelimit-{kind}-reset"])
    remaining = [int(r.headers["anthropic-ratelimit-requests-remaining"]) for r in (first, second)]
    assert remaining[1] < remaining[0]


# Continue and varied replies


async def test_a_prefill_that_starts_the_reply_is_continued_not_restarted(client):
    whole = (await client.messages.create(**ask(model=PREFILL_MODEL))).content[0].text
    cut = whole[:40].rstrip()
    request = ask(model=PREFILL_MODEL)
    request["messages"].append({"role": "assistant", "content": cut})

    rest = (await client.messages.create(**request)).content[0].text

    assert cut + rest == whole


async def test_a_continue_turn_after_a_cut_reply_gets_the_rest(client):
    whole = (await client.messages.create(**ask())).content[0].text
    cut = whole[:60].rstrip()
    request = ask()
    request["messages"] += [
        {"role": "assistant", "content": cut},
        {"role": "user", "content": "Continue exactly where your last reply stopped, without repeating any of it."},
    ]

    rest = (await client.messages.create(**request)).content[0].text

    assert cut + rest == whole


# The TypeScript SDK


TS_RUNNER = """
const Anthropic = require('@anthropic-ai/sdk').default;
const { betaTool } = require('@anthropic-ai/sdk/helpers/beta/json-schema');
const client = new Anthropic({ apiKey: 'offline', baseURL: process.argv[2], maxRetries: 0 });
const weather = betaTool({
  name: 'get_weather', description: 'The weather in a city.',
  inputSchema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  run: async (input) => `Sunny in ${input.city}`,
});
(async () => {
  const runner = client.beta.messages.toolRunner({
    model: 'claude-sonnet-5-5', max_tokens: 1024, tools: [weather],
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
  });
  const stops = [];
  for await (const message of runner) stops.push(message.stop_reason);
  const final = await runner.done();
  console.log(JSON.stringify({ stops, text: final.content.map((b) => b.text || '').join('') }));
})().catch((error) => { console.error(error); process.exit(1); });
"""


async def test_the_typescript_sdk_tool_runner_completes_a_loop_over_http(tmp_path):
    node_modules = npm_installed(TS_SDK_DIR)
    script = tmp_path / "runner.cjs"
    script.write_text(TS_RUNNER)
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(django_settings.BASE_DIR / "manage.py"), "serve_offline_model", "--port", "0",
        cwd=django_settings.BASE_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        banner = (await asyncio.wait_for(server.stdout.readline(), timeout=60)).decode()
        url = re.search(r"http://127\.0\.0\.1:\d+", banner).group()
        env = {**os.environ, "NODE_PATH": str(node_modules)}
        node = await asyncio.create_subprocess_exec(
            "node", str(script), url, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(node.communicate(), timeout=60)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)

    assert node.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["stops"][0] == "tool_use" and result["stops"][-1] == "end_turn"
    assert "Sunny in offline city" in result["text"]


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("What is a B-tree?", "You asked a question"),
        ("Write a poem about the sea", "You asked me to write something"),
        ("Fix this python function", "You asked about code"),
        ("Je voudrais savoir pour la réunion, est-ce que vous venez?", "You wrote in French. Je suis le modèle"),
        ("Ich weiß nicht, ob die Sitzung und das Essen heute ist", "You wrote in German. Ich bin das Offline-Modell"),
        ("Quiero saber si el tren para Madrid es por la tarde", "You wrote in Spanish. Soy el modelo"),
    ],
)
async def test_replies_vary_with_what_was_asked_and_still_quote_it(client, text, sentence):
    first = await client.messages.create(**ask(text))
    again = await client.messages.create(**ask(text))

    reply = first.content[0].text
    assert sentence in reply and f"> {text}" in reply and "```python" in reply and "\n- " in reply
    assert again.content[0].text == reply  # deterministic


# Bounded cost for hostile input: every request below is answered at once, whatever its size


def recursive_schema(width):
    """A pydantic-like recursive model whose every property is required: a value of it grows as width**depth."""
    properties = {f"child_{n}": {"$ref": "#/$defs/Node"} for n in range(width)}
    node = {"type": "object", "properties": properties, "required": list(properties)}
    return {"$defs": {"Node": node}, "$ref": "#/$defs/Node"}


@pytest.mark.parametrize(
    "schema",
    [recursive_schema(10), {"type": "array", "minItems": 10**9}, {"type": "string", "minLength": 10**12}],
    ids=["exponential", "min-items", "min-length"],
)
async def test_a_schema_whose_value_would_be_huge_is_refused_not_built(client, schema):
    output = {"format": {"type": "json_schema", "schema": schema}}
    wrapped = {"type": "object", "properties": {"x": schema}, "required": ["x"], "$defs": schema.get("$defs", {})}
    tool = {"name": "build", "description": "Builds.", "input_schema": wrapped}

    with pytest.raises(anthropic.BadRequestError, match="schema is too complex"):
        await client.messages.create(**ask(output_config=output))
    with pytest.raises(anthropic.BadRequestError, match="schema is too complex"):
        await client.messages.create(**ask(tools=[tool], tool_choice={"type": "any"}))


async def test_malformed_schema_keywords_are_ignored_not_a_server_error(client):
    schema = {"type": "object", "required": 5, "properties": {"n": {"type": "integer", "minimum": "two"}}}
    tool = {"name": "count", "description": "Counts.", "input_schema": {
        "type": "object", "properties": {"items": {"type": "array", "minItems": "three"}}, "required": ["items"]}}

    parsed = await client.messages.create(**ask(output_config={"format": {"type": "json_schema", "schema": schema}}))
    called = await client.messages.create(**ask(tools=[tool], tool_choice={"type": "any"}))

    assert json.loads(parsed.content[0].text) == {"n": 1}
    assert called.content[0].input == {"items": ["offline items"]}


@pytest.mark.parametrize(
    ("text", "tool"),
    [
        ("1" * 200_000, CALCULATOR),  # a run of digits: the calculator's expression pattern scanned it n² times
        ("search my conversations for " + "." * 50_000 + "x", {**CALCULATOR, "name": "search_conversations"}),
    ],
    ids=["digits", "search-punctuation"],
)
async def test_long_hostile_messages_are_answered_without_quadratic_scans(client, text, tool):
    message = await client.messages.create(**ask(text, tools=[tool], max_tokens=20_000))

    calls = [block for block in message.content if block.type == "tool_use"]
    if tool is CALCULATOR:  # digits without an operator are no expression
        assert calls == [] and message.stop_reason == "max_tokens"
    else:  # the query is the rest of the line, trailing punctuation aside: here it ends in "x"
        assert calls[0].name == "search_conversations" and calls[0].input["query"].endswith(".x")


async def test_a_title_request_without_its_closing_tag_is_answered(client):
    system = "Write a short title of 2 to 4 words for this conversation."
    message = await client.messages.create(**ask("<user>" * 50_000, system=system))

    assert message.content[0].text == "User User User User"
