"""Remote MCP servers: how admins configure them, how a reply's requests offer them (the API's MCP connector),
and a real turn whose MCP blocks are stored, streamed, and sent back while their server is still offered."""

import pytest
from channels.db import database_sync_to_async
from django.urls import reverse
from test_consumer import assistant_id, connected, frames_until_final, reload

from chat.llm import mcp
from chat.llm.offline import offline_model
from chat.llm.request import request_build
from chat.models import Message
from connectors.models import McpServer
from teams.models import Membership, Team

pytestmark = pytest.mark.django_db


@pytest.fixture
def docs_server():
    return McpServer.objects.create(
        name="docs", url="https://mcp.example.com/sse", authorization_token="secret-token-123",
        allowed_tools=["search"],
    )


def first_request(conversation) -> dict:
    Message.objects.create(conversation=conversation, role="user", content=[{"type": "text", "text": "Hi"}])
    reply = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    return request_build(conversation, reply=reply)


def test_an_allowlist_is_a_toolset_with_only_those_tools_on(docs_server):
    offer = mcp.mcp_offer(docs_server)

    assert offer.definition == {
        "type": "url", "url": "https://mcp.example.com/sse", "name": "docs", "authorization_token": "secret-token-123",
    }
    assert offer.toolset == {
        "type": "mcp_toolset", "mcp_server_name": "docs",
        "default_config": {"enabled": False}, "configs": {"search": {"enabled": True}},
    }


def test_no_allowlist_offers_every_tool_and_no_token_sends_none():
    server = McpServer.objects.create(name="wiki", url="https://wiki.example.com/mcp")

    offer = mcp.mcp_offer(server)

    assert offer.definition == {"type": "url", "url": "https://wiki.example.com/mcp", "name": "wiki"}
    assert offer.toolset == {"type": "mcp_toolset", "mcp_server_name": "wiki"}


def test_requests_offer_the_enabled_servers_through_the_beta(conversation, docs_server):
    McpServer.objects.create(name="off", url="https://off.example.com/mcp", enabled=False)

    request = first_request(conversation)

    assert [server["name"] for server in request["mcp_servers"]] == ["docs"]
    assert request["tools"][-1]["type"] == "mcp_toolset" and request["tools"][-1]["mcp_server_name"] == "docs"
    assert request["betas"] == [mcp.MCP_BETA]


def test_no_server_leaves_the_request_as_it_was(conversation):
    request = first_request(conversation)

    assert "mcp_servers" not in request and "betas" not in request
    assert all(tool.get("type") != "mcp_toolset" for tool in request["tools"])


def test_a_server_kept_to_a_group_is_offered_to_its_members_and_the_groups_below(owner, outsider, docs_server):
    department = Team.objects.create(name="Engineering")
    team = Team.objects.create(name="Platform", parent=department)
    docs_server.groups.add(department)
    Membership.objects.create(team=team, user=owner)

    assert [offer.name for offer in mcp.mcp_offers_for(owner)] == ["docs"]
    assert mcp.mcp_offers_for(outsider) == ()


def test_history_keeps_mcp_blocks_only_while_their_server_is_offered(docs_server):
    blocks = [
        {"type": "text", "text": "Asking."},
        {"type": "mcp_tool_use", "id": "m1", "name": "search", "server_name": "docs", "input": {"q": "x"}},
        {"type": "mcp_tool_result", "tool_use_id": "m1", "is_error": False, "content": [{"type": "text", "text": "r"}]},
        {"type": "mcp_tool_use", "id": "m2", "name": "search", "server_name": "docs", "input": {}},  # no result
        {"type": "mcp_tool_use", "id": "m3", "name": "lookup", "server_name": "gone", "input": {}},
        {"type": "mcp_tool_result", "tool_use_id": "m3", "is_error": False, "content": "old"},
    ]

    kept = mcp.mcp_blocks_sendable(blocks, ())
    offered = mcp.mcp_blocks_sendable(blocks, (mcp.mcp_offer(docs_server),))

    assert kept == [blocks[0]]
    assert offered == blocks[:3]


def test_an_mcp_result_reads_as_text():
    assert mcp.mcp_result_text({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}) == "a\nb"
    assert mcp.mcp_result_text({"content": "plain"}) == "plain"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_a_real_turn_stores_the_mcp_blocks_and_sends_them_back(socket_for, owner, conversation, docs_server):
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Please use the docs search for the release notes."})
    frames = await frames_until_final(socket)
    message = await reload(assistant_id(frames))

    call = next(block for block in message.content if block["type"] == "mcp_tool_use")
    result = next(block for block in message.content if block["type"] == "mcp_tool_result")
    assert (call["server_name"], call["name"], result["tool_use_id"]) == ("docs", "search", call["id"])
    assert "partial_json" not in call and isinstance(call["input"], dict)
    assert "no MCP server was called" in mcp.mcp_result_text(result)
    assert message.status == "complete"
    sent = offline_model.received[-1]
    assert sent["mcp_servers"][0]["authorization_token"] == "secret-token-123"
    parts = [part for frame in frames if frame["type"] == "delta" for part in frame["parts"]]
    assert any(part["type"] == "mcp_tool_use" and part.get("server_name") == "docs" for part in parts)

    await socket.send_json_to({"type": "send", "text": "Thanks."})
    await frames_until_final(socket)
    history = [block for turn in offline_model.received[-1]["messages"] for block in turn["content"]]
    assert [block["type"] for block in history if block["type"].startswith("mcp_")] == [
        "mcp_tool_use", "mcp_tool_result"
    ]

    await database_sync_to_async(McpServer.objects.filter(pk=docs_server.pk).update)(enabled=False)
    await socket.send_json_to({"type": "send", "text": "And now?"})
    await frames_until_final(socket)
    later = offline_model.received[-1]
    assert "mcp_servers" not in later
    assert not [block for turn in later["messages"] for block in turn["content"] if block["type"].startswith("mcp_")]


# --- the admin ------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1"))
    return client


def test_an_admin_adds_a_server_with_an_allowlist(admin_client):
    response = admin_client.post(reverse("admin:connectors_mcpserver_add"), {
        "name": "tickets", "url": "https://tickets.example.com/mcp", "authorization_token": "tok-1",
        "allowed_tools": "create_ticket\nsearch, search", "enabled": "on",
    })

    assert response.status_code == 302
    server = McpServer.objects.get()
    assert (server.authorization_token, server.allowed_tools) == ("tok-1", ["create_ticket", "search"])


@pytest.mark.parametrize("url", ["http://tickets.example.com/mcp", "ftp://x.example.com", "not a url"])
def test_only_https_servers_are_accepted(admin_client, url):
    response = admin_client.post(reverse("admin:connectors_mcpserver_add"), {"name": "t", "url": url})

    assert response.status_code == 200 and not McpServer.objects.exists()


def test_the_token_is_never_shown_back_and_an_empty_field_keeps_it(admin_client, docs_server):
    change = reverse("admin:connectors_mcpserver_change", args=[docs_server.pk])

    page = admin_client.get(change).content.decode()
    listing = admin_client.get(reverse("admin:connectors_mcpserver_changelist")).content.decode()
    admin_client.post(change, {"name": "docs", "url": docs_server.url, "allowed_tools": "search", "enabled": "on"})
    docs_server.refresh_from_db()
    kept = docs_server.authorization_token
    admin_client.post(change, {"name": "docs", "url": docs_server.url, "clear_token": "on", "enabled": "on"})
    docs_server.refresh_from_db()

    assert "secret-token-123" not in page and "secret-token-123" not in listing
    assert kept == "secret-token-123" and docs_server.authorization_token == ""


def test_the_list_shows_each_servers_host_and_never_its_query_string(admin_client):
    McpServer.objects.create(name="wiki", url="https://mcp.example.org/sse?key=query-secret-456")

    listing = admin_client.get(reverse("admin:connectors_mcpserver_changelist")).content.decode()

    assert "mcp.example.org" in listing and "query-secret-456" not in listing


def test_people_who_are_not_staff_cannot_reach_the_servers(client, owner, docs_server):
    client.force_login(owner)

    response = client.get(reverse("admin:connectors_mcpserver_change", args=[docs_server.pk]))

    assert response.status_code == 302 and "secret-token-123" not in response.content.decode()


def test_the_chat_page_says_which_servers_and_tools_are_on_offer(client, owner, docs_server):
    McpServer.objects.create(name="wiki", url="https://wiki.example.com/mcp")
    McpServer.objects.create(name="hidden", url="https://hidden.example.com/mcp", enabled=False)
    client.force_login(owner)

    page = client.get(reverse("home")).content.decode()

    line = page[page.index('id="tools-on-offer"'):].split("</p>")[0]
    assert "<strong>docs</strong> (search)" in line and "<strong>wiki</strong> (all tools)" in line
    assert "hidden" not in line and "Memory is off" in line


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_a_request_near_the_window_is_counted_with_its_servers(socket_for, owner, conversation, docs_server,
                                                                       settings):
    settings.CHAT_MAX_OUTPUT_TOKENS, settings.CHAT_MAX_CONTEXT_TOKENS = 1_000, 1_320
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Hello there."})
    message = await reload(assistant_id(await frames_until_final(socket)))

    assert offline_model.requests_by_path["/v1/messages/count_tokens"] >= 1
    assert message.status == "complete", message.error


def test_a_half_price_batch_reply_offers_no_mcp_servers(conversation, docs_server):
    from batches.services import turn_params
    from chat.llm.registry import model_for
    from chat.llm.request import request_parts

    Message.objects.create(conversation=conversation, role="user", content=[{"type": "text", "text": "Hi"}])
    reply = Message.objects.create(conversation=conversation, role="assistant", status="streaming")

    params = turn_params(request_parts(conversation, reply=reply), spec=model_for(conversation.model), max_tokens=None)

    assert "mcp_servers" not in params and "betas" not in params
    assert all(tool.get("type") != "mcp_toolset" for tool in params["tools"])


def test_the_markdown_export_shows_the_mcp_call_and_its_result(conversation):
    from chat.exports import markdown_parts

    question = Message.objects.create(conversation=conversation, role="user", content=[{"type": "text", "text": "Hi"}])
    content = [
        {"type": "mcp_tool_use", "id": "m1", "name": "search", "server_name": "docs", "input": {"q": "notes"}},
        {"type": "mcp_tool_result", "tool_use_id": "m1", "is_error": False,
         "content": [{"type": "text", "text": "three notes"}]},
        {"type": "text", "text": "Found them."},
    ]
    answer = Message.objects.create(
        conversation=conversation, role="assistant", status="complete", parent=question, content=content
    )
    conversation.current_leaf_id = answer.pk
    conversation.save(update_fields=["current_leaf_id"])

    markdown = "".join(markdown_parts(conversation))

    assert '> Asked docs: search {"q": "notes"}' in markdown and "> Tool result: three notes" in markdown
