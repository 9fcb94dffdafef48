"""Forking a conversation at a message: a new conversation of the owner's holding the path down to it."""

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from test_consumer import connected, frames_until_final

from chat import services
from chat.models import Conversation, Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]


async def say(socket, text: str) -> tuple[dict, dict]:
    await socket.send_json_to({"type": "send", "text": text})
    frames = await frames_until_final(socket)
    return frames[0]["message"], frames[-1]["message"]


def text_of(payload: dict) -> str:
    return "".join(block.get("text", "") for block in payload["content"] if block["type"] == "text")


@database_sync_to_async
def fork(user, conversation, message_id):
    client = Client()
    client.force_login(user)
    return client.post(reverse("conversation_fork", args=[conversation.pk]), {"message": message_id})


@database_sync_to_async
def forked(response) -> tuple[Conversation, list[Message]]:
    assert response.status_code == 302
    conversation = Conversation.objects.get(pk=int(response.url.strip("/").split("/")[-1]))
    return conversation, list(conversation.messages.all())


async def test_forking_at_a_middle_message_copies_only_the_path_down_to_it(socket_for, owner, conversation):
    await database_sync_to_async(services.conversation_settings_update)(
        conversation=conversation, system_prompt="Be brief.", thinking="low",
    )
    socket = await connected(socket_for, owner, conversation)
    _, answer = await say(socket, "What is a B-tree?")
    await say(socket, "And a B+ tree?")

    new, copies = await forked(await fork(owner, conversation, answer["id"]))

    assert [(m.role, m.text) for m in copies] == [
        ("user", "What is a B-tree?"), ("assistant", text_of(answer)),
    ]
    assert copies[0].parent_id is None and copies[1].parent_id == copies[0].pk and new.current_leaf_id == copies[1].pk
    assert new.owner_id == owner.pk and new.title == "What is a B-tree? (fork)"
    assert (new.system_prompt, new.thinking, new.model) == ("Be brief.", "low", conversation.model)
    assert all(m.cost == 0 and m.output_tokens == 0 for m in copies)
    assert await database_sync_to_async(conversation.messages.count)() == 4  # the original is as it was


async def test_forking_an_older_version_copies_that_branch(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    _, first = await say(socket, "What is a B-tree?")
    await socket.send_json_to({"type": "regenerate"})
    await frames_until_final(socket)

    _, copies = await forked(await fork(owner, conversation, first["id"]))

    assert [m.text for m in copies] == ["What is a B-tree?", text_of(first)]


async def test_a_reply_still_being_written_is_not_copied(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    await say(socket, "What is a B-tree?")
    _, answer = await say(socket, "And a B+ tree?")
    await database_sync_to_async(Message.objects.filter(pk=answer["id"]).update)(status=Message.Status.STREAMING)

    _, copies = await forked(await fork(owner, conversation, answer["id"]))

    assert [m.role for m in copies] == ["user", "assistant", "user"]
    assert all(m.status == Message.Status.COMPLETE for m in copies)


async def test_an_outsider_or_a_message_from_elsewhere_gets_404(socket_for, owner, outsider, conversation):
    socket = await connected(socket_for, owner, conversation)
    _, answer = await say(socket, "What is a B-tree?")
    other = await database_sync_to_async(services.conversation_create)(owner=owner)

    assert (await fork(outsider, conversation, answer["id"])).status_code == 404
    assert (await fork(owner, other, answer["id"])).status_code == 404
    assert (await fork(owner, conversation, "not a number")).status_code == 404
    assert (await fork(owner, conversation, 999_999)).status_code == 404
    assert await database_sync_to_async(Conversation.objects.count)() == 2


@database_sync_to_async
def fork_queries(user, conversation, message_id) -> list[str]:
    client = Client()
    client.force_login(user)
    with CaptureQueriesContext(connection) as captured:
        response = client.post(reverse("conversation_fork", args=[conversation.pk]), {"message": message_id})
    assert response.status_code == 302
    return [query["sql"] for query in captured]


async def test_a_fork_writes_its_copies_in_one_insert_for_a_short_and_a_long_path(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    _, short = await say(socket, "What is a B-tree?")
    for text in ("And a B+ tree?", "And a trie?", "And a skip list?"):
        _, long = await say(socket, text)

    short_queries = await fork_queries(owner, conversation, short["id"])
    long_queries = await fork_queries(owner, conversation, long["id"])

    assert len(long_queries) == len(short_queries)
    assert sum(sql.startswith('INSERT INTO "chat_message"') for sql in long_queries) == 1
    copies = await database_sync_to_async(lambda: list(Conversation.objects.order_by("-id").first().messages.all()))()
    assert len(copies) == 8 and [m.parent_id for m in copies] == [None, *[m.pk for m in copies[:-1]]]
