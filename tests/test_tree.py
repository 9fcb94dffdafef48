"""A conversation as a tree: versions kept, one active path shown and sent, switched and deleted by frames."""

import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import HASH_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import selectors as billing_selectors
from chat import selectors, services
from chat.attachments.limits import AttachmentRefused
from chat.attachments.services import attachments_for_turn
from chat.models import ApiCall, Attachment, Conversation, Message
from chat.replies import admission
from projects.models import Project
from test_consumer import TIMEOUT, connected, frames_until_final
from transcripts import message_appended

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]


async def turn(socket, frame: dict) -> list[dict]:
    await socket.send_json_to(frame)
    return await frames_until_final(socket)


async def send(socket, text: str) -> tuple[dict, dict]:
    """The user message and the final reply of one `send`."""
    frames = await turn(socket, {"type": "send", "text": text})
    return frames[0]["message"], frames[-1]["message"]


async def regenerate(socket, **fields) -> dict:
    """The final state of the new version."""
    return (await turn(socket, {"type": "regenerate", **fields}))[-1]["message"]


async def tree_after(socket, frame: dict) -> dict:
    await socket.send_json_to(frame)
    answer = await socket.receive_json_from(timeout=TIMEOUT)
    assert answer["type"] == "tree", answer
    return answer


@database_sync_to_async
def page_tree(user, conversation) -> dict:
    """The tree the chat page embeds (`tree-data`), as a reload sees it."""
    client = Client()
    client.force_login(user)
    body = client.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()
    return json.loads(body.split('id="tree-data" type="application/json">')[1].split("</script>")[0])


@database_sync_to_async
def stored_path(conversation) -> list[Message]:
    return selectors.active_path(Conversation.objects.get(pk=conversation.pk))


def texts(request: dict) -> list[tuple[str, str]]:
    """A request body's turns as (role, text of its text blocks)."""
    return [
        (turn["role"], "".join(block.get("text", "") for block in turn["content"] if block["type"] == "text"))
        for turn in request["messages"]
    ]


async def test_three_regenerations_keep_four_versions_and_a_switch_to_each_shows_it_after_a_reload(
    socket_for, owner, conversation
):
    socket = await connected(socket_for, owner, conversation)
    question, first = await send(socket, "What is a B-tree?")
    versions = [first["id"]] + [(await regenerate(socket))["id"] for _ in range(3)]
    unchanged = await tree_after(socket, {"type": "switch", "message": versions[-1]})
    assert unchanged["path"][-1]["id"] == versions[-1] and unchanged["messages"] == []

    for version in versions:
        tree = await tree_after(socket, {"type": "switch", "message": version})
        assert tree["path"] == [
            {"id": question["id"], "versions": [question["id"]]}, {"id": version, "versions": versions}
        ]
        assert [message["id"] for message in tree["messages"]] == [version]

        reloaded = await connected(socket_for, owner, conversation)
        embedded = await page_tree(owner, conversation)
        assert embedded["path"] == tree["path"]
        assert [message["id"] for message in embedded["messages"]] == [question["id"], version]
        await reloaded.disconnect()


async def test_a_switch_to_a_message_lands_on_the_newest_leaf_under_it(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    question, first = await send(socket, "What is a B-tree?")
    await send(socket, "And a B+ tree?")
    _, deeper = await send(socket, "And an LSM tree?")
    await regenerate(socket, message=first["id"])

    tree = await tree_after(socket, {"type": "switch", "message": first["id"]})

    assert tree["path"][-1]["id"] == deeper["id"] and len(tree["path"]) == 6
    assert {message["id"] for message in tree["messages"]} == {step["id"] for step in tree["path"][1:]}


async def test_editing_the_second_of_five_messages_sends_only_the_first_exchange_and_keeps_the_old_branch(
    socket_for, owner, conversation, offline_model_reset
):
    socket = await connected(socket_for, owner, conversation)
    asked = [await send(socket, f"Question {number}") for number in range(1, 6)]
    second = asked[1][0]

    frames = await turn(socket, {"type": "edit", "message": second["id"], "text": "Question 2, edited"})

    first_question, first_reply = asked[0]
    assert texts(offline_model_reset.received[-1]) == [
        ("user", "Question 1"), ("assistant", first_reply["content"][0]["text"]), ("user", "Question 2, edited"),
    ]
    assert [step["id"] for step in frames[0]["path"]][:2] == [first_question["id"], first_reply["id"]]
    assert len(frames[0]["path"]) == 4
    old = await tree_after(socket, {"type": "switch", "message": second["id"]})
    assert [step["id"] for step in old["path"]] == [message["id"] for pair in asked for message in pair]
    assert old["path"][2]["versions"] == [second["id"], frames[0]["path"][2]["id"]]


async def test_every_request_body_is_exactly_the_active_path(
    socket_for, owner, conversation, offline_model_reset
):
    socket = await connected(socket_for, owner, conversation)
    _, first = await send(socket, "What is a B-tree?")
    await send(socket, "And a B+ tree?")
    await regenerate(socket, message=first["id"])
    await send(socket, "And an LSM tree?")
    await tree_after(socket, {"type": "switch", "message": first["id"]})
    await send(socket, "And a trie?")

    path = await stored_path(conversation)
    request = offline_model_reset.received[-1]
    assert texts(request) == [(message.role, message.text) for message in path[:-1]]
    assert [text for role, text in texts(request) if role == "user"] == [
        "What is a B-tree?", "And a B+ tree?", "And a trie?"
    ]


async def test_deleting_a_branch_deletes_its_subtree_and_its_ledger_rows_lose_only_their_message(
    socket_for, owner, conversation
):
    socket = await connected(socket_for, owner, conversation)
    question, first = await send(socket, "What is a B-tree?")
    second = await regenerate(socket)
    follow_up, deep = await send(socket, "And a B+ tree?")

    tree = await tree_after(socket, {"type": "delete", "message": second["id"]})

    assert tree["path"] == [
        {"id": question["id"], "versions": [question["id"]]}, {"id": first["id"], "versions": [first["id"]]}
    ]
    assert [message["id"] for message in tree["messages"]] == [first["id"]]
    remaining = await database_sync_to_async(lambda: list(Message.objects.values_list("pk", flat=True)))()
    assert remaining == [question["id"], first["id"]]
    ledger = await database_sync_to_async(
        lambda: list(ApiCall.objects.filter(conversation=conversation).order_by("id").values_list("message_id"))
    )()
    assert ledger == [(first["id"],), (None,), (None,)]
    assert [message.pk for message in await stored_path(conversation)] == [question["id"], first["id"]]
    assert follow_up["id"] not in remaining and deep["id"] not in remaining


async def test_deleting_a_branch_beside_the_path_leaves_the_path_and_drops_a_version(
    socket_for, owner, conversation
):
    socket = await connected(socket_for, owner, conversation)
    question, first = await send(socket, "What is a B-tree?")
    second = await regenerate(socket)

    tree = await tree_after(socket, {"type": "delete", "message": first["id"]})

    assert tree == {"type": "tree", "version": 2, "path": [  # the regenerate made version 1, the delete 2
        {"id": question["id"], "versions": [question["id"]]}, {"id": second["id"], "versions": [second["id"]]}
    ], "messages": []}


async def test_deleting_the_first_message_empties_the_conversation_and_the_next_send_starts_a_new_root(
    socket_for, owner, conversation
):
    socket = await connected(socket_for, owner, conversation)
    question, _ = await send(socket, "What is a B-tree?")

    tree = await tree_after(socket, {"type": "delete", "message": question["id"]})
    again, _ = await send(socket, "What is a trie?")

    assert tree == {"type": "tree", "version": 1, "path": [], "messages": []}
    assert again["parent"] is None
    assert [message.text for message in await stored_path(conversation)][0] == "What is a trie?"


async def test_switch_delete_edit_and_regenerate_are_refused_while_a_reply_streams(
    socket_for, owner, conversation, settings
):
    socket = await connected(socket_for, owner, conversation)
    question, first = await send(socket, "What is a B-tree?")
    settings.OFFLINE_MODEL_TOKENS_PER_SECOND = 100
    await socket.send_json_to({"type": "send", "text": "Write at length"})
    await socket.receive_json_from(timeout=TIMEOUT)
    await socket.receive_json_from(timeout=TIMEOUT)

    for frame in (
        {"type": "switch", "message": first["id"]}, {"type": "delete", "message": first["id"]},
        {"type": "edit", "message": question["id"], "text": "Shorter"}, {"type": "regenerate"},
    ):
        await socket.send_json_to(frame)
    frames = await frames_until_final(socket)

    assert [frame["code"] for frame in frames if frame["type"] == "error"] == ["busy"] * 4
    assert "tree" not in [frame["type"] for frame in frames]
    assert len(await stored_path(conversation)) == 4
    assert await database_sync_to_async(Message.objects.count)() == 4


async def test_a_message_of_another_conversation_or_user_is_not_found(
    socket_for, owner, outsider, conversation
):
    mine = await database_sync_to_async(services.conversation_create)(owner=owner)
    theirs = await database_sync_to_async(services.conversation_create)(owner=outsider)
    elsewhere = [
        await database_sync_to_async(Message.objects.create)(conversation=other, role="user", content=[])
        for other in (mine, theirs)
    ]
    socket = await connected(socket_for, owner, conversation)

    for message in elsewhere:
        for kind in ("switch", "delete"):
            await socket.send_json_to({"type": kind, "message": message.pk})
            refusal = await socket.receive_json_from(timeout=TIMEOUT)
            assert (refusal["type"], refusal["code"]) == ("error", "not_found")

    assert await database_sync_to_async(Message.objects.count)() == 2


async def test_an_outsider_gets_404_for_the_page_and_no_socket(socket_for, outsider, conversation):
    client = Client()
    await database_sync_to_async(client.force_login)(outsider)

    response = await database_sync_to_async(client.get)(reverse("conversation_detail", args=[conversation.pk]))
    socket = await socket_for(outsider, conversation.pk)
    accepted, _ = await socket.connect()

    assert response.status_code == 404 and not accepted


async def test_only_the_last_message_of_the_active_path_can_be_continued(socket_for, owner, conversation, settings):
    settings.CHAT_MAX_OUTPUT_TOKENS = 20
    socket = await connected(socket_for, owner, conversation)
    _, cut = await send(socket, "Tell me everything about B-trees")
    assert cut["stop_reason"] == "max_tokens"
    await regenerate(socket)

    await socket.send_json_to({"type": "continue", "message": cut["id"]})
    refusal = await socket.receive_json_from(timeout=TIMEOUT)
    await tree_after(socket, {"type": "switch", "message": cut["id"]})
    frames = await turn(socket, {"type": "continue", "message": cut["id"]})

    assert (refusal["type"], refusal["code"]) == ("error", "cannot_continue")
    assert frames[0]["message"]["id"] == cut["id"] and frames[-1]["message"]["id"] == cut["id"]


async def test_two_sockets_on_one_conversation_both_get_the_tree_after_a_switch(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    _, first = await send(socket, "What is a B-tree?")
    await regenerate(socket)
    other_tab = await connected(socket_for, owner, conversation)

    tree = await tree_after(socket, {"type": "switch", "message": first["id"]})
    seen = await other_tab.receive_json_from(timeout=TIMEOUT)

    assert seen == tree and tree["path"][-1]["id"] == first["id"]


async def test_a_socket_that_missed_a_switch_asks_for_the_tree_and_gets_the_path_as_it_is_now(
    socket_for, owner, conversation
):
    socket = await connected(socket_for, owner, conversation)
    _, first = await send(socket, "What is a B-tree?")
    second = await regenerate(socket)
    await socket.disconnect()
    other_tab = await connected(socket_for, owner, conversation)
    await tree_after(other_tab, {"type": "switch", "message": first["id"]})
    reconnected = await connected(socket_for, owner, conversation)

    tree = await tree_after(reconnected, {"type": "tree"})

    assert [entry["id"] for entry in tree["path"]][-1] == first["id"]
    assert tree["path"][-1]["versions"] == [first["id"], second["id"]]
    assert tree["messages"] == []  # states come by `resume`, for the messages the client lacks


async def test_a_send_after_a_switch_continues_the_branch_switched_to(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    _, first = await send(socket, "What is a B-tree?")
    await regenerate(socket)
    await tree_after(socket, {"type": "switch", "message": first["id"]})

    question, reply = await send(socket, "And a B+ tree?")

    assert question["parent"] == first["id"] and reply["parent"] == question["id"]
    assert "turn 2 of our conversation" in reply["content"][0]["text"]


def two_branches(conversation, *, heavy_branch: dict) -> tuple[Message, Message]:
    """Two versions of the first message, each answered: the first with `heavy_branch` fields, the second
    plain. The second's reply is the current leaf; returns both replies."""
    message_appended(conversation, role="user", **heavy_branch)
    heavy_reply = message_appended(conversation, role="assistant", text="ok")
    conversation.current_leaf = None
    message_appended(conversation, role="user", text="Plain")
    return heavy_reply, message_appended(conversation, role="assistant", text="ok")


def pdf(owner, pages: int, message=None) -> Attachment:
    return Attachment.objects.create(
        owner=owner, message=message, kind="pdf", name="a.pdf", sha256="0" * 64, media_type="application/pdf",
        file="a.pdf", size=1, page_count=pages, tokens=1_500 * pages,
    )


def test_the_attachment_limits_count_the_path_the_message_continues_not_other_branches(owner, conversation):
    heavy_reply, _ = two_branches(conversation, heavy_branch={"text": "Read this"})
    pdf(owner, 95, message=heavy_reply.parent)

    assert attachments_for_turn(conversation=conversation, attachment_ids=[pdf(owner, 10).pk])
    conversation.current_leaf = heavy_reply
    with pytest.raises(AttachmentRefused) as refused:
        attachments_for_turn(conversation=conversation, attachment_ids=[pdf(owner, 10).pk])
    assert refused.value.code == "too_many_pages"


def test_the_budget_estimate_counts_the_active_path_not_other_branches(owner, conversation):
    heavy_reply, _ = two_branches(conversation, heavy_branch={"text": "x" * 40_000})
    pdf(owner, 3, message=heavy_reply.parent)

    plain = billing_selectors.request_estimate(conversation=conversation, text="", model="claude-sonnet-5-5")
    conversation.current_leaf = heavy_reply
    heavy = billing_selectors.request_estimate(conversation=conversation, text="", model="claude-sonnet-5-5")

    assert plain.input_tokens < 1_000 < 10_000 + 4_500 < heavy.input_tokens


def test_deleting_a_deep_branch_costs_the_same_queries_as_a_shallow_one(owner):
    counts = []
    for depth in (2, 20):
        conversation = services.conversation_create(owner=owner)
        top = message_appended(conversation, role="user", text="First")
        for number in range(depth - 1):
            message_appended(conversation, role="assistant" if number % 2 == 0 else "user", text="More")
        with CaptureQueriesContext(connection) as deleting:
            services.branch_delete(conversation=conversation, message_id=top.pk)
        assert not conversation.messages.exists() and conversation.current_leaf_id is None
        counts.append(len(deleting))

    assert counts[0] == counts[1]


def test_the_attachment_limits_count_the_files_of_the_conversations_project(owner, conversation):
    project = Project.objects.create(owner=owner, name="Research")
    project_file = pdf(owner, 95)
    project_file.project = project
    project_file.save(update_fields=["project"])
    assert attachments_for_turn(conversation=conversation, attachment_ids=[pdf(owner, 10).pk])

    conversation.project = project
    with pytest.raises(AttachmentRefused) as refused:
        attachments_for_turn(conversation=conversation, attachment_ids=[pdf(owner, 10).pk])
    assert refused.value.code == "too_many_pages"


@database_sync_to_async
def stored_version(conversation) -> int:
    return Conversation.objects.get(pk=conversation.pk).tree_version


async def test_every_change_of_the_path_raises_the_version_that_its_tree_frame_the_page_and_the_answer_carry(
    socket_for, owner, conversation
):
    socket = await connected(socket_for, owner, conversation)
    question, first = await send(socket, "What is a B-tree?")
    assert (await page_tree(owner, conversation))["version"] == 0  # a send changes no version

    versions = [(await turn(socket, {"type": "regenerate"}))[0]["version"]]
    edited = await turn(socket, {"type": "edit", "message": question["id"], "text": "A B+ tree?"})
    versions.append(edited[0]["version"])
    versions.append((await tree_after(socket, {"type": "switch", "message": first["id"]}))["version"])
    versions.append((await tree_after(socket, {"type": "delete", "message": first["id"]}))["version"])
    await send(socket, "And a trie?")

    assert versions == [1, 2, 3, 4] and await stored_version(conversation) == 4
    assert (await tree_after(socket, {"type": "tree"}))["version"] == 4
    assert (await page_tree(owner, conversation))["version"] == 4


def test_a_switch_reads_only_the_rows_of_the_messages_it_brings_onto_the_path(owner, conversation):
    for number in range(6):
        message_appended(conversation, role="user", text=f"Question {number}")
        replaced = message_appended(conversation, role="assistant", text=f"Answer {number}")
    conversation.current_leaf = replaced.parent
    message_appended(conversation, role="assistant", text="Answer 5, again")
    client = Client()
    client.force_login(owner)
    session = SessionStore(session_key=client.cookies["sessionid"].value)

    with CaptureQueriesContext(connection) as switching:
        tree = admission.branch_change(
            user_id=owner.pk, session_key=session.session_key, auth_hash=session[HASH_SESSION_KEY],
            conversation=conversation, action="switch", message_id=replaced.pk,
        )

    assert [message["id"] for message in tree["messages"]] == [replaced.pk] and len(tree["path"]) == 12
    rows_read = [query["sql"] for query in switching if '"chat_message"."content"' in query["sql"]]
    assert len(rows_read) == 1 and f'"chat_message"."id" IN ({replaced.pk}))' in rows_read[0], rows_read
