"""Import files made to hurt: each gets one clear sentence or a skip with its reason, never a 500, and costs
bounded memory and time (chat/imports/reading.py)."""

import io
import json
import zipfile

import pytest
from django.urls import reverse

from chat import imports
from chat.models import Conversation, Message
from tests.test_import import posted, texts, zipped

pytestmark = pytest.mark.django_db(transaction=True)


def claude_conversation(name: str, *texts_: str) -> dict:
    messages = [
        {
            "uuid": f"{name}-{n}",
            "sender": ("human", "assistant")[n % 2],
            "text": text,
            "content": [],
            "created_at": "2025-01-01T10:00:00Z",
        }
        for n, text in enumerate(texts_)
    ]
    return {"uuid": name, "name": name, "created_at": "2025-01-01T10:00:00Z", "chat_messages": messages}


def refusal(response) -> str:
    """The sentence the form shows under the file field."""
    assert response.status_code == 400
    return response.context["form"].errors["file"][0]


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        (b"\x89PNG\r\n\x1a\nnot an export", "This file is not JSON or a zip"),
        (b"", "The submitted file is empty."),
        (b"   \n", "This file is not JSON or a zip"),
        (b'"just a string"', "This JSON holds no conversations"),
        (b"[]", "The file holds no conversations."),
        (
            b'{"hello": "world"}',
            "This file is not a conversation exported from this app, claude.ai or ChatGPT.",
        ),
        (b'[{"chat_messages": [', "The file stops being valid JSON."),
        (
            b'{"format": "claude-chat-export", "version": 99, "conversation": {}, "messages": []}',
            "This conversation cannot be imported: it was exported by a newer version of this app",
        ),
        (b"PK\x03\x04 a zip that is not one", "This zip file is damaged"),
    ],
)
def test_a_file_with_nothing_to_import_is_refused_with_one_sentence(signed_in, content, sentence):
    assert refusal(posted(signed_in, content)).startswith(sentence)
    assert not Conversation.objects.exists()


def test_an_empty_file_is_refused_by_the_service_too(owner):
    with pytest.raises(imports.ImportRefused, match="^The file is empty.$"):
        imports.conversations_import(owner=owner, upload=io.BytesIO(b""))


def test_a_zip_without_conversations_json_is_refused(signed_in):
    response = posted(signed_in, zipped({"chat.html": b"<html></html>", "user.json": b"{}"}), "export.zip")

    assert refusal(response) == (
        "This zip holds no conversations.json: choose the .zip of a claude.ai or ChatGPT data export."
    )


def test_a_zip_bomb_is_refused_by_its_unpacked_size_before_it_is_unpacked(signed_in, settings):
    settings.IMPORT_MAX_UNCOMPRESSED_BYTES = 1024 * 1024
    bomb = zipped({"conversations.json": b"[" + b" " * (8 * 1024 * 1024) + b"]"})
    assert len(bomb) < 20_000  # eight megabytes of spaces pack into a few kilobytes

    assert refusal(posted(signed_in, bomb, "bomb.zip")) == (
        "Its conversations.json is 8.1 MB unpacked; an import can be at most 1 MB."
    )


def test_json_past_the_unpacked_cap_is_refused_as_it_is_read(signed_in, settings):
    """The JSON read in all is counted in front of the parser, whatever a zip declares or a file's size."""
    settings.IMPORT_MAX_UNCOMPRESSED_BYTES = 2000

    response = posted(signed_in, b"[" + b" " * 5000 + b"]")

    assert refusal(response) == "The file holds more than 0.1 MB of JSON; an import can hold at most that."


def test_a_file_that_passes_the_unpacked_cap_later_keeps_what_came_before(signed_in, settings):
    settings.IMPORT_MAX_UNCOMPRESSED_BYTES = 100_000
    first = json.dumps(claude_conversation("First", "a", "b"))

    response = posted(signed_in, f"[{first}, {' ' * 200_000}]".encode())

    assert "The file holds more than 0.1 MB of JSON" in response.content.decode()
    assert list(Conversation.objects.values_list("title", flat=True)) == ["First"]


def test_a_file_over_the_upload_cap_is_refused(signed_in, settings):
    settings.IMPORT_MAX_BYTES = 1000

    assert refusal(posted(signed_in, b"[" + b" " * 2000 + b"]")) == "An import file can be at most 0.1 MB."


def test_deep_nesting_is_refused_without_recursion(signed_in):
    deep = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000

    assert refusal(posted(signed_in, deep)) == (
        "This conversation cannot be imported: it is nested more than 64 levels deep."
    )


def test_a_deep_conversation_in_a_list_is_skipped_and_the_rest_imported(signed_in):
    deep = b"[" * 50_000 + b"]" * 50_000
    good = json.dumps(claude_conversation("Kept", "Hello", "Hi")).encode()

    response = posted(signed_in, b"[" + deep + b"," + good + b"]")

    assert (
        "Conversation 1: skipped because it is nested more than 64 levels deep." in response.content.decode()
    )
    assert list(Conversation.objects.values_list("title", flat=True)) == ["Kept"]


def test_a_conversation_over_the_size_cap_is_skipped_and_the_rest_imported(signed_in, settings):
    settings.IMPORT_MAX_CONVERSATION_BYTES = 100_000
    huge = claude_conversation("Huge", "x" * 300_000, "ok")

    response = posted(signed_in, json.dumps([huge, claude_conversation("Small", "Hello", "Hi")]).encode())

    assert "skipped because it is over 0.1 MB of JSON" in response.content.decode()
    assert list(Conversation.objects.values_list("title", flat=True)) == ["Small"]


def test_wrong_types_everywhere_are_skipped_or_defaulted_never_a_500(signed_in):
    this_app = {"format": "claude-chat-export", "version": 1}
    hostile = [
        42,
        None,
        "text",
        [],
        {},
        {**this_app, "conversation": [], "messages": {}},
        {**this_app, "version": True, "conversation": {}, "messages": []},
        {**this_app, "conversation": {"title": 5}, "messages": [7]},
        {**this_app, "conversation": {}, "messages": [{"id": [1], "role": "user", "content": []}]},
        {**this_app, "conversation": {}, "messages": [{"id": 1, "parent": 9, "role": "user", "content": []}]},
        {**this_app, "conversation": {}, "messages": [{"id": 1, "role": "system", "content": []}]},
        {**this_app, "conversation": {}, "messages": [{"id": 1, "role": "user", "content": "hi"}]},
        {"chat_messages": {"a": 1}},
        {"chat_messages": [1, "x", {"sender": ["human"]}, {"sender": "human", "text": {"t": 1}}]},
        {"mapping": []},
        {"mapping": {"a": 1, "b": {"message": "x"}, "c": {"parent": ["a"], "message": {"author": "user"}}}},
        {
            "title": ["t"],
            "create_time": "yesterday",
            "mapping": {
                "n": {
                    "message": {
                        "author": {"role": "user"},
                        "content": {"content_type": "text", "parts": "not a list"},
                    }
                }
            },
        },
        # Imported, with what is wrong in it left out or defaulted:
        {
            **this_app,
            "conversation": {
                "title": "Defaults",
                "model": 3,
                "thinking": "maximum",
                "current_leaf": {"x": 1},
                "created_at": "2025-13-45",
                "system_prompt": ["no"],
            },
            "messages": [
                {
                    "id": 1,
                    "parent": None,
                    "role": "user",
                    "created_at": 5,
                    "attachments": [{"id": [1]}, "x"],
                    "content": [
                        {"type": "text", "text": 5},
                        "x",
                        {"type": "attachment", "attachment_id": {"a": 1}},
                        {"type": "image", "source": {"type": "url", "url": "http://169.254.169.254/"}},
                        {"type": "text", "text": "Kept", "cache_control": {"type": "ephemeral"}, "extra": 1},
                    ],
                },
                {
                    "id": 2,
                    "parent": 1,
                    "role": "assistant",
                    "status": ["complete"],
                    "model": {"m": 1},
                    "first_token_ms": -5,
                    "duration_ms": 10**12,
                    "notices": [1, "A notice"],
                    "usage": "lots",
                    "content": [
                        {"type": "tool_use", "id": "t", "name": "calculator", "input": "2+2"},
                        {"type": "thinking", "thinking": "Hm", "signature": "forged"},
                        {"type": "text", "text": "Answer"},
                    ],
                },
            ],
        },
    ]

    response = posted(signed_in, json.dumps(hostile).encode())

    assert response.status_code == 200
    body = response.content.decode()
    assert "Imported 1 conversation, skipped 17" in body
    assert "skipped because its message 1 answers a message that does not come before it." in body
    imported = Conversation.objects.get()
    assert (imported.title, imported.thinking, imported.system_prompt) == ("Defaults", "off", "")
    question, answer = imported.messages.order_by("id")
    assert question.content[-1] == {"type": "text", "text": "Kept"}  # no cache_control, no unknown field
    assert not any(block.get("type") == "image" for block in question.content)  # no URL the model would fetch
    assert answer.content[1:] == [{"type": "thinking", "thinking": "Hm"}, {"type": "text", "text": "Answer"}]
    assert answer.content[0]["text"].startswith("_[")  # the tool call without an object input, a note
    assert (answer.status, answer.model, answer.first_token_ms, answer.duration_ms) == (
        "complete",
        "",
        None,
        None,
    )
    assert answer.notices == ["A notice"]
    assert answer.input_tokens == 0


def test_ten_thousand_conversations_stop_at_the_cap(signed_in, settings):
    settings.IMPORT_MAX_CONVERSATIONS = 20
    many = [claude_conversation(f"C{n}", "Hello", "Hi") for n in range(10_000)]

    response = posted(signed_in, json.dumps(many).encode())

    body = response.content.decode()
    assert "Imported 20 conversations" in body
    assert "The file holds more than 20 conversations; the first 20 were read." in body
    assert Conversation.objects.count() == 20


def test_a_conversation_with_too_many_messages_is_skipped(signed_in, settings):
    settings.IMPORT_MAX_MESSAGES = 3
    long = claude_conversation("Long", "1", "2", "3", "4")

    response = posted(signed_in, json.dumps([long, claude_conversation("Short", "1", "2")]).encode())

    assert "Long: skipped because it has 4 messages, over the 3 an import takes." in response.content.decode()
    assert list(Conversation.objects.values_list("title", flat=True)) == ["Short"]


def test_a_message_over_the_character_cap_is_cut_with_a_note(signed_in, settings):
    settings.IMPORT_MAX_MESSAGE_CHARS = 10

    posted(signed_in, json.dumps([claude_conversation("Cut", "abcdefghijklmnop", "ok")]).encode())

    question = Message.objects.get(role=Message.Role.USER)
    assert texts(question) == [
        "abcdefghij",
        "_[Cut on import: this message had 16 characters, and only the first 10 are kept.]_",
    ]


def test_a_file_that_breaks_off_keeps_the_conversations_before_the_break(signed_in):
    whole = json.dumps([claude_conversation("First", "a", "b"), claude_conversation("Second", "c", "d")])

    response = posted(signed_in, whole[:-40].encode())

    assert "The file stops being valid JSON after 1 conversation." in response.content.decode()
    assert list(Conversation.objects.values_list("title", flat=True)) == ["First"]


def test_text_a_database_refuses_is_stored_replaced(signed_in):
    posted(
        signed_in,
        b'[{"name": "N\\u0000ul", "chat_messages": [{"sender": "human", "text": "a\\ud800b\\u0000"}]}]',
    )

    imported = Conversation.objects.get()
    text = imported.messages.get().text
    assert imported.title == "N\ufffdul"
    assert text.endswith("b\ufffd") and "\x00" not in text
    text.encode("utf-8")  # no lone surrogate left: PostgreSQL's jsonb would refuse one


def test_times_in_the_future_are_taken_as_now(signed_in):
    future = {
        **claude_conversation("Future", "a", "b"),
        "created_at": "9999-01-01T00:00:00Z",
        "updated_at": "9999-01-01T00:00:00Z",
    }

    posted(signed_in, json.dumps([future]).encode())

    imported = Conversation.objects.get()
    assert imported.updated_at.year < 9999 and imported.created_at.year < 9999


def test_a_parent_cycle_in_a_chatgpt_mapping_is_left_out(signed_in):
    node = {"author": {"role": "user"}, "content": {"content_type": "text", "parts": ["Hi"]}}
    mapping = {
        "a": {"parent": None, "message": node},
        "b": {"parent": "c", "message": node},
        "c": {"parent": "b", "message": node},
    }

    response = posted(
        signed_in, json.dumps([{"title": "Loop", "mapping": mapping, "current_node": "b"}]).encode()
    )

    assert response.status_code == 302
    assert Conversation.objects.get().messages.count() == 1
    assert response["Location"] == reverse("conversation_detail", args=[Conversation.objects.get().pk])


def test_a_zip_member_under_a_folder_is_found(signed_in):
    archive = zipped(
        {"export/conversations.json": json.dumps([claude_conversation("Nested", "a", "b")]).encode()}
    )

    posted(signed_in, archive, "export.zip")

    assert Conversation.objects.get().title == "Nested"


def test_an_encrypted_zip_member_is_refused(signed_in):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("conversations.json", b"[]")
    data = bytearray(buffer.getvalue())
    data[6] |= 0x01  # the local header's "encrypted" flag
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= 0x01

    assert "cannot be unpacked" in refusal(posted(signed_in, bytes(data), "export.zip"))
