"""Regenerate the last reply, and edit the last user message: the old reply goes, its ledger rows stay."""

import pytest
from channels.db import database_sync_to_async

from chat import services
from chat.models import ApiCall, Message
from test_consumer import TIMEOUT, connected, frames_until_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]


async def turn(socket, text: str) -> tuple[dict, dict]:
    """The user message and the final reply of one turn."""
    await socket.send_json_to({"type": "send", "text": text})
    frames = await frames_until_final(socket)
    return frames[0]["message"], frames[-1]["message"]


@database_sync_to_async
def transcript(conversation) -> list[tuple[str, str]]:
    return [(message.role, message.text) for message in Message.objects.filter(conversation=conversation)]


@database_sync_to_async
def ledger_of(conversation) -> list[tuple[int | None, str]]:
    return list(ApiCall.objects.filter(conversation=conversation).order_by("id").values_list("message_id", "status"))


async def test_regenerate_replaces_the_last_reply_and_keeps_its_ledger_rows(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    _, first = await turn(socket, "What is a B-tree?")

    await socket.send_json_to({"type": "regenerate", "model": "claude-haiku-5-5"})
    frames = await frames_until_final(socket)

    assert frames[0] == {"type": "removed", "message": first["id"]}
    assert frames[1]["message"]["role"] == "user"
    again = frames[-1]["message"]
    assert again["id"] != first["id"] and again["status"] == "complete" and again["model"] == "claude-haiku-5-5"
    assert [role for role, _ in await transcript(conversation)] == ["user", "assistant"]
    assert await ledger_of(conversation) == [(None, "ok"), (again["id"], "ok")]


async def test_edit_changes_the_last_message_and_answers_it_again(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    await turn(socket, "What is a B-tree?")
    question, answer = await turn(socket, "What is a hash index?")

    await socket.send_json_to({"type": "edit", "message": question["id"], "text": "  What is a GiST index?  "})
    frames = await frames_until_final(socket)

    assert frames[0] == {"type": "removed", "message": answer["id"]}
    edited = frames[1]["message"]
    assert (edited["id"], edited["content"]) == (question["id"], [{"type": "text", "text": "What is a GiST index?"}])
    reply = frames[-1]["message"]
    assert "> What is a GiST index?" in reply["content"][0]["text"] and "turn 2" in reply["content"][0]["text"]
    stored = await transcript(conversation)
    assert [text for role, text in stored if role == "user"] == ["What is a B-tree?", "What is a GiST index?"]
    assert stored[-1] == ("assistant", reply["content"][0]["text"])
    assert [message_id for message_id, _ in await ledger_of(conversation)].count(None) == 1


async def test_only_the_last_user_message_can_be_edited(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    first, _ = await turn(socket, "First")
    await turn(socket, "Second")

    await socket.send_json_to({"type": "edit", "message": first["id"], "text": "Changed"})
    refusal = await socket.receive_json_from(timeout=TIMEOUT)

    assert (refusal["type"], refusal["code"]) == ("error", "not_editable")
    assert [text for _, text in await transcript(conversation)][::2] == ["First", "Second"]


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
    assert [text for role, text in await transcript(conversation) if role == "user"] == ["Write at length"]


async def test_another_users_message_cannot_be_edited(socket_for, owner, outsider, conversation):
    theirs = await database_sync_to_async(services.conversation_create)(owner=outsider)
    foreign = await database_sync_to_async(Message.objects.create)(
        conversation=theirs, role="user", content=[{"type": "text", "text": "secret"}]
    )
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "edit", "message": foreign.pk, "text": "mine now"})
    refusal = await socket.receive_json_from(timeout=TIMEOUT)

    assert (refusal["type"], refusal["code"]) == ("error", "not_found")
    assert (await database_sync_to_async(Message.objects.get)(pk=foreign.pk)).text == "secret"


async def test_regenerate_needs_a_reply(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "regenerate"})
    refusal = await socket.receive_json_from(timeout=TIMEOUT)

    assert (refusal["type"], refusal["code"]) == ("error", "nothing_to_regenerate")
