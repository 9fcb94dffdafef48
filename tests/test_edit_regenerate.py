"""Regenerate a reply, edit a message: a new version beside the old ones, which are kept with their ledger rows."""

import pytest
from channels.db import database_sync_to_async
from document_samples import uploaded

from chat import selectors, services
from chat.models import ApiCall, Attachment, Message
from test_consumer import TIMEOUT, connected, frames_until_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


async def turn(socket, text: str, **fields) -> tuple[dict, dict]:
    """The user message and the final reply of one turn."""
    await socket.send_json_to({"type": "send", "text": text, **fields})
    frames = await frames_until_final(socket)
    return frames[0]["message"], frames[-1]["message"]


@database_sync_to_async
def path_of(conversation) -> list[tuple[str, str]]:
    """The active path as stored: (role, text) root first."""
    conversation.refresh_from_db()
    return [(message.role, message.text) for message in selectors.active_path(conversation)]


@database_sync_to_async
def ledger_of(conversation) -> list[tuple[int | None, str]]:
    return list(ApiCall.objects.filter(conversation=conversation).order_by("id").values_list("message_id", "status"))


async def test_regenerate_adds_a_version_of_the_reply_and_keeps_the_old_one_with_its_ledger_rows(
    socket_for, owner, conversation
):
    socket = await connected(socket_for, owner, conversation)
    question, first = await turn(socket, "What is a B-tree?")

    await socket.send_json_to({"type": "regenerate", "model": "claude-haiku-5-5"})
    frames = await frames_until_final(socket)

    tree = frames[0]
    again = frames[-1]["message"]
    assert tree["type"] == "tree" and "removed" not in [frame["type"] for frame in frames]
    assert tree["path"] == [
        {"id": question["id"], "versions": [question["id"]]},
        {"id": again["id"], "versions": [first["id"], again["id"]]},
    ]
    assert [(m["id"], m["status"], m["parent"]) for m in tree["messages"]] == [
        (again["id"], "streaming", question["id"])
    ]
    assert again["status"] == "complete" and again["model"] == "claude-haiku-5-5"
    assert await database_sync_to_async(Message.objects.filter(pk=first["id"]).exists)()
    assert await ledger_of(conversation) == [(first["id"], "ok"), (again["id"], "ok")]


async def test_regenerate_can_name_an_earlier_reply_of_the_path(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    question, first = await turn(socket, "What is a B-tree?")
    await turn(socket, "And a B+ tree?")

    await socket.send_json_to({"type": "regenerate", "message": first["id"]})
    frames = await frames_until_final(socket)

    again = frames[-1]["message"]
    assert [step["id"] for step in frames[0]["path"]] == [question["id"], again["id"]]
    assert "turn 1 of our conversation" in again["content"][0]["text"]
    assert [role for role, _ in await path_of(conversation)] == ["user", "assistant"]
    assert await database_sync_to_async(Message.objects.filter(conversation=conversation).count)() == 5


async def test_a_reply_off_the_active_path_or_a_user_message_cannot_be_regenerated(
    socket_for, owner, conversation
):
    socket = await connected(socket_for, owner, conversation)
    question, first = await turn(socket, "What is a B-tree?")
    await socket.send_json_to({"type": "regenerate"})
    await frames_until_final(socket)

    for message_id in (first["id"], question["id"]):
        await socket.send_json_to({"type": "regenerate", "message": message_id})
        refusal = await socket.receive_json_from(timeout=TIMEOUT)
        assert (refusal["type"], refusal["code"]) == ("error", "nothing_to_regenerate")


async def test_edit_adds_a_version_of_the_message_and_answers_it(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    await turn(socket, "What is a B-tree?")
    question, answer = await turn(socket, "What is a hash index?")

    await socket.send_json_to({"type": "edit", "message": question["id"], "text": "  What is a GiST index?  "})
    frames = await frames_until_final(socket)

    tree, reply = frames[0], frames[-1]["message"]
    edited, placeholder = tree["messages"]
    assert edited["content"] == [{"type": "text", "text": "What is a GiST index?"}]
    assert edited["parent"] == question["parent"] and placeholder["id"] == reply["id"]
    assert tree["path"][2] == {"id": edited["id"], "versions": [question["id"], edited["id"]]}
    assert "> What is a GiST index?" in reply["content"][0]["text"] and "turn 2" in reply["content"][0]["text"]
    assert [text for role, text in await path_of(conversation) if role == "user"] == [
        "What is a B-tree?", "What is a GiST index?"
    ]
    kept = await database_sync_to_async(Message.objects.get)(pk=answer["id"])
    assert kept.parent_id == question["id"]
    assert None not in [message_id for message_id, _ in await ledger_of(conversation)]


async def test_any_user_message_of_the_path_can_be_edited_but_not_a_reply(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    first, reply = await turn(socket, "First")
    await turn(socket, "Second")

    await socket.send_json_to({"type": "edit", "message": reply["id"], "text": "Changed"})
    refusal = await socket.receive_json_from(timeout=TIMEOUT)
    await socket.send_json_to({"type": "edit", "message": first["id"], "text": "Changed"})
    frames = await frames_until_final(socket)

    assert (refusal["type"], refusal["code"]) == ("error", "not_editable")
    answer = frames[-1]["message"]["content"][0]["text"]
    assert await path_of(conversation) == [("user", "Changed"), ("assistant", answer)]


async def test_a_message_on_another_branch_cannot_be_edited(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    question, _ = await turn(socket, "First")
    await socket.send_json_to({"type": "edit", "message": question["id"], "text": "Other"})
    await frames_until_final(socket)

    await socket.send_json_to({"type": "edit", "message": question["id"], "text": "Again"})
    refusal = await socket.receive_json_from(timeout=TIMEOUT)

    assert (refusal["type"], refusal["code"]) == ("error", "not_editable")


async def test_an_edited_message_keeps_its_attachments_as_new_rows_naming_the_same_files(
    socket_for, owner, conversation
):
    [note] = await database_sync_to_async(uploaded)(owner, "notes.txt", b"B-trees keep keys sorted.")
    socket = await connected(socket_for, owner, conversation)
    question, _ = await turn(socket, "Summarise this", attachments=[note.pk])

    await socket.send_json_to({"type": "edit", "message": question["id"], "text": "Shorter"})
    frames = await frames_until_final(socket)

    edited = frames[0]["messages"][0]
    [copy] = edited["attachments"]
    assert edited["content"] == [
        {"type": "attachment", "attachment_id": copy["id"]}, {"type": "text", "text": "Shorter"}
    ]
    rows = await database_sync_to_async(lambda: {a.pk: a for a in Attachment.objects.all()})()
    assert copy["id"] != note.pk and rows[copy["id"]].file == rows[note.pk].file
    assert (rows[note.pk].message_id, rows[copy["id"]].message_id) == (question["id"], edited["id"])
    # The edited request carried the file again, through the copy: the reply cites it by the copy's row and
    # describes the one document it received.
    reply = frames[-1]["message"]["content"]
    cited = [citation for block in reply for citation in block.get("citations", [])]
    assert [(c["cited_text"], c["document_title"], c["attachment"]) for c in cited] == [
        ("B-trees keep keys sorted.", "notes.txt", copy["id"])
    ]
    assert 'Document 1: plain text, first line "B-trees keep keys sorted."' in reply[-1]["text"]


async def test_nothing_is_redone_while_a_reply_streams(socket_for, owner, conversation, settings):
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 100
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Write at length"})
    user = (await socket.receive_json_from(timeout=TIMEOUT))["message"]
    await socket.receive_json_from(timeout=TIMEOUT)

    await socket.send_json_to({"type": "regenerate"})
    await socket.send_json_to({"type": "edit", "message": user["id"], "text": "Shorter"})
    frames = await frames_until_final(socket)

    assert [frame["code"] for frame in frames if frame["type"] == "error"] == ["busy", "busy"]
    assert frames[-1]["message"]["status"] == "complete"
    assert await database_sync_to_async(Message.objects.filter(conversation=conversation).count)() == 2


async def test_another_users_message_cannot_be_edited_or_regenerated(socket_for, owner, outsider, conversation):
    theirs = await database_sync_to_async(services.conversation_create)(owner=outsider)
    foreign = await database_sync_to_async(Message.objects.create)(
        conversation=theirs, role="assistant", content=[{"type": "text", "text": "secret"}]
    )
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "edit", "message": foreign.pk, "text": "mine now"})
    edit_refusal = await socket.receive_json_from(timeout=TIMEOUT)
    await socket.send_json_to({"type": "regenerate", "message": foreign.pk})
    regenerate_refusal = await socket.receive_json_from(timeout=TIMEOUT)

    assert (edit_refusal["code"], regenerate_refusal["code"]) == ("not_found", "not_found")
    assert await database_sync_to_async(Message.objects.filter(conversation=theirs).count)() == 1


async def test_regenerate_needs_a_reply(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "regenerate"})
    refusal = await socket.receive_json_from(timeout=TIMEOUT)

    assert (refusal["type"], refusal["code"]) == ("error", "nothing_to_regenerate")


async def test_after_its_replies_are_deleted_regenerate_answers_the_message_left_at_the_end(
    socket_for, owner, conversation
):
    socket = await connected(socket_for, owner, conversation)
    question, reply = await turn(socket, "What is a B-tree?")
    await socket.send_json_to({"type": "delete", "message": reply["id"]})
    await socket.receive_json_from(timeout=TIMEOUT)

    await socket.send_json_to({"type": "regenerate"})
    frames = await frames_until_final(socket)

    assert frames[0]["path"] == [
        {"id": question["id"], "versions": [question["id"]]},
        {"id": frames[-1]["message"]["id"], "versions": [frames[-1]["message"]["id"]]},
    ]
    assert frames[-1]["message"]["status"] == "complete"
