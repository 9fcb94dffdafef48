"""What a turn no longer redoes: counting a request far from the window, building the tools, reading and
encoding the attachments. Each test counts the work (requests to the offline model, tools built, files read)."""

import pytest
from anthropic.lib.tools._beta_functions import BaseFunctionTool
from asgiref.sync import async_to_sync
from attachment_samples import image_bytes, pdf_bytes
from document_samples import uploaded
from test_consumer import connected, frames_until_final
from transcripts import message_appended

from chat import services
from chat.attachments import blocks
from chat.attachments import services as attachment_services
from chat.llm import context, tools
from chat.llm.client import anthropic_client
from chat.llm.registry import model_for
from chat.llm.request import request_assemble, request_build, request_parts
from chat.models import Message, ToolSetting

pytestmark = pytest.mark.django_db

COUNT_TOKENS = "/v1/messages/count_tokens"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def message_in(conversation, role, text):
    return message_appended(conversation, role=role, text=text)


def reply_to(conversation, text="Tell me about B-trees."):
    message_in(conversation, "user", text)
    return message_appended(conversation, role="assistant", status="streaming")


def answered(reply):
    """The reply is over (one may stream per conversation), so the next turn can start."""
    Message.objects.filter(pk=reply.pk).update(status="complete", content=[{"type": "text", "text": "Done."}])


def fitted_for(conversation, reply):
    parts = request_parts(conversation, reply=reply)
    model = model_for(conversation.model)

    async def fit():
        return await context.request_fit(
            anthropic_client(), parts, model, lambda left_out: request_assemble(parts, model=model, left_out=left_out)
        )

    return parts, async_to_sync(fit)()


# --- count_tokens only near the window ---------------------------------------------------------------------


def test_a_request_far_from_the_window_is_sent_without_a_count(conversation, offline_model_reset):
    reply = reply_to(conversation)

    _, fitted = fitted_for(conversation, reply)

    assert offline_model_reset.requests_by_path[COUNT_TOKENS] == 0
    assert fitted.tokens == context.request_estimate(fitted.request, attachment_tokens=0)
    assert fitted.messages_left_out == 0


def test_a_request_near_the_window_is_counted_once_and_sent_whole_when_it_fits(
    conversation, settings, offline_model_reset
):
    reply = reply_to(conversation)
    parts = request_parts(conversation, reply=reply)
    estimate = context.request_estimate(
        request_assemble(parts, model=model_for(conversation.model)), attachment_tokens=0
    )
    settings.CHAT_MAX_CONTEXT_TOKENS = settings.CHAT_MAX_OUTPUT_TOKENS + estimate  # the estimate fills the room

    _, fitted = fitted_for(conversation, reply)

    assert offline_model_reset.requests_by_path[COUNT_TOKENS] == 1
    assert fitted.tokens < estimate and fitted.messages_left_out == 0  # the API's own count, which fits


def test_attachments_count_by_their_stored_estimate_not_their_base64(conversation, owner, settings):
    message = message_appended(conversation, role="user", content=[])
    [pdf] = uploaded(owner, "big.pdf", pdf_bytes(["Page"] * 3))
    attachment_services.attachments_claim(attachments=[pdf], message=message)
    message.content = [blocks.reference_block(pdf.pk), {"type": "text", "text": "Summarise"}]
    message.save()
    reply = message_appended(conversation, role="assistant", status="streaming")
    pdf.refresh_from_db()

    parts, fitted = fitted_for(conversation, reply)

    without = context.request_estimate(fitted.request, attachment_tokens=0)
    assert parts.exchanges[0].attachment_tokens == pdf.tokens > 0
    assert fitted.tokens == without + pdf.tokens


@pytest.mark.django_db(transaction=True)
async def test_a_short_turn_makes_one_request_to_the_model_and_no_count(
    socket_for, owner, conversation, offline_model_reset, generations_drained
):
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Hello"})
    final = (await frames_until_final(socket))[-1]["message"]

    assert final["status"] == "complete"
    assert dict(offline_model_reset.requests_by_path) == {"/v1/messages": 1}


# --- tools built once per process ----------------------------------------------------------------------------


def test_tools_are_built_once_per_process_not_per_turn(conversation, owner, outsider, monkeypatch):
    built = []
    original = BaseFunctionTool.__init__
    monkeypatch.setattr(BaseFunctionTool, "__init__", lambda self, *a, **k: built.append(a) or original(self, *a, **k))
    theirs = services.conversation_create(owner=outsider)

    first = request_build(conversation, reply=reply_to(conversation))
    second = request_build(theirs, reply=reply_to(theirs))

    assert built == []
    assert [tool["name"] for tool in first["tools"]] == list(tools.TOOL_NAMES)
    assert first["tools"] == second["tools"]


def test_each_reply_gets_its_tools_bound_to_whom_it_answers_for(owner, outsider, conversation):
    tokyo = tools.tools_for(tools.ToolContext(owner.pk, "Asia/Tokyo", conversation.pk), ["current_time"])[0]
    utc = tools.tools_for(tools.ToolContext(outsider.pk, "UTC", conversation.pk), ["current_time"])[0]

    assert tokyo.call({}).endswith(", Asia/Tokyo)") and utc.call({}).endswith(", UTC)")


async def test_a_tool_that_needs_a_context_never_runs_without_one():
    call = {"type": "tool_use", "id": "1", "name": "search_conversations", "input": {"query": "secret"}}

    [result] = await tools.tool_results([call], [tools.search_conversations])

    assert result["is_error"] and result["content"] == "The tool failed unexpectedly."


def test_an_admin_switching_a_tool_off_takes_effect_on_the_next_turn(conversation):
    first = reply_to(conversation)
    before = request_build(conversation, reply=first)
    answered(first)
    ToolSetting.objects.create(name="search_conversations", enabled=False)

    after = request_build(conversation, reply=reply_to(conversation, "And B+ trees?"))

    assert [tool["name"] for tool in before["tools"]] == ["calculator", "current_time", "search_conversations"]
    assert [tool["name"] for tool in after["tools"]] == ["calculator", "current_time"]


# --- attachments read once per process ----------------------------------------------------------------------


def attachment_turn(conversation, owner, uploads):
    message = message_appended(conversation, role="user", content=[])
    attachments = [attachment for n, d in uploads for attachment in uploaded(owner, n, d)]
    attachment_services.attachments_claim(attachments=attachments, message=message)
    message.content = [blocks.reference_block(a.pk) for a in attachments] + [{"type": "text", "text": "See"}]
    message.save()
    message_in(conversation, "assistant", "Seen.")


def test_two_turns_read_each_attachment_file_once(conversation, owner, monkeypatch):
    attachment_turn(conversation, owner, [("a.png", image_bytes()), ("b.pdf", pdf_bytes(["Doc"]))])
    reads = []
    original = blocks.file_read
    monkeypatch.setattr(blocks, "file_read", lambda name: reads.append(name) or original(name))

    reply = reply_to(conversation, "What is in them?")
    first = request_build(conversation, reply=reply)
    answered(reply)
    second = request_build(conversation, reply=reply_to(conversation, "And now?"))

    assert len(reads) == 2 and len(set(reads)) == 2
    sources = [[block["source"] for block in request["messages"][0]["content"][:2]] for request in (first, second)]
    assert sources[0] == sources[1] and [source["media_type"] for source in sources[0]] == [
        "image/png", "application/pdf"
    ]


def test_the_encoded_files_stay_within_their_byte_budget():
    cache = blocks.EncodedFiles(max_bytes=10)
    cache.put(("a",), "1234")
    cache.put(("b",), "5678")
    cache.get(("a",))  # a is now the most recently used
    cache.put(("c",), "90ab")
    cache.put(("huge",), "x" * 11)

    assert (cache.get(("a",)), cache.get(("b",)), cache.get(("c",)), cache.get(("huge",))) == (
        "1234", None, "90ab", None
    )
    assert cache.size == 8


def test_the_models_list_is_read_from_the_shared_cache_once_per_process_interval(settings, monkeypatch):
    from django.core.cache import cache

    from chat.llm import registry
    from chat.llm.catalog import MODELS

    settings.ANTHROPIC_API_KEY = "test-key"
    cache.set(registry.CACHE_KEY, MODELS[:2], 60)
    reads = []
    original_get = cache.get
    monkeypatch.setattr(cache, "get", lambda *a, **kw: reads.append(a) or original_get(*a, **kw))

    first = registry.models_offered()
    again = [registry.models_offered() for _ in range(5)]

    assert first == MODELS[:2] and all(models == first for models in again)
    assert len(reads) == 1
