"""Web search, web fetch and code execution in the chat (chat/llm/server_tools.py): off until an admin turns them
on, sent with the admin's domains and limits and the user's location, kept in the reply and sent back unchanged,
priced in the ledger and covered by the reservation, and the files code execution produces downloadable by the
reply's owner only."""

import dataclasses
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import reverse
from document_samples import uploaded
from test_consumer import assistant_id, connected, frames_until_final, reload

from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.ledger import UpstreamAttempt, UpstreamRequest, ledger_record
from chat import server_files
from chat.admin import ToolSettingForm
from chat.llm import server_tools
from chat.llm.catalog import MODELS_BY_ID
from chat.llm.offline.files import store_produced_file
from chat.llm.pricing import TokenUsage, usage_cost
from chat.llm.request import reply_turns, request_assemble, request_build, request_parts
from chat.models import ApiCall, Message, ToolSetting

SONNET = "claude-sonnet-5-5"
SEARCH = {
    "type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "tides"},
}
SEARCH_RESULT = {
    "type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
    "content": [{"type": "web_search_result", "url": "https://example.com/tides", "title": "Tides",
                 "encrypted_content": "opaque+bytes/==", "page_age": "1 day"}],
}


def web_search_on(**options) -> ToolSetting:
    return ToolSetting.objects.create(name="web_search", enabled=True, options=options)


def server_definitions(request: dict) -> list[dict]:
    """The request's server tools, without the cache breakpoint that the last tool may carry."""
    return [
        {key: value for key, value in tool.items() if key != "cache_control"}
        for tool in request.get("tools", []) if tool.get("name") in server_tools.SERVER_TOOL_NAMES
    ]


def reply_in(conversation, content=(), model=SONNET) -> Message:
    """A question and its reply (`content`), the reply the end of the active path."""
    user = conversation.messages.create(role=Message.Role.USER, content=[{"type": "text", "text": "hi"}])
    reply = conversation.messages.create(
        role=Message.Role.ASSISTANT, parent=user, content=list(content), model=model,
        status=Message.Status.COMPLETE,
    )
    conversation.current_leaf = reply
    conversation.save(update_fields=["current_leaf"])
    return reply


# --- what a request offers -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_server_tool_is_off_until_an_admin_turns_it_on(conversation):
    reply = reply_in(conversation)
    assert server_definitions(request_build(conversation, reply=reply)) == []

    ToolSetting.objects.create(name="web_fetch", enabled=False)
    assert server_definitions(request_build(conversation, reply=reply)) == []

    ToolSetting.objects.create(name="code_execution", enabled=True)
    assert server_definitions(request_build(conversation, reply=reply)) == [
        {"type": "code_execution_20250825", "name": "code_execution"}
    ]


@pytest.mark.django_db
def test_web_search_goes_with_its_domains_its_limit_and_the_users_location(conversation, owner):
    web_search_on(allowed_domains=["example.com", "docs.example.org"], max_uses=3)
    owner.location_city, owner.location_region, owner.location_country = "Wellington", "Wellington", "NZ"
    owner.time_zone = "Pacific/Auckland"
    owner.save()
    conversation.refresh_from_db()

    request = request_build(conversation, reply=reply_in(conversation))

    assert server_definitions(request) == [{
        "type": "web_search_20250305", "name": "web_search", "max_uses": 3,
        "allowed_domains": ["example.com", "docs.example.org"],
        "user_location": {"type": "approximate", "city": "Wellington", "region": "Wellington", "country": "NZ",
                          "timezone": "Pacific/Auckland"},
    }]


@pytest.mark.django_db
def test_blocked_domains_are_sent_and_no_location_when_the_user_gave_none(conversation):
    ToolSetting.objects.create(name="web_fetch", enabled=True, options={"blocked_domains": ["bad.example"]})
    web_search_on()

    definitions = server_definitions(request_build(conversation, reply=reply_in(conversation)))

    assert definitions == [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": server_tools.DEFAULT_MAX_USES},
        {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": server_tools.DEFAULT_MAX_USES,
         "blocked_domains": ["bad.example"]},
    ]


@pytest.mark.django_db
def test_a_model_that_does_not_support_a_server_tool_is_not_offered_it(conversation):
    web_search_on()
    ToolSetting.objects.create(name="code_execution", enabled=True)
    reply = reply_in(conversation)
    parts = request_parts(conversation, reply=reply)
    searching_only = dataclasses.replace(MODELS_BY_ID[SONNET], server_tools=("web_search",))
    neither = dataclasses.replace(MODELS_BY_ID[SONNET], server_tools=())

    assert [tool["name"] for tool in server_definitions(request_assemble(parts, model=searching_only))] == [
        "web_search"
    ]
    assert server_definitions(request_assemble(parts, model=neither)) == []


@pytest.mark.django_db
def test_the_picker_says_which_server_tools_each_model_supports(client, owner):
    client.force_login(owner)

    page = client.get(reverse("home")).content.decode()

    assert f'value="{SONNET}"' in page
    assert 'data-server-tools="web search, web fetch, code execution"' in page


# --- the history -----------------------------------------------------------------------------------------------


def test_server_tool_blocks_go_back_unchanged_in_the_assistant_turn():
    turns = reply_turns([{"type": "text", "text": "Let me look."}, SEARCH, SEARCH_RESULT,
                         {"type": "text", "text": "Tides are high at noon."}])

    assert [turn["role"] for turn in turns] == ["assistant"]
    assert turns[0]["content"][1] == SEARCH
    assert turns[0]["content"][2] == SEARCH_RESULT  # encrypted_content as it came


def test_a_server_tool_call_cut_off_before_its_result_is_left_out_unless_the_turn_was_paused():
    blocks = [{"type": "text", "text": "Let me look."}, SEARCH]

    assert [block["type"] for block in reply_turns(blocks)[0]["content"]] == ["text"]
    assert [block["type"] for block in reply_turns(blocks, paused=True)[0]["content"]] == [
        "text", "server_tool_use"
    ]


@pytest.mark.django_db
def test_a_paused_turn_goes_back_as_the_last_assistant_turn(conversation):
    parts = request_parts(conversation, reply=reply_in(conversation))
    blocks = [SEARCH, SEARCH_RESULT, {"type": "text", "text": "The tides, so far: "}]

    resumed = request_assemble(parts, model=MODELS_BY_ID[SONNET], reply_blocks=blocks, resuming=True)
    fresh = request_assemble(parts, model=MODELS_BY_ID[SONNET], reply_blocks=blocks)

    assert resumed["messages"][-1]["role"] == "assistant"
    assert [block["type"] for block in resumed["messages"][-1]["content"]] == [
        "server_tool_use", "web_search_tool_result", "text"
    ]
    assert resumed["messages"][-1]["content"][-1]["text"] == "The tides, so far:"  # the API refuses a trailing space
    assert blocks[-1]["text"] == "The tides, so far: "  # the reply itself keeps it
    assert fresh["messages"][-1]["role"] == "user"


@pytest.mark.django_db
def test_the_markdown_export_names_the_search_and_its_sources(client, owner, conversation):
    reply_in(conversation, [SEARCH, SEARCH_RESULT, {"type": "text", "text": "High tide is at noon."}])
    client.force_login(owner)

    response = client.get(reverse("conversation_export_markdown", args=[conversation.pk]))
    exported = b"".join(response.streaming_content).decode()

    assert '> Server tool: web_search {"query": "tides"}' in exported
    assert "> Source: Tides (https://example.com/tides)" in exported


def test_the_next_request_of_a_reply_goes_on_in_its_code_execution_container():
    with_code = {"tools": [{"type": "code_execution_20250825", "name": "code_execution"}], "messages": []}
    without = {"tools": [{"type": "web_search_20250305", "name": "web_search"}], "messages": []}

    server_tools.container_reuse(with_code, "container_abc")
    server_tools.container_reuse(without, "container_abc")

    assert with_code["container"] == "container_abc"
    assert "container" not in without  # the API takes a container only with a container tool


# --- money ------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_ledger_prices_searches_beside_the_tokens(owner, conversation):
    usage = TokenUsage(input_tokens=1_000, output_tokens=200)
    request = UpstreamRequest(
        model=SONNET, attempts=[UpstreamAttempt(http_status=200)], usage=usage, stop_reason="end_turn",
        server_tool_use={"web_search_requests": 3, "web_fetch_requests": 1},
    )

    [row] = ledger_record([request], user_id=owner.pk, conversation_id=conversation.pk, message=None,
                          settle_key="money")

    tokens = usage_cost(usage, billing_selectors.price_for_model(SONNET))
    assert row.server_tool_use == {"web_search_requests": 3, "web_fetch_requests": 1}
    assert row.server_tool_cost == Decimal("0.03")  # $10 per 1,000 searches; fetches cost only their tokens
    assert row.cost == tokens + Decimal("0.03")


@pytest.mark.django_db
def test_the_usage_page_says_what_server_tools_cost(client, owner, conversation):
    request = UpstreamRequest(model=SONNET, attempts=[UpstreamAttempt(http_status=200)],
                              usage=TokenUsage(input_tokens=10), server_tool_use={"web_search_requests": 12})
    ledger_record([request], user_id=owner.pk, conversation_id=conversation.pk, message=None, settle_key="page")
    client.force_login(owner)

    page = client.get(reverse("usage")).content.decode()

    assert "Of which $0.1200 for server tools" in page


@pytest.mark.django_db
def test_the_reservation_covers_every_search_the_reply_may_make_once_per_reply(owner, conversation, settings):
    def held() -> Decimal:
        return billing_services.request_admit(
            user=owner, conversation=conversation, text="Hello", model=SONNET, max_tokens=4096
        ).amount

    without = held()
    web_search_on(max_uses=4)
    ToolSetting.objects.create(name="web_fetch", enabled=True, options={"max_uses": 9})  # fetches are free

    # max_uses is per reply, however many requests (CHAT_TOOL_MAX_ROUNDS + 1) the reply may make.
    assert settings.CHAT_TOOL_MAX_ROUNDS > 0
    assert held() == without + 4 * Decimal("0.01")


# --- the admin's options ----------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("data", "error"), [
    ({"allowed_domains": "example.com", "blocked_domains": "bad.example"}, "not both"),
    ({"allowed_domains": "https://example.com/path"}, "Not a hostname"),
    ({"allowed_domains": "exa mple"}, "Not a hostname"),
    ({"max_uses": "21"}, "less than or equal to 20"),
    ({"max_uses": "0"}, "greater than or equal to 1"),
])
def test_the_admin_form_refuses_options_the_api_would_refuse(data, error):
    form = ToolSettingForm(data={"name": "web_search", "enabled": "on", **data})

    assert not form.is_valid()
    assert error in str(form.errors)


@pytest.mark.django_db
def test_the_admin_form_stores_clean_options_and_refuses_them_for_a_client_tool():
    form = ToolSettingForm(data={
        "name": "web_search", "enabled": "on", "allowed_domains": "Example.com\ndocs.example.org", "max_uses": "7",
    })
    assert form.is_valid(), form.errors
    row = form.save()
    assert row.options == {"allowed_domains": ["example.com", "docs.example.org"], "max_uses": 7}

    client_tool = ToolSettingForm(data={"name": "calculator", "enabled": "on", "max_uses": "3"})
    assert not client_tool.is_valid()
    code = ToolSettingForm(data={"name": "code_execution", "enabled": "on", "allowed_domains": "example.com"})
    assert not code.is_valid() and "takes no domain lists" in str(code.errors)
    code = ToolSettingForm(data={"name": "code_execution", "enabled": "on", "max_uses": "3"})
    assert not code.is_valid() and "takes no limit on uses" in str(code.errors)


@pytest.mark.django_db
def test_the_admin_lists_each_server_tools_options(client, django_user_model):
    web_search_on(allowed_domains=["example.com"], max_uses=3)
    admin_user = django_user_model.objects.create_superuser(username="admin", password="a-long-passphrase-3")
    client.force_login(admin_user)

    page = client.get(reverse("admin:chat_toolsetting_changelist")).content.decode()

    assert "allowed: example.com · max uses: 3" in page


# --- the user's location --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_settings_page_saves_the_approximate_location(client, owner):
    client.force_login(owner)

    response = client.post(reverse("user_settings"), {
        "default_model": "auto", "system_prompt": "", "time_zone": "Europe/Berlin", "theme": "",
        "location_city": " Berlin ", "location_region": "Berlin", "location_country": "DE",
    })

    assert response.status_code == 302
    owner.refresh_from_db()
    assert server_tools.user_location(owner) == {
        "type": "approximate", "city": "Berlin", "region": "Berlin", "country": "DE", "timezone": "Europe/Berlin",
    }


@pytest.mark.django_db
def test_the_settings_page_refuses_a_country_that_is_not_an_iso_code(client, owner):
    client.force_login(owner)

    response = client.post(reverse("user_settings"), {
        "default_model": "auto", "system_prompt": "", "time_zone": "Europe/Berlin", "theme": "",
        "location_country": "Germany",
    })

    assert response.status_code == 200
    owner.refresh_from_db()
    assert owner.location_country == ""


# --- produced files -----------------------------------------------------------------------------------------------


def code_result(file_id: str) -> list[dict]:
    return [
        {"type": "server_tool_use", "id": "srvtoolu_9", "name": "bash_code_execution",
         "input": {"command": "python make_chart.py"}},
        {"type": "bash_code_execution_tool_result", "tool_use_id": "srvtoolu_9", "content": {
            "type": "bash_code_execution_result", "stdout": "saved", "stderr": "", "return_code": 0,
            "content": [{"type": "bash_code_execution_output", "file_id": file_id}],
        }},
    ]


@pytest.fixture
def produced(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.OFFLINE_MODEL_FILES_DIR = tmp_path / "offline-files"
    return store_produced_file("chart.csv", "text/csv", b"x,y\n1,2\n")


@pytest.mark.django_db(transaction=True)
def test_the_owner_downloads_a_file_code_execution_produced(client, owner, conversation, produced):
    reply = reply_in(conversation, code_result(produced))
    client.force_login(owner)

    response = client.get(reverse("produced_file", args=[reply.pk, produced]))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"x,y\n1,2\n"
    assert response["Content-Disposition"].startswith("attachment")
    assert 'filename="chart.csv"' in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    # Kept once downloaded: served from here even when the API no longer has it.
    assert server_files.produced_file_stored(owner.pk, produced) is not None


@pytest.mark.django_db(transaction=True)
def test_an_outsider_and_a_file_the_reply_did_not_produce_get_404(client, owner, outsider, conversation, produced):
    reply = reply_in(conversation, code_result(produced))
    other = store_produced_file("other.txt", "text/plain", b"not this reply's")

    client.force_login(outsider)
    assert client.get(reverse("produced_file", args=[reply.pk, produced])).status_code == 404
    client.force_login(owner)
    assert client.get(reverse("produced_file", args=[reply.pk, other])).status_code == 404
    assert client.get(reverse("produced_file", args=[reply.pk + 99, produced])).status_code == 404
    assert server_files.produced_file_stored(owner.pk, produced) is None


# --- real turns through the offline model -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_a_web_search_step_is_kept_streamed_and_priced(socket_for, owner, conversation, offline_model_reset):
    await database_sync_to_async(web_search_on)(max_uses=2, allowed_domains=["example.com"])
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Search the web for the latest news about tides"})
    frames = await frames_until_final(socket)

    message = await reload(assistant_id(frames))
    sent = offline_model_reset.received[0]
    assert server_definitions(sent) == [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2,
                                         "allowed_domains": ["example.com"]}]
    kinds = [block["type"] for block in message.content]
    assert "server_tool_use" in kinds and "web_search_tool_result" in kinds
    call = next(block for block in message.content if block["type"] == "server_tool_use")
    result = next(block for block in message.content if block["type"] == "web_search_tool_result")
    assert call["name"] == "web_search" and call["input"].get("query")
    assert result["tool_use_id"] == call["id"]
    sources = result["content"]
    assert sources and all(source["url"].startswith("https://example.com/") for source in sources)
    assert all(source["encrypted_content"] for source in sources)
    parts = [part for frame in frames if frame["type"] == "delta" for part in frame["parts"]]
    assert any(part["type"] == "server_tool_use" and part.get("id") == call["id"] for part in parts)
    assert any(part["type"] == "web_search_tool_result" and part.get("content") == sources for part in parts)
    rows = await database_sync_to_async(lambda: list(ApiCall.objects.filter(message_id=message.pk)))()
    searches = sum(row.server_tool_use.get("web_search_requests", 0) for row in rows)
    assert searches >= 1
    row = rows[-1]
    tokens = usage_cost(
        TokenUsage(row.input_tokens, row.output_tokens, row.cache_read_input_tokens,
                   row.cache_creation_5m_input_tokens, row.cache_creation_1h_input_tokens),
        await database_sync_to_async(billing_selectors.price_for_model)(row.model),
    )
    assert row.cost == tokens + Decimal("0.01") * row.server_tool_use.get("web_search_requests", 0)
    assert message.cost == sum(row.cost for row in rows)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_the_users_location_goes_with_the_search_and_the_next_turn_sends_it_back_unchanged(socket_for, owner, conversation, offline_model_reset):
    await database_sync_to_async(web_search_on)()
    owner.location_city, owner.location_country = "Wellington", "NZ"
    await database_sync_to_async(owner.save)()
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Search the web for tides in Wellington"})
    first = await reload(assistant_id(await frames_until_final(socket)))

    await socket.send_json_to({"type": "send", "text": "Thanks"})
    await frames_until_final(socket)

    [search] = server_definitions(offline_model_reset.received[0])
    assert search["user_location"] == {"type": "approximate", "city": "Wellington", "country": "NZ",
                                       "timezone": owner.time_zone}
    history = offline_model_reset.received[-1]["messages"]
    sent_back = [block for turn in history if turn["role"] == "assistant" for block in turn["content"]]
    stored = {block.get("id") or block.get("tool_use_id"): block for block in first.content
              if block["type"] in ("server_tool_use", "web_search_tool_result")}
    for block in sent_back:
        if block["type"] == "web_search_tool_result":
            assert block["content"] == stored[block["tool_use_id"]]["content"]
    assert any(block["type"] == "web_search_tool_result" for block in sent_back)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_a_code_execution_step_with_a_produced_file_the_owner_can_download(
    socket_for, owner, outsider, conversation, produced, offline_model_reset
):
    await database_sync_to_async(ToolSetting.objects.create)(name="code_execution", enabled=True)
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Run python to make a csv file of the squares"})
    message = await reload(assistant_id(await frames_until_final(socket)))

    assert server_definitions(offline_model_reset.received[0]) == [
        {"type": "code_execution_20250825", "name": "code_execution"}
    ]
    runs = [block for block in message.content if block["type"] == "bash_code_execution_tool_result"]
    assert runs and runs[-1]["content"]["return_code"] == 0
    [file_id] = server_files.produced_file_ids(message.content)

    def download(user):
        client = Client()
        client.force_login(user)
        return client.get(reverse("produced_file", args=[message.pk, file_id]))

    mine = await database_sync_to_async(download)(owner)
    assert mine.status_code == 200 and mine["Content-Disposition"].startswith("attachment")
    assert b"".join(mine.streaming_content)  # the bytes the offline Files API holds for the produced file
    assert (await database_sync_to_async(download)(outsider)).status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_an_attachment_is_handed_to_code_execution_by_file_id(
    socket_for, owner, conversation, produced, settings, offline_model_reset
):
    settings.CHAT_FILES_API = "auto"
    await database_sync_to_async(ToolSetting.objects.create)(name="code_execution", enabled=True)
    [attachment] = await database_sync_to_async(uploaded)(owner, "notes.txt", b"alpha\nbeta\n")
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Use code execution to count the lines of my file",
                               "attachments": [attachment.pk]})
    message = await reload(assistant_id(await frames_until_final(socket)))

    blocks = offline_model_reset.received[0]["messages"][-1]["content"]
    document = next(block for block in blocks if block["type"] == "document")
    assert document["source"]["type"] == "file"
    assert {"type": "container_upload", "file_id": document["source"]["file_id"]} in blocks
    assert message.status == Message.Status.COMPLETE, message.error


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_a_paused_turn_is_continued_until_the_model_answers(socket_for, owner, conversation, offline_model_reset):
    await database_sync_to_async(web_search_on)()
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Search the web for tides, and search deeply"})
    message = await reload(assistant_id(await frames_until_final(socket)))

    first, second = offline_model_reset.received
    assert first["messages"][-1]["role"] == "user"
    paused = second["messages"][-1]
    assert paused["role"] == "assistant"  # the paused turn went back as it stood
    assert [block["type"] for block in paused["content"]][-2:] == ["server_tool_use", "web_search_tool_result"]
    assert (message.status, message.stop_reason) == ("complete", "end_turn")
    assert message.text.strip()  # the answer came in the continued response
    rows = await database_sync_to_async(lambda: list(ApiCall.objects.filter(message_id=message.pk).order_by("id")))()
    assert [row.stop_reason for row in rows] == ["pause_turn", "end_turn"]


# --- max_uses per reply -------------------------------------------------------------------------------------


async def searches_of_a_paused_reply(socket_for, owner, conversation, max_uses: int):
    """A reply of two requests (the offline model pauses a deep search after its searches, two here), with web
    search on at `max_uses`: what the offline model received, and the searches each request made."""
    await database_sync_to_async(web_search_on)(max_uses=max_uses)
    socket = await connected(socket_for, owner, conversation)
    text = 'Search the web for "tides" and "moon phases", and search deeply'
    await socket.send_json_to({"type": "send", "text": text})
    message = await reload(assistant_id(await frames_until_final(socket)))
    rows = await database_sync_to_async(
        lambda: list(ApiCall.objects.filter(message_id=message.pk).order_by("id"))
    )()
    assert [row.stop_reason for row in rows] == ["pause_turn", "end_turn"]
    return [row.server_tool_use.get("web_search_requests", 0) for row in rows]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_a_later_request_of_a_reply_offers_only_the_searches_left(
    socket_for, owner, conversation, offline_model_reset
):
    searches = await searches_of_a_paused_reply(socket_for, owner, conversation, max_uses=3)

    first, second = offline_model_reset.received
    assert [tool["max_uses"] for tool in server_definitions(first)] == [3]
    assert searches[0] == 2
    assert [tool["max_uses"] for tool in server_definitions(second)] == [1]
    assert sum(searches) <= 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_a_later_request_leaves_a_server_tool_out_once_the_reply_used_it_up(
    socket_for, owner, conversation, offline_model_reset
):
    searches = await searches_of_a_paused_reply(socket_for, owner, conversation, max_uses=2)

    first, second = offline_model_reset.received
    assert [tool["max_uses"] for tool in server_definitions(first)] == [2]
    assert searches == [2, 0]
    assert server_definitions(second) == []
    # The next reply starts from the admin's definitions again: the bytes of every reply's first request.
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Thanks"})
    await frames_until_final(socket)
    assert offline_model_reset.received[-1]["tools"][: len(first["tools"])] == first["tools"]


def test_the_definitions_take_off_what_the_reply_used_of_each_tool():
    choices = (server_tools.ServerToolChoice("web_search", max_uses=4),
               server_tools.ServerToolChoice("web_fetch", max_uses=2),
               server_tools.ServerToolChoice("code_execution"))
    supported = server_tools.SERVER_TOOL_NAMES

    used = server_tools.server_tool_use_added([{"web_search_requests": 1, "web_fetch_requests": 2},
                                               {"web_search_requests": 2}])
    definitions = server_tools.server_tool_definitions(choices, supported=supported, location=None, used=used)

    assert definitions == [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1},
                           {"type": "code_execution_20250825", "name": "code_execution"}]
