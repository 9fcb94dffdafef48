"""What an import keeps of this app's content blocks, checked down to their nested values, so that an edited
file cannot make every later request of the conversation fail; and one import at a time per user."""

import io
import json

import pytest
from transcripts import message_appended

from chat import imports
from chat.imports import formats
from chat.llm.offline.prompt import read_prompt
from chat.llm.request import request_build
from chat.models import Conversation
from tests.test_import import posted

pytestmark = pytest.mark.django_db(transaction=True)

THIS_APP = {"format": "claude-chat-export", "version": 1, "conversation": {"title": "Tools"}}


def exported(*messages: dict) -> bytes:
    return json.dumps({**THIS_APP, "messages": list(messages)}).encode()


def question(*content: dict) -> dict:
    return {
        "id": 1,
        "parent": None,
        "role": "user",
        "content": list(content) or [{"type": "text", "text": "Q"}],
    }


def answer(*content: dict) -> dict:
    return {"id": 2, "parent": 1, "role": "assistant", "status": "complete", "content": list(content)}


def is_note(block: dict) -> bool:
    return block["type"] == "text" and block["text"].startswith(formats.NOTE_START)


def imported_answer(owner, content: bytes):
    report = imports.conversations_import(owner=owner, upload=io.BytesIO(content))
    return report.imported[0].messages.get(role="assistant")


def test_a_tool_results_content_list_becomes_the_string_the_app_stores(owner):
    stored = imported_answer(
        owner,
        exported(
            question(),
            answer(
                {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"expression": "2+2"}},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "is_error": "no",
                    "content": [
                        {"type": "text", "text": "4"},
                        {"type": "image", "source": {"type": "url", "url": "http://169.254.169.254/"}},
                        {"type": "text", "text": {"nested": True}},
                        "loose",
                    ],
                },
                {"type": "text", "text": "Four."},
            ),
        ),
    )

    note = "[A part of this tool result that was not text was left out on import.]"
    assert stored.content[1] == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": f"4\n\n{note}\n\n{note}\n\n{note}",
    }  # and no `is_error` that is not a boolean


def test_citations_are_dropped_and_the_text_kept(owner):
    stored = imported_answer(
        owner,
        exported(
            question(),
            answer(
                {"type": "text", "text": "Cited.", "citations": [{"type": "char_location", "bogus": [1]}]}
            ),
        ),
    )

    assert stored.content == [{"type": "text", "text": "Cited."}]


def test_tool_blocks_the_api_would_refuse_become_notes(owner):
    stored = imported_answer(
        owner,
        exported(
            question(),
            answer(
                {"type": "tool_use", "id": "has spaces", "name": "calculator", "input": {}},
                {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"expression": "1"}},
                {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"expression": "2"}},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "1"},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "again"},
                {"type": "tool_result", "tool_use_id": "toolu_9", "content": "nobody asked"},
                {"type": "text", "text": "Done."},
            ),
        ),
    )

    kinds = [("note" if is_note(block) else block["type"]) for block in stored.content]
    assert kinds == ["note", "tool_use", "note", "tool_result", "note", "note", "text"]
    assert stored.content[1]["input"] == {"expression": "1"}


def test_a_users_message_keeps_text_only(owner):
    report = imports.conversations_import(
        owner=owner,
        upload=io.BytesIO(
            exported(
                question(
                    {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {}},
                    {"type": "thinking", "thinking": "mine"},
                    {"type": "text", "text": "Q"},
                ),
                answer({"type": "text", "text": "A"}),
            )
        ),
    )

    asked = report.imported[0].messages.get(role="user")
    assert [is_note(block) for block in asked.content] == [True, True, False]


def test_a_tool_result_past_the_character_cap_is_cut_and_its_call_stays_answered(owner, settings):
    settings.IMPORT_MAX_MESSAGE_CHARS = 5
    stored = imported_answer(
        owner,
        exported(
            question(),
            answer(
                {"type": "text", "text": "abcdef"},
                {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {}},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x" * 1000},
            ),
        ),
    )

    assert stored.content[:3] == [
        {"type": "text", "text": "abcde"},
        {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {}},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": ""},
    ]
    assert "1,006 characters" in stored.content[3]["text"]


def test_the_next_request_of_a_conversation_with_hostile_blocks_is_one_the_api_accepts(owner):
    report = imports.conversations_import(
        owner=owner,
        upload=io.BytesIO(
            exported(
                question({"type": "tool_result", "tool_use_id": "toolu_1", "content": "from the user"}),
                answer(
                    {"type": "text", "text": "Cited.", "citations": "broken"},
                    {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"expression": "2"}},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "image"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "orphan"},
                ),
            )
        ),
    )
    conversation = report.imported[0]
    message_appended(conversation, role="user", text="And now?")
    reply = message_appended(conversation, role="assistant", status="streaming")

    request = request_build(conversation, reply=reply)

    read_prompt({**request, "stream": True})  # the offline model checks the history as the API does
    assert [turn["role"] for turn in request["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]


# --- one import at a time per user --------------------------------------------------------------------------


def test_a_second_import_while_one_runs_is_refused_with_a_sentence(client, owner, outsider, monkeypatch):
    """The second import starts while the first is reading its file (from inside it, so no threads and no
    timing): the owner's is refused and writes nothing, another user's goes ahead."""
    seen = {}
    read = formats.draft_from

    def draft_while_another_starts(value):
        if not seen:
            client.force_login(owner)
            seen["owner"] = posted(client, exported(question(), answer({"type": "text", "text": "A"})))
            client.force_login(outsider)
            seen["outsider"] = posted(client, exported(question(), answer({"type": "text", "text": "B"})))
        return read(value)

    monkeypatch.setattr(formats, "draft_from", draft_while_another_starts)

    report = imports.conversations_import(
        owner=owner, upload=io.BytesIO(exported(question(), answer({"type": "text", "text": "First"})))
    )

    assert seen["owner"].status_code == 400
    assert seen["owner"].context["form"].errors["file"] == [imports.BUSY]
    assert seen["outsider"].status_code == 302
    assert len(report.imported) == 1
    assert Conversation.objects.filter(owner=owner).count() == 1
    assert Conversation.objects.filter(owner=outsider).count() == 1


def test_the_lock_is_released_after_an_import_and_after_a_refusal(client, owner):
    client.force_login(owner)

    assert posted(client, b"not json").status_code == 400
    first = posted(client, exported(question(), answer({"type": "text", "text": "A"})))
    second = posted(client, exported(question(), answer({"type": "text", "text": "B"})))

    assert (first.status_code, second.status_code) == (302, 302)
    assert Conversation.objects.filter(owner=owner).count() == 2
