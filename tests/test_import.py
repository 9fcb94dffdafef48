"""Import (chat/imports/, docs/import.md): this app's JSON export round trip, claude.ai's and ChatGPT's data
exports, the page, and who may see what was imported."""

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from chat import imports
from chat.imports import formats
from chat.models import ApiCall, Conversation, Message, TitleSource
from chat.selectors import Tree
from tests.test_exports import add_reply, add_turn, attach, downloaded, export_url

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLES = Path(__file__).parent / "import_samples"
IMPORT_URL = "/conversations/import/"


def upload(content: bytes, name: str = "conversations.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def posted(client, content: bytes, name: str = "conversations.json"):
    return client.post(IMPORT_URL, {"file": upload(content, name)})


def texts(message: Message) -> list[str]:
    return [block["text"] for block in message.content if block["type"] == "text"]


def active_path(conversation: Conversation) -> list[Message]:
    path = Tree.of(conversation.pk).path_to(conversation.current_leaf_id)
    by_id = Message.objects.in_bulk(path)
    return [by_id[pk] for pk in path]


# --- this app's export: the round trip ----------------------------------------------------------------------


def branching_conversation(conversation) -> Conversation:
    """A tree with every kind of version: a regenerated reply, an edited first message, a stopped reply, tool
    use, thinking and an attachment; its active path runs through the regenerated reply."""
    conversation.title = "Plans"
    conversation.system_prompt = "Answer in French."
    conversation.thinking = "low"
    conversation.save()
    first, _ = add_turn(conversation, "First question")
    attach(first)
    better = add_reply(first, text="A better first answer")
    edited = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=[{"type": "text", "text": "First, edited"}]
    )
    stopped = add_reply(edited, status=Message.Status.STOPPED, text="Half an ans")
    Message.objects.filter(pk=stopped.pk).update(error="Stopped.", stop_reason="", duration_ms=900)
    conversation.current_leaf = better
    conversation.save(update_fields=["current_leaf"])
    add_turn(conversation, "Second question")
    conversation.refresh_from_db()
    return conversation


def positions(exported: dict) -> dict:
    """The export with each message id replaced by its position in the file, and what an import cannot
    carry over set aside: the ids (the rows are new), `exported_at`, the usage and cost (nothing was spent),
    and the attachments (an export holds no files: each becomes a note)."""
    index = {message["id"]: number for number, message in enumerate(exported["messages"])}
    conversation = {
        **exported["conversation"],
        "id": None,
        "current_leaf": index[exported["conversation"]["current_leaf"]],
    }
    messages = []
    for message in exported["messages"]:
        message = {
            **message,
            "id": index[message["id"]],
            "parent": index.get(message["parent"]),
            "attachments": [],
        }
        message["content"] = [
            {"type": "attachment"}
            if block["type"] == "attachment" or block.get("text", "").startswith("_[")
            else block
            for block in message["content"]
        ]
        if message["role"] == "assistant":
            message["usage"] = {name: 0 for name in message["usage"]}
            message["cost"] = "0.000000"
        messages.append(message)
    return {**exported, "exported_at": None, "conversation": conversation, "messages": messages}


def test_an_export_imported_and_exported_again_is_the_same_conversation(client, owner, conversation):
    original = branching_conversation(conversation)
    client.force_login(owner)
    first_export = downloaded(client, export_url(original, "json"))

    response = posted(client, first_export, "Plans.json")

    imported = Conversation.objects.exclude(pk=original.pk).get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "conversation_detail", args=[imported.pk]
    )
    second_export = downloaded(client, export_url(imported, "json"))
    before, after = json.loads(first_export), json.loads(second_export)
    assert positions(after) == positions(before)
    assert (after["conversation"]["created_at"], after["conversation"]["updated_at"]) == (
        before["conversation"]["created_at"],
        before["conversation"]["updated_at"],
    )
    assert [m["created_at"] for m in after["messages"]] == [m["created_at"] for m in before["messages"]]
    place_before = {m["id"]: n for n, m in enumerate(before["messages"])}
    place_after = {m["id"]: n for n, m in enumerate(after["messages"])}
    assert [place_after[m.pk] for m in active_path(imported)] == [
        place_before[m.pk] for m in active_path(original)
    ]
    assert len(active_path(imported)) == 4
    [note] = [
        b["text"]
        for b in after["messages"][0]["content"]
        if b["type"] == "text" and b["text"].startswith("_[")
    ]
    assert note == "_[notes.pdf (pdf) was attached; an export does not hold files, so it was not imported.]_"
    assert (imported.owner, imported.title, imported.title_source) == (owner, "Plans", TitleSource.USER)
    assert (imported.system_prompt, imported.thinking, imported.tree_version) == (
        "Answer in French.",
        "low",
        0,
    )


def test_an_import_spends_nothing(client, owner, conversation):
    branching_conversation(conversation)
    client.force_login(owner)
    exported = downloaded(client, export_url(conversation, "json"))
    calls = ApiCall.objects.count()

    posted(client, exported)

    imported = Conversation.objects.exclude(pk=conversation.pk).get()
    assert ApiCall.objects.count() == calls
    replies = imported.messages.filter(role=Message.Role.ASSISTANT)
    assert {(r.input_tokens, r.output_tokens, r.cache_read_input_tokens, r.cost) for r in replies} == {
        (0, 0, 0, 0)
    }
    assert not imported.messages.filter(status=Message.Status.STREAMING).exists()
    assert not imported.messages.exclude(attachments=None).exists()  # no rows naming files it does not have


def test_a_reply_exported_while_streaming_is_imported_as_interrupted(client, owner, conversation):
    add_turn(conversation, status=Message.Status.STREAMING)
    Message.objects.filter(status=Message.Status.STREAMING).update(heartbeat_at=datetime.now(UTC))
    client.force_login(owner)

    posted(client, downloaded(client, export_url(conversation, "json")))

    reply = Message.objects.filter(role=Message.Role.ASSISTANT).exclude(conversation=conversation).get()
    assert reply.status == Message.Status.INTERRUPTED
    assert reply.error == formats.STILL_WRITING


def test_a_model_not_offered_here_gives_way_to_the_owners_default(client, owner, conversation, settings):
    add_turn(conversation)
    client.force_login(owner)
    exported = json.loads(downloaded(client, export_url(conversation, "json")))
    exported["conversation"]["model"] = "claude-retired-1"

    posted(client, json.dumps(exported).encode())

    imported = Conversation.objects.exclude(pk=conversation.pk).get()
    assert imported.model == settings.CHAT_DEFAULT_MODEL
    reply = imported.messages.get(role=Message.Role.ASSISTANT)
    assert reply.model == "claude-test"  # what the reply says it was


def test_a_list_of_exports_imports_each(client, owner, conversation):
    add_turn(conversation, "One")
    client.force_login(owner)
    exported = json.loads(downloaded(client, export_url(conversation, "json")))
    second = {**exported, "conversation": {**exported["conversation"], "title": "Two"}}

    response = posted(client, json.dumps([exported, second]).encode())

    assert response.status_code == 200
    assert "Imported 2 conversations" in response.content.decode()
    assert sorted(Conversation.objects.exclude(pk=conversation.pk).values_list("title", flat=True)) == [
        "One",
        "Two",
    ]


def test_storing_costs_the_same_queries_for_a_short_and_a_long_conversation(owner, django_assert_num_queries):
    def draft(length: int) -> formats.Draft:
        messages = [
            formats.DraftMessage(
                key=n,
                parent=n - 1 if n else None,
                role=("user", "assistant")[n % 2],
                content=[{"type": "text", "text": f"Message {n}"}],
            )
            for n in range(length)
        ]
        return formats.Draft(title="T", messages=messages, leaf=length - 1)

    # BEGIN, the conversation, its messages, their parents and times, its leaf and times, COMMIT.
    with django_assert_num_queries(6):
        imports.conversation_store(owner=owner, draft=draft(2))
    with django_assert_num_queries(6):
        long = imports.conversation_store(owner=owner, draft=draft(40))  # within one batch on SQLite

    assert long.current_leaf.text == "Message 39"
    assert len(active_path(long)) == 40


# --- claude.ai ----------------------------------------------------------------------------------------------


def test_a_claude_ai_export_is_imported_with_its_branches(client, owner):
    client.force_login(owner)
    sample = (SAMPLES / "claude_ai_conversations.json").read_bytes()

    response = posted(
        client, zipped({"users.json": b"[]", "conversations.json": sample}), "data-2025-03-04.zip"
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "Imported 2 conversations, skipped 1" in body
    assert "Empty chat: skipped because it has no messages." in body
    report, reversing = (
        Conversation.objects.order_by("created_at")[1],
        Conversation.objects.order_by("created_at")[0],
    )
    assert (report.title, report.title_source) == ("Quarterly report outline", TitleSource.USER)
    assert report.created_at == datetime(2025, 3, 4, 9, 12, 45, 123456, tzinfo=UTC)
    assert report.updated_at == datetime(2025, 3, 4, 9, 20, 11, 654321, tzinfo=UTC)
    first, reply, regenerated, follow_up, last = report.messages.order_by("id")
    assert texts(first) == [
        (
            "Attached: notes.txt (its text, as claude.ai read it)\n\n"
            "Revenue up 12%. Churn down to 3%. Hiring: two engineers."
        ),
        "_[chart.png was attached; files are not imported.]_",
        "Outline a quarterly report from these notes.",
    ]
    assert reply.content == [  # thinking left out, the tool call a note, the text kept
        {"type": "text", "text": "_[Used the tool web_search; tool calls are not imported.]_"},
        {"type": "text", "text": "1. Revenue\n2. Churn\n3. Hiring"},
    ]
    assert reply.parent_id == regenerated.parent_id == first.pk  # two versions of the reply
    assert [m.pk for m in active_path(report)] == [first.pk, regenerated.pk, follow_up.pk, last.pk]
    assert {m.status for m in (first, reply, regenerated, follow_up, last)} == {Message.Status.COMPLETE}
    assert {m.model for m in (reply, regenerated, last)} == {""}  # claude.ai's export does not say
    assert (reversing.title, reversing.title_source) == (
        "How do I reverse a list in Python?",
        TitleSource.FIRST_MESSAGE,
    )
    assert [texts(m) for m in active_path(reversing)] == [
        ["How do I reverse a list in Python?"],
        ["Use `items.reverse()` or `items[::-1]`."],
    ]


# --- ChatGPT ------------------------------------------------------------------------------------------------


def test_a_chatgpt_export_is_imported_as_the_tree_its_page_shows(client, owner):
    client.force_login(owner)
    sample = (SAMPLES / "chatgpt_conversations.json").read_bytes()

    response = posted(
        client, zipped({"chat.html": b"<html></html>", "conversations.json": sample}), "export.zip"
    )

    imported = Conversation.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "conversation_detail", args=[imported.pk]
    )
    assert imported.title == "Sourdough starter"
    assert imported.created_at == datetime.fromtimestamp(1717236000.123456, UTC)
    question, first_answer, searched_answer, follow_up, answer = imported.messages.order_by("id")
    # The system message, the hidden context, the browsing call and its result, and the reasoning are gone;
    # what they answered is answered by the message above them.
    assert texts(question) == [
        "_[An image or file was attached; it was not imported.]_",
        "How do I keep my starter alive?",
    ]
    assert first_answer.parent_id == searched_answer.parent_id == question.pk
    assert (follow_up.parent_id, answer.parent_id) == (searched_answer.pk, follow_up.pk)
    assert [m.pk for m in active_path(imported)] == [question.pk, searched_answer.pk, follow_up.pk, answer.pk]
    assert (first_answer.model, searched_answer.model, answer.model) == ("gpt-4o", "gpt-4o-mini", "o3")
    assert imported.model not in ("gpt-4o", "o3")  # the conversation goes on with a model offered here
    assert texts(answer) == ["Once a week is enough in the fridge."]


def test_a_current_node_that_was_left_out_ends_the_path_at_its_nearest_kept_ancestor(owner):
    sample = json.loads((SAMPLES / "chatgpt_conversations.json").read_text())
    sample[0]["current_node"] = "r-1"  # the reasoning, which is not imported

    imports.conversations_import(owner=owner, upload=io.BytesIO(json.dumps(sample).encode()))

    imported = Conversation.objects.get()
    assert imported.current_leaf.text == "And in the fridge?"


# --- the page -----------------------------------------------------------------------------------------------


def test_the_page_names_the_three_sources(client, owner):
    client.force_login(owner)

    response = client.get(IMPORT_URL)

    body = response.content.decode()
    assert response.status_code == 200
    assert "claude.ai" in body and "ChatGPT" in body and "Export → JSON" in body
    assert 'enctype="multipart/form-data"' in body


def test_the_sidebar_links_to_the_page(client, owner):
    client.force_login(owner)

    assert f'href="{IMPORT_URL}"' in client.get(reverse("home")).content.decode()


def test_the_settings_page_links_to_the_page(client, owner):
    client.force_login(owner)

    assert f'href="{IMPORT_URL}"' in client.get(reverse("user_settings")).content.decode()


def test_it_requires_login(client):
    response = client.get(IMPORT_URL)

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_it_checks_the_csrf_token(owner):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = posted(client, (SAMPLES / "chatgpt_conversations.json").read_bytes())

    assert response.status_code == 403
    assert not Conversation.objects.exists()


def test_an_import_is_always_the_signed_in_users_and_only_theirs_to_see(client, owner, outsider):
    client.force_login(owner)
    sample = (SAMPLES / "chatgpt_conversations.json").read_bytes()

    client.post(IMPORT_URL, {"file": upload(sample), "owner": outsider.pk, "user": outsider.pk})

    imported = Conversation.objects.get()
    assert imported.owner == owner
    client.force_login(outsider)
    assert client.get(reverse("conversation_detail", args=[imported.pk])).status_code == 404
    assert client.get(export_url(imported, "json")).status_code == 404
    assert imported.title not in client.get(reverse("home")).content.decode()
