"""The offline model's newer features through the real SDK: citations, web search and fetch, code execution,
memory calls and MCP blocks, streamed and accumulated by the SDK's own helpers."""

import json
import re

import pytest

from chat.llm.offline.features.web import FAKE_RESULT
from tests.test_offline_model import MODEL, make_client, pdf

TEXT = "The grass is green. The sky is blue. Water is wet. Fire is hot."
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}
WEB_FETCH = {"type": "web_fetch_20250910", "name": "web_fetch"}
CODE = {"type": "code_execution_20250825", "name": "code_execution"}
MEMORY = {"type": "memory_20250818", "name": "memory"}
MCP_HEADER = "mcp-client-2025-11-20"


@pytest.fixture(autouse=True)
def files_dir(settings, tmp_path):
    settings.OFFLINE_MODEL_FILES_DIR = tmp_path / "files"


@pytest.fixture
async def client():
    sdk = make_client()
    yield sdk
    await sdk.close()


def ask(content, **request):
    return {"model": MODEL, "max_tokens": 4000, "messages": [{"role": "user", "content": content}], **request}


def text_document(data=TEXT, *, cited=True, title="Facts"):
    block = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": data},
        "title": title,
    }
    return {**block, "citations": {"enabled": True}} if cited else block


async def streamed(client, **request):
    async with client.messages.stream(**request) as stream:
        return await stream.get_final_message()


async def beta_streamed(client, **request):
    async with client.beta.messages.stream(**request) as stream:
        return await stream.get_final_message()


def citations_of(message):
    return [
        citation for block in message.content if block.type == "text" for citation in block.citations or []
    ]


def blocks_of(message, kind):
    return [block for block in message.content if block.type == kind]


# Citations


async def test_a_text_document_is_quoted_by_characters_and_the_stream_accumulates_the_citations(client):
    message = await streamed(
        client, **ask([text_document(), {"type": "text", "text": "What colour is grass?"}])
    )

    found = citations_of(message)
    assert [citation.type for citation in found] == ["char_location"] * 3
    for citation in found:
        assert citation.cited_text == TEXT[citation.start_char_index : citation.end_char_index]
        assert (citation.document_index, citation.document_title) == (0, "Facts")
    assert found[0].cited_text == "The grass is green."
    cited_block = next(block for block in message.content if block.citations)
    assert "The grass is green." in cited_block.text


async def test_a_pdf_is_cited_by_page_and_custom_content_by_block(client):
    pdf_document = {
        "type": "document",
        "source": {
            "type": "base64",
            "media_type": "application/pdf",
            "data": pdf("Page one says hello.", "Page two."),
        },
        "citations": {"enabled": True},
    }
    custom = {
        "type": "document",
        "source": {
            "type": "content",
            "content": [{"type": "text", "text": "First block."}, {"type": "text", "text": "Second block."}],
        },
        "citations": {"enabled": True},
    }
    message = await streamed(
        client, **ask([pdf_document, custom, {"type": "text", "text": "Summarise both."}])
    )

    found = citations_of(message)
    pages = [citation for citation in found if citation.type == "page_location"]
    blocks = [citation for citation in found if citation.type == "content_block_location"]
    assert (pages[0].document_index, pages[0].start_page_number, pages[0].end_page_number) == (0, 1, 2)
    assert pages[0].cited_text == "Page one says hello."
    assert (blocks[0].document_index, blocks[0].start_block_index, blocks[0].end_block_index) == (1, 0, 1)
    assert blocks[0].cited_text == "First block."
    assert len(found) == 3


async def test_documents_without_citations_enabled_are_never_cited_but_still_counted(client):
    request = ask(
        [
            text_document(cited=False),
            text_document("Only this one. Is cited."),
            {"type": "text", "text": "Hi"},
        ]
    )
    message = await streamed(client, **request)

    assert {citation.document_index for citation in citations_of(message)} == {1}
    plain = await streamed(client, **ask([text_document(cited=False), {"type": "text", "text": "Hi"}]))
    assert citations_of(plain) == []


async def test_the_same_request_gets_the_same_citations_streamed_or_not(client):
    request = ask([text_document(), {"type": "text", "text": "What colour is grass?"}])
    first = await streamed(client, **request)
    second = await client.messages.create(**request)

    assert [block.to_dict() for block in first.content] == [block.to_dict() for block in second.content]


async def test_a_cited_document_from_the_files_api_names_its_file(client):
    uploaded = await client.beta.files.upload(file=("facts.txt", TEXT.encode(), "text/plain"))
    document = {
        "type": "document",
        "source": {"type": "file", "file_id": uploaded.id},
        "citations": {"enabled": True},
    }
    message = await beta_streamed(
        client, **ask([document, {"type": "text", "text": "Quote it."}]), betas=["files-api-2025-04-14"]
    )

    assert {citation.file_id for citation in citations_of(message)} == {uploaded.id}


# Web search and web fetch


async def test_a_web_search_streams_its_call_results_and_cited_answer(client):
    tool = {**WEB_SEARCH, "user_location": {"type": "approximate", "city": "Lyon", "country": "FR"}}
    message = await streamed(client, **ask("Search the web for offline models", tools=[tool]))

    (call,) = blocks_of(message, "server_tool_use")
    assert (call.name, call.input) == ("web_search", {"query": "offline models"})
    (result,) = blocks_of(message, "web_search_tool_result")
    assert result.tool_use_id == call.id
    assert len(result.content) == 3
    assert all(item.url.startswith("https://example.") and "Lyon" in item.title for item in result.content)
    found = citations_of(message)
    assert [citation.url for citation in found] == [item.url for item in result.content]
    assert all(citation.cited_text.startswith(FAKE_RESULT) for citation in found)
    assert message.usage.server_tool_use.web_search_requests == 1
    assert message.usage.server_tool_use.web_fetch_requests == 0
    assert message.stop_reason == "end_turn"


async def test_web_search_keeps_to_allowed_domains_and_away_from_blocked_ones(client):
    allowed = await client.messages.create(
        **ask(
            "Look up the weather",
            tools=[{**WEB_SEARCH, "allowed_domains": ["docs.example.edu", "news.example.edu"]}],
        )
    )
    blocked = await client.messages.create(
        **ask("Look up the weather", tools=[{**WEB_SEARCH, "blocked_domains": ["example.com"]}])
    )

    allowed_hosts = {
        item.url.split("/")[2] for item in blocks_of(allowed, "web_search_tool_result")[0].content
    }
    assert allowed_hosts == {"docs.example.edu", "news.example.edu"}
    blocked_hosts = {
        item.url.split("/")[2] for item in blocks_of(blocked, "web_search_tool_result")[0].content
    }
    assert "example.com" not in blocked_hosts and blocked_hosts


async def test_searches_beyond_max_uses_are_the_max_uses_exceeded_error_and_are_not_billed(client):
    request = ask('Search the web for "alpha", "beta" and "gamma"', tools=[{**WEB_SEARCH, "max_uses": 2}])
    message = await streamed(client, **request)

    calls = blocks_of(message, "server_tool_use")
    assert [call.input["query"] for call in calls] == ["alpha", "beta", "gamma"]
    results = blocks_of(message, "web_search_tool_result")
    assert isinstance(results[0].content, list) and isinstance(results[1].content, list)
    assert (results[2].content.type, results[2].content.error_code) == (
        "web_search_tool_result_error",
        "max_uses_exceeded",
    )
    assert message.usage.server_tool_use.web_search_requests == 2


async def test_a_web_fetch_returns_a_fake_document_cited_when_citations_are_on(client):
    tool = {**WEB_FETCH, "citations": {"enabled": True}}
    message = await streamed(
        client, **ask("Please read https://example.com/a/page and summarise it", tools=[tool])
    )

    (call,) = blocks_of(message, "server_tool_use")
    assert (call.name, call.input) == ("web_fetch", {"url": "https://example.com/a/page"})
    (result,) = blocks_of(message, "web_fetch_tool_result")
    assert result.content.type == "web_fetch_result" and result.content.url == "https://example.com/a/page"
    page = result.content.content.source.data
    assert page.startswith("offline model: this is not the real page at https://example.com/a/page")
    (citation,) = citations_of(message)
    assert citation.type == "char_location" and citation.cited_text == page[: citation.end_char_index]
    assert message.usage.server_tool_use.web_fetch_requests == 1


async def test_a_deep_search_pauses_after_its_calls_and_goes_on_when_the_paused_turn_comes_back(client):
    request = ask("Search deeply for owls", tools=[WEB_SEARCH])
    paused = await streamed(client, **request)

    assert paused.stop_reason == "pause_turn"
    assert [block.type for block in paused.content] == ["text", "server_tool_use", "web_search_tool_result"]
    turn = {"role": "assistant", "content": [block.to_dict() for block in paused.content]}
    resumed = await streamed(client, **{**request, "messages": [*request["messages"], turn]})

    assert resumed.stop_reason == "end_turn"
    assert blocks_of(resumed, "server_tool_use") == []
    searched = blocks_of(paused, "web_search_tool_result")[0].content
    assert [citation.url for citation in citations_of(resumed)] == [item.url for item in searched]


async def test_a_fetch_of_a_blocked_domain_is_url_not_allowed(client):
    tool = {**WEB_FETCH, "blocked_domains": ["example.com"]}
    message = await client.messages.create(**ask("Fetch https://docs.example.com/x please", tools=[tool]))

    (result,) = blocks_of(message, "web_fetch_tool_result")
    assert (result.content.type, result.content.error_code) == (
        "web_fetch_tool_result_error",
        "url_not_allowed",
    )
    assert message.usage.server_tool_use.web_fetch_requests == 0
    assert citations_of(message) == []


async def test_without_a_web_tool_nothing_is_searched(client):
    message = await client.messages.create(**ask("Search the web for cats"))

    assert blocks_of(message, "server_tool_use") == []
    assert message.usage.server_tool_use is None


async def test_the_same_search_request_gets_the_same_results(client):
    request = ask("Search the web for owls", tools=[{**WEB_SEARCH, "allowed_domains": ["example.org"]}])
    first, second = await client.messages.create(**request), await streamed(client, **request)

    def without_ids(message):
        return [
            {k: v for k, v in b.to_dict().items() if k not in ("id", "tool_use_id")} for b in message.content
        ]

    assert without_ids(first) == without_ids(second)


# Memory


async def test_memory_is_viewed_first_then_written_when_asked_to_remember(client):
    request = ask("Remember that my cat is called Tom.", tools=[MEMORY])
    first = await streamed(client, **request)

    (view,) = blocks_of(first, "tool_use")
    assert (view.name, view.input, first.stop_reason) == (
        "memory",
        {"command": "view", "path": "/memories"},
        "tool_use",
    )
    history = request["messages"] + [
        {"role": "assistant", "content": [block.to_dict() for block in first.content]}
    ]
    listing = {"type": "tool_result", "tool_use_id": view.id, "content": "Directory: /memories\n(empty)"}
    second = await streamed(
        client, **{**request, "messages": [*history, {"role": "user", "content": [listing]}]}
    )

    (create,) = blocks_of(second, "tool_use")
    assert create.input == {
        "command": "create",
        "path": "/memories/notes.md",
        "file_text": "- my cat is called Tom\n",
    }
    history += [
        {"role": "user", "content": [listing]},
        {"role": "assistant", "content": [b.to_dict() for b in second.content]},
    ]
    done = {
        "type": "tool_result",
        "tool_use_id": create.id,
        "content": "File created successfully at /memories/notes.md",
    }
    third = await streamed(client, **{**request, "messages": [*history, {"role": "user", "content": [done]}]})

    assert third.stop_reason == "end_turn"
    assert "File created successfully at /memories/notes.md" in third.content[-1].text


async def test_an_existing_notes_file_gets_the_new_note_inserted(client):
    request = ask("Remember that I like tea", tools=[MEMORY])
    first = await client.messages.create(**request)
    (view,) = blocks_of(first, "tool_use")
    listing = {"type": "tool_result", "tool_use_id": view.id, "content": "Directory: /memories\n- notes.md"}
    messages = [*request["messages"], {"role": "assistant", "content": [b.to_dict() for b in first.content]}]
    second = await client.messages.create(
        **{**request, "messages": [*messages, {"role": "user", "content": [listing]}]}
    )

    (insert,) = blocks_of(second, "tool_use")
    assert insert.input == {
        "command": "insert",
        "path": "/memories/notes.md",
        "insert_line": 0,
        "insert_text": "- I like tea\n",
    }


async def test_memory_is_not_viewed_again_on_a_later_turn_unless_memory_comes_up(client):
    earlier_call = {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "memory",
        "input": {"command": "view", "path": "/memories"},
    }
    messages = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": [earlier_call]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "(empty)"}],
        },
        {"role": "assistant", "content": "Hi."},
    ]
    later = await client.messages.create(
        **{**ask("x", tools=[MEMORY]), "messages": [*messages, {"role": "user", "content": "What is 2 + 2?"}]}
    )
    recall = await client.messages.create(
        **{
            **ask("x", tools=[MEMORY]),
            "messages": [*messages, {"role": "user", "content": "What do you remember?"}],
        }
    )

    assert blocks_of(later, "tool_use") == [] and later.stop_reason == "end_turn"
    assert blocks_of(recall, "tool_use")[0].input == {"command": "view", "path": "/memories"}


async def test_once_its_memory_is_answered_the_model_goes_on_with_the_turn(client):
    request = ask("Search the web for owls", tools=[MEMORY, WEB_SEARCH])
    first = await client.messages.create(**request)
    (view,) = blocks_of(first, "tool_use")
    listing = {"type": "tool_result", "tool_use_id": view.id, "content": "(empty)"}
    messages = [*request["messages"], {"role": "assistant", "content": [b.to_dict() for b in first.content]}]
    second = await client.messages.create(
        **{**request, "messages": [*messages, {"role": "user", "content": [listing]}]}
    )

    assert [call.input["query"] for call in blocks_of(second, "server_tool_use")] == ["owls"]
    assert second.stop_reason == "end_turn"


# Code execution


async def test_code_runs_in_a_fake_container_and_prints_the_scripts_literals(client):
    code = "print(\"hello from the container\")\nprint('second line')\n"
    message = await streamed(client, **ask(f"Run this:\n```python\n{code}```", tools=[CODE]))

    calls = blocks_of(message, "server_tool_use")
    assert [call.name for call in calls] == ["text_editor_code_execution", "bash_code_execution"]
    assert calls[0].input["file_text"] == code
    (created,) = blocks_of(message, "text_editor_code_execution_tool_result")
    assert created.content.type == "text_editor_code_execution_create_result"
    (run,) = blocks_of(message, "bash_code_execution_tool_result")
    assert run.tool_use_id == calls[1].id
    assert (run.content.stdout, run.content.return_code) == ("hello from the container\nsecond line\n", 0)
    assert message.container.id.startswith("container_offline_")


async def test_a_question_that_only_mentions_running_runs_no_code(client):
    message = await client.messages.create(**ask("How do I run a marathon?", tools=[CODE]))

    assert blocks_of(message, "server_tool_use") == []
    assert message.container is None


async def test_a_chart_asked_for_is_a_produced_file_that_the_files_api_serves(client):
    message = await streamed(client, **ask("Make a bar chart of my sales with code", tools=[CODE]))

    (run,) = blocks_of(message, "bash_code_execution_tool_result")
    (output,) = run.content.content
    downloaded = await client.beta.files.download(output.file_id)
    assert (await downloaded.read()).startswith(b"\x89PNG")
    csv = await client.messages.create(**ask("Create a CSV file of it with code", tools=[CODE]))
    (csv_run,) = blocks_of(csv, "bash_code_execution_tool_result")
    downloaded = await client.beta.files.download(csv_run.content.content[0].file_id)
    assert (await downloaded.read()).startswith(b"label,value\n")


async def test_uploaded_files_are_listed_and_the_container_asked_for_is_kept(client):
    uploaded = await client.beta.files.upload(file=("sales.csv", b"a,b\n1,2\n", "text/csv"))
    content = [
        {"type": "text", "text": "Run code on my file"},
        {"type": "container_upload", "file_id": uploaded.id},
    ]
    message = await beta_streamed(
        client, **ask(content, tools=[CODE], container="container_mine"), betas=["files-api-2025-04-14"]
    )

    listing = blocks_of(message, "bash_code_execution_tool_result")[0]
    assert listing.content.stdout == "sales.csv\n"
    assert message.container.id == "container_mine"


# MCP connector


def mcp_request(text, toolset):
    server = {
        "type": "url",
        "url": "https://mcp.example.com/sse",
        "name": "wiki",
        "authorization_token": "secret",
    }
    return {**ask(text, tools=[toolset]), "mcp_servers": [server], "betas": [MCP_HEADER]}


async def test_a_named_mcp_tool_is_called_with_a_fake_result(client):
    toolset = {
        "type": "mcp_toolset",
        "mcp_server_name": "wiki",
        "configs": {"lookup": {"enabled": True}, "edit": {"enabled": False}},
    }
    message = await beta_streamed(client, **mcp_request("Please use the wiki lookup for Paris", toolset))

    (call,) = blocks_of(message, "mcp_tool_use")
    assert (call.name, call.server_name) == ("lookup", "wiki")
    assert call.input == {"text": "Please use the wiki lookup for Paris"}
    (result,) = blocks_of(message, "mcp_tool_result")
    assert result.tool_use_id == call.id and result.is_error is False
    assert result.content[0].text.startswith("offline model: no MCP server was called")
    disabled = await client.beta.messages.create(**mcp_request("use the wiki edit now", toolset))
    assert blocks_of(disabled, "mcp_tool_use") == []


async def test_asking_a_server_without_configs_calls_its_invented_echo_tool(client):
    message = await client.beta.messages.create(
        **mcp_request("Ask wiki about Paris", {"type": "mcp_toolset", "mcp_server_name": "wiki"})
    )

    assert [call.name for call in blocks_of(message, "mcp_tool_use")] == ["echo"]


# The stream's grammar


async def test_result_blocks_come_whole_and_citations_before_their_text(client):
    request = ask("Search the web for owls", tools=[WEB_SEARCH], stream=True)
    events = [json.loads(line[6:]) async for line in _sse_lines(request)]

    starts = [event["content_block"] for event in events if event["type"] == "content_block_start"]
    result = next(block for block in starts if block["type"] == "web_search_tool_result")
    assert len(result["content"]) == 3  # whole, in content_block_start
    deltas = [event["delta"]["type"] for event in events if event["type"] == "content_block_delta"]
    first_citation = deltas.index("citations_delta")
    assert deltas[first_citation + 1] == "text_delta"
    closing = next(event for event in events if event["type"] == "message_delta")
    assert closing["usage"]["server_tool_use"] == {"web_search_requests": 1, "web_fetch_requests": 0}


async def _sse_lines(body):
    import httpx2

    from chat.llm.offline import offline_transport

    async with httpx2.AsyncClient(
        transport=offline_transport(), base_url="http://offline-model.invalid"
    ) as http:
        headers = {"x-api-key": "offline", "anthropic-version": "2023-06-01"}
        async with http.stream(
            "POST", "/v1/messages", content=json.dumps(body).encode(), headers=headers
        ) as response:
            assert response.status_code == 200, await response.aread()
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    yield line


# tool_choice forcing a server tool or the memory tool: the API runs the server tool within the reply


async def test_tool_choice_naming_web_search_runs_the_search_even_unasked(client):
    message = await streamed(
        client, **ask("Tell me about otters.", tools=[WEB_SEARCH], tool_choice={"type": "tool", "name": "web_search"})
    )

    assert message.content[0].type == "server_tool_use"  # the forced call opens the turn, no text before it
    assert message.content[0].name == "web_search" and not blocks_of(message, "tool_use")
    assert blocks_of(message, "web_search_tool_result")[0].content[0].url.startswith("https://example.com/")
    assert message.usage.server_tool_use.web_search_requests == 1 and message.stop_reason == "end_turn"


async def test_tool_choice_any_with_only_server_tools_runs_one_and_code_execution_can_be_forced(client):
    searched = await client.messages.create(**ask("Hello", tools=[WEB_SEARCH], tool_choice={"type": "any"}))
    ran = await client.beta.messages.create(
        **ask("Hello", tools=[CODE], tool_choice={"type": "tool", "name": "code_execution"}),
        betas=["code-execution-2025-08-25"],
    )
    fetched = await client.beta.messages.create(
        **ask("Hello", tools=[{**WEB_FETCH, "allowed_domains": ["docs.example.org"]}],
              tool_choice={"type": "tool", "name": "web_fetch"}),
        betas=["web-fetch-2025-09-10"],
    )

    assert [block.name for block in blocks_of(searched, "server_tool_use")] == ["web_search"]
    assert blocks_of(ran, "server_tool_use")[-1].name == "bash_code_execution" and ran.container is not None
    assert blocks_of(fetched, "server_tool_use")[0].input == {"url": "https://docs.example.org/"}
    assert fetched.usage.server_tool_use.web_fetch_requests == 1


async def test_tool_choice_naming_the_memory_tool_views_the_memory_directory(client):
    message = await client.messages.create(
        **ask("Hello", tools=[MEMORY, WEB_SEARCH], tool_choice={"type": "tool", "name": "memory"})
    )

    assert [(block.type, block.name) for block in message.content] == [("tool_use", "memory")]
    assert message.content[0].input == {"command": "view", "path": "/memories"}
    assert message.stop_reason == "tool_use"


async def test_the_sdk_stream_helpers_accumulate_every_new_block_type_into_the_message_create_returns(client):
    """The SSE grammar of each block type, checked by the SDK itself: what its beta stream helpers accumulate
    equals, block for block, the Message a plain create returns (ids, times and the container's expiry aside)."""
    text = "Search the web for owls, read https://example.com/owls, run this with python and use the wiki echo."
    request = {
        **ask(
            [text_document(), {"type": "text", "text": text}],
            tools=[WEB_SEARCH, {**WEB_FETCH, "citations": {"enabled": True}}, CODE,
                   {"type": "mcp_toolset", "mcp_server_name": "wiki"}],
        ),
        "mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "wiki"}],
        "betas": [MCP_HEADER, "code-execution-2025-08-25", "web-fetch-2025-09-10"],
    }
    created = await client.beta.messages.create(**request)
    final = await beta_streamed(client, **request)

    kinds = [block.type for block in final.content]
    for kind in ("server_tool_use", "web_search_tool_result", "web_fetch_tool_result", "mcp_tool_use",
                 "mcp_tool_result", "bash_code_execution_tool_result", "text_editor_code_execution_tool_result"):
        assert kind in kinds, kind
    assert _comparable(final) == _comparable(created)
    assert final.usage.server_tool_use.web_search_requests == 1 and final.stop_reason == "end_turn"
    assert not [block for block in final.content if type(block).__name__.endswith("Unknown")]  # all typed by the SDK


def _comparable(message):
    """The message as JSON, with what differs between two identical requests (ids, times) numbered instead."""
    dumped = json.dumps(message.model_dump(mode="json", exclude={"id", "container"}), sort_keys=True)
    for pattern in (r"(?:srvtoolu|mcptoolu|toolu)_offline_[0-9a-f]+", r"file_offline_[0-9A-Za-z]+",
                    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"):
        seen = {}
        dumped = re.sub(pattern, lambda match, seen=seen: seen.setdefault(match.group(), f"#{len(seen)}"), dumped)
    return json.loads(dumped)
