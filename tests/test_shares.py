"""Sharing a conversation read-only: with named users, with anyone signed in, as a public link; revoking it;
its files; and a viewer continuing it in their own chats. Conversations are written through the real socket
and the offline model."""

import json

import pytest
from attachment_samples import image_bytes
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from document_samples import uploaded
from test_consumer import connected, frames_until_final

from audit.models import AuditEvent
from chat import services as chat_services
from chat.llm.tools import WITHHELD
from chat.models import ApiCall, Conversation, Message
from shares.models import Share, SharePolicy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def recipient(django_user_model):
    return django_user_model.objects.create_user(
        username="recipient", email="Recipient@example.com", password="a-long-passphrase-3",
    )


async def say(socket, text: str, attachments=()) -> tuple[dict, dict]:
    """One turn through the socket: the user message and the settled reply, as the frames show them."""
    await socket.send_json_to({"type": "send", "text": text, "attachments": list(attachments)})
    frames = await frames_until_final(socket)
    return frames[0]["message"], frames[-1]["message"]


@pytest.fixture
async def chatted(socket_for, owner, conversation):
    """The owner's conversation after two turns, and the socket it was written through."""
    socket = await connected(socket_for, owner, conversation)
    await say(socket, "What is a B-tree?")
    await say(socket, "And a B+ tree?")
    return socket


def browser(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@database_sync_to_async
def get(user, url):
    return browser(user).get(url)


@database_sync_to_async
def post(user, url, data=None):
    return browser(user).post(url, data or {})


@database_sync_to_async
def shared(conversation, by, **fields) -> Share:
    """A share made through the owner's page, as the owner would make it."""
    response = browser(by).post(reverse("conversation_shares", args=[conversation.pk]), fields)
    assert response.status_code == 302, response.content.decode()
    return Share.objects.filter(conversation=conversation).first()


def share_data(response) -> dict:
    """What the shared page embeds for shared.js."""
    assert response.status_code == 200
    html = response.content.decode()
    opening = '<script id="share-data" type="application/json">'
    start = html.index(opening) + len(opening)
    return json.loads(html[start:html.index("</script>", start)])


def shown(response) -> list[str]:
    """The texts of the messages the shared page embeds for shared.js, in order."""
    messages = share_data(response)["messages"]
    return [block["text"] for message in messages for block in message["content"] if block["type"] == "text"]


def page_of(share: Share) -> str:
    return reverse("share_detail", args=[share.token])


@database_sync_to_async
def allow_public_links(allowed: bool) -> None:
    SharePolicy.objects.update_or_create(id=1, defaults={"public_links": allowed})


# --- who sees what ---------------------------------------------------------------------------------------


async def test_a_snapshot_shared_with_a_named_user_shows_them_the_transcript_read_only(
    chatted, owner, recipient, conversation,
):
    share = await shared(conversation, owner, audience="users", mode="snapshot", recipients="recipient")

    response = await get(recipient, page_of(share))

    texts = shown(response)
    assert texts[0] == "What is a B-tree?" and texts[2] == "And a B+ tree?" and len(texts) == 4
    html = response.content.decode()
    assert 'id="composer"' not in html and "data-ws-path" not in html and "conversation-list" not in html
    assert "chat/shared.js" in html and "chat/main.js" not in html


async def test_the_owner_going_on_leaves_a_snapshot_as_it_was_and_a_live_share_follows(
    chatted, owner, recipient, conversation,
):
    snapshot = await shared(conversation, owner, audience="users", mode="snapshot", recipients="recipient")
    live = await shared(conversation, owner, audience="users", mode="live", recipients="recipient")

    await say(chatted, "And a trie?")

    assert len(shown(await get(recipient, page_of(snapshot)))) == 4
    followed = shown(await get(recipient, page_of(live)))
    assert len(followed) == 6 and followed[4] == "And a trie?"


async def test_a_snapshot_shows_its_leaf_as_shared_after_the_owner_continues_it(
    socket_for, owner, recipient, conversation, settings,
):
    settings.CHAT_MAX_OUTPUT_TOKENS = 20
    socket = await connected(socket_for, owner, conversation)
    _, cut = await say(socket, "Tell me everything about B-trees")
    assert cut["stop_reason"] == "max_tokens"
    share = await shared(conversation, owner, audience="users", mode="snapshot", recipients="recipient")
    before = share_data(await get(recipient, page_of(share)))["messages"]

    await socket.send_json_to({"type": "continue", "message": cut["id"]})
    extended = (await frames_until_final(socket))[-1]["message"]

    assert extended["id"] == cut["id"] and len(extended["content"][-1]["text"]) > len(cut["content"][-1]["text"])
    after = share_data(await get(recipient, page_of(share)))["messages"]
    assert [m["content"] for m in after] == [m["content"] for m in before]
    assert (after[-1]["content"], after[-1]["status"]) == (cut["content"], "complete")
    await post(recipient, reverse("share_continue", args=[share.token]))
    fork = await database_sync_to_async(Conversation.objects.get)(owner=recipient)
    assert [m.content for m in await copied(fork.pk)][-1] == cut["content"]  # what it showed, not what it became


async def test_a_stranger_gets_404_for_a_share_with_named_users(chatted, owner, recipient, outsider, conversation):
    share = await shared(conversation, owner, audience="users", mode="snapshot", recipients="recipient")

    assert (await get(outsider, page_of(share))).status_code == 404
    assert (await post(outsider, reverse("share_continue", args=[share.token]))).status_code == 404
    assert (await get(owner, page_of(share))).status_code == 200  # the owner sees what they shared


async def test_a_link_for_anyone_signed_in_opens_for_them_and_sends_anonymous_visitors_to_login(
    chatted, owner, outsider, conversation,
):
    share = await shared(conversation, owner, audience="signed_in", mode="live")

    assert len(shown(await get(outsider, page_of(share)))) == 4
    response = await get(None, page_of(share))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert f"next={page_of(share)}" in response.url.replace("%2F", "/")


async def test_a_public_link_opens_without_an_account_only_while_the_policy_allows_it(chatted, owner, conversation):
    refused = await post(owner, reverse("conversation_shares", args=[conversation.pk]), {
        "audience": "public", "mode": "snapshot",
    })
    assert refused.status_code == 400 and 'value="public"' not in refused.content.decode()

    await allow_public_links(True)
    share = await shared(conversation, owner, audience="public", mode="snapshot")
    assert len(shown(await get(None, page_of(share)))) == 4

    await allow_public_links(False)
    response = await get(None, page_of(share))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


async def test_a_revoked_link_gets_404_at_once_and_both_are_audited(chatted, owner, recipient, conversation):
    share = await shared(conversation, owner, audience="users", mode="live", recipients="recipient")
    assert (await get(recipient, page_of(share))).status_code == 200

    response = await post(owner, reverse("share_revoke", args=[conversation.pk, share.pk]))

    assert response.status_code == 302
    assert (await get(recipient, page_of(share))).status_code == 404
    assert (await get(owner, page_of(share))).status_code == 404
    actions = await database_sync_to_async(
        lambda: list(AuditEvent.objects.order_by("id").filter(action__startswith="share.").values_list(
            "action", "actor_name", "detail__share"))
    )()
    assert actions == [("share.created", "owner", share.pk), ("share.revoked", "owner", share.pk)]


async def test_a_guessed_token_or_another_owners_ids_get_404(chatted, owner, outsider, conversation):
    share = await shared(conversation, owner, audience="signed_in", mode="live")

    assert (await get(outsider, reverse("share_detail", args=["x" * 43]))).status_code == 404
    assert (await get(None, reverse("share_detail", args=["x" * 43]))).status_code == 404
    assert (await get(outsider, reverse("conversation_shares", args=[conversation.pk]))).status_code == 404
    assert (await post(outsider, reverse("share_revoke", args=[conversation.pk, share.pk]))).status_code == 404
    assert (await get(outsider, page_of(share))).status_code == 200  # still open: the outsider changed nothing


async def test_the_viewer_cannot_send_the_conversations_socket_refuses_them(
    chatted, socket_for, owner, recipient, conversation,
):
    share = await shared(conversation, owner, audience="users", mode="live", recipients="recipient")
    assert (await get(recipient, page_of(share))).status_code == 200

    socket = await socket_for(recipient, conversation.pk)
    accepted, _ = await socket.connect()

    assert not accepted


async def test_unknown_recipients_are_refused_by_name_and_nothing_is_shared(chatted, owner, recipient, conversation):
    response = await post(owner, reverse("conversation_shares", args=[conversation.pk]), {
        "audience": "users", "mode": "snapshot", "recipients": "RECIPIENT, nobody@example.com ghost",
    })

    assert response.status_code == 400
    assert "No account here has the username or email address: nobody@example.com, ghost." in (
        response.content.decode()
    )
    assert not await database_sync_to_async(Share.objects.exists)()


async def test_a_snapshot_waits_for_a_reply_being_written(chatted, owner, recipient, conversation):
    await database_sync_to_async(
        lambda: Message.objects.filter(pk=conversation.messages.last().pk).update(status=Message.Status.STREAMING)
    )()

    response = await post(owner, reverse("conversation_shares", args=[conversation.pk]), {
        "audience": "users", "mode": "snapshot", "recipients": "recipient",
    })

    assert response.status_code == 400 and "A reply is being written." in response.content.decode()
    assert not await database_sync_to_async(Share.objects.exists)()


async def test_recipients_are_found_by_email_and_see_the_share_in_their_list(chatted, owner, recipient, conversation):
    share = await shared(conversation, owner, audience="users", mode="snapshot", recipients="recipient@EXAMPLE.com")

    response = await get(recipient, reverse("shares_received"))

    assert page_of(share) in response.content.decode()
    page = (await get(owner, reverse("conversation_shares", args=[conversation.pk]))).content.decode()
    assert f"http://testserver{page_of(share)}" in page


@database_sync_to_async
def queries_to_open(user, url) -> int:
    client = browser(user)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


async def test_the_shared_page_costs_the_same_queries_for_a_short_and_a_long_conversation(
    chatted, owner, recipient, conversation,
):
    share = await shared(conversation, owner, audience="users", mode="live", recipients="recipient")
    short = await queries_to_open(recipient, page_of(share))

    for text in ("And a trie?", "And a radix tree?", "And a skip list?"):
        await say(chatted, text)

    assert await queries_to_open(recipient, page_of(share)) == short


# --- files -----------------------------------------------------------------------------------------------


async def test_files_open_through_the_share_only_for_messages_on_its_path(
    socket_for, owner, recipient, conversation,
):
    sent = (await database_sync_to_async(uploaded)(owner, "photo.png", image_bytes()))[0]
    kept = (await database_sync_to_async(uploaded)(owner, "private.png", image_bytes(color=(1, 2, 3))))[0]
    socket = await connected(socket_for, owner, conversation)
    await say(socket, "Look", attachments=[sent.pk])
    share = await shared(conversation, owner, audience="users", mode="snapshot", recipients="recipient")

    response = await get(recipient, reverse("share_attachment", args=[share.token, sent.pk]))
    thumbnail = await get(recipient, reverse("share_attachment_thumbnail", args=[share.token, sent.pk]))

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["Content-Security-Policy"].startswith("sandbox")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert thumbnail.status_code == 200
    assert (await get(recipient, reverse("share_attachment", args=[share.token, kept.pk]))).status_code == 404
    assert (await get(recipient, reverse("attachment_file", args=[sent.pk]))).status_code == 404
    assert (await get(recipient, reverse("attachment_thumbnail", args=[sent.pk]))).status_code == 404
    page = (await get(recipient, page_of(share))).content.decode()
    assert reverse("share_attachment", args=[share.token, sent.pk]) in page
    assert f'"{reverse("attachment_file", args=[sent.pk])}"' not in page


# --- continue in my own chats ----------------------------------------------------------------------------


@database_sync_to_async
def copied(conversation_id) -> list[Message]:
    return list(Message.objects.filter(conversation_id=conversation_id).prefetch_related("attachments"))


async def test_continuing_in_my_own_chats_copies_the_path_with_its_files_and_none_of_its_cost(
    socket_for, owner, recipient, conversation,
):
    await database_sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(system_prompt="Owner's secret")
    image = (await database_sync_to_async(uploaded)(owner, "photo.png", image_bytes()))[0]
    socket = await connected(socket_for, owner, conversation)
    await say(socket, "Look", attachments=[image.pk])
    await say(socket, "And now?")
    share = await shared(conversation, owner, audience="users", mode="live", recipients="recipient")
    calls_before = await database_sync_to_async(ApiCall.objects.count)()

    response = await post(recipient, reverse("share_continue", args=[share.token]))

    fork = await database_sync_to_async(Conversation.objects.get)(owner=recipient)
    assert response.status_code == 302 and response.url == reverse("conversation_detail", args=[fork.pk])
    originals, copies = await copied(conversation.pk), await copied(fork.pk)
    assert [(m.role, m.text) for m in copies] == [(m.role, m.text) for m in originals]
    assert [m.parent_id for m in copies] == [None, *[m.pk for m in copies[:-1]]]
    assert fork.current_leaf_id == copies[-1].pk
    assert all(m.cost == 0 and m.input_tokens == 0 and m.output_tokens == 0 for m in copies)
    assert fork.system_prompt != "Owner's secret" and fork.model == conversation.model
    [copy] = copies[0].attachments.all()
    assert copy.pk != image.pk and copy.owner_id == recipient.pk and copy.file == image.file
    assert copies[0].content[0] == {"type": "attachment", "attachment_id": copy.pk}
    assert await database_sync_to_async(ApiCall.objects.count)() == calls_before
    assert (await get(recipient, reverse("attachment_file", args=[copy.pk]))).status_code == 200


@database_sync_to_async
def an_earlier_conversation(owner, text: str) -> None:
    earlier = chat_services.conversation_create(owner=owner)
    Message.objects.create(conversation=earlier, role="user", content=[{"type": "text", "text": text}])


def tool_results(messages) -> list:
    """The contents of the tool_result blocks of `messages` (payloads or Message rows)."""
    contents = [message["content"] if isinstance(message, dict) else message.content for message in messages]
    return [block["content"] for content in contents for block in content if block["type"] == "tool_result"]


async def test_a_share_and_a_viewers_fork_withhold_what_tools_read_of_the_owners_own_data(
    socket_for, owner, recipient, conversation,
):
    await an_earlier_conversation(owner, "My locker code is 4417-ZEBRA")
    socket = await connected(socket_for, owner, conversation)
    await say(socket, "Search my conversations for locker code")
    [found] = tool_results(await copied(conversation.pk))
    assert "4417-ZEBRA" in found  # the owner's own reply keeps what the tool read
    share = await shared(conversation, owner, audience="users", mode="live", recipients="recipient")

    page = share_data(await get(recipient, page_of(share)))
    await post(recipient, reverse("share_continue", args=[share.token]))

    assert tool_results(page["messages"]) == [WITHHELD]
    fork = await database_sync_to_async(Conversation.objects.get)(owner=recipient)
    assert tool_results(await copied(fork.pk)) == [WITHHELD]
    tool_uses = [b for m in page["messages"] for b in m["content"] if b["type"] == "tool_use"]
    assert [b["name"] for b in tool_uses] == ["search_conversations"]  # the call itself is still shown


async def test_continuing_a_public_link_without_an_account_asks_to_sign_in(chatted, owner, conversation):
    await allow_public_links(True)
    share = await shared(conversation, owner, audience="public", mode="snapshot")

    response = await post(None, reverse("share_continue", args=[share.token]))

    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert await database_sync_to_async(Conversation.objects.count)() == 1


# --- admin -----------------------------------------------------------------------------------------------


async def test_an_admin_revokes_shares_from_the_list_and_opens_the_one_policy(chatted, owner, recipient, conversation):
    share = await shared(conversation, owner, audience="users", mode="live", recipients="recipient")
    admin = await database_sync_to_async(get_user_model().objects.create_superuser)(
        "admin", "admin@example.com", "x-admin-pass-1",
    )

    policy = await get(admin, reverse("admin:shares_sharepolicy_changelist"))
    listed = await get(admin, reverse("admin:shares_share_changelist"))
    revoked = await post(admin, reverse("admin:shares_share_changelist"), {
        "action": "revoke", "_selected_action": [share.pk],
    })

    assert policy.status_code == 302 and listed.status_code == 200 and revoked.status_code == 302
    assert (await get(recipient, page_of(share))).status_code == 404
