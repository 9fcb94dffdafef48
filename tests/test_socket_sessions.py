"""Open sockets follow the session they were opened with, and one user holds only so many."""

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from conftest import ORIGIN
from django.contrib.auth import HASH_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from test_consumer import TIMEOUT, connected, frames_until_final

from chat import services
from chat.models import Conversation, Message
from chat.socket_watch import SessionRef, session_is_live, sessions_live

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]


@pytest.fixture(autouse=True)
def quick_session_checks(settings):
    settings.CHAT_SESSION_CHECK_INTERVAL = 0.05


@pytest.fixture
async def browser_socket():
    """An open socket and the signed-in browser (a test Client) whose session cookie it was opened with."""
    from config.asgi import application

    opened = []

    async def open_socket(user, conversation):
        client = Client()
        await asyncio.to_thread(client.force_login, user)
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        headers = [(b"origin", ORIGIN), (b"host", b"127.0.0.1"), (b"cookie", cookie)]
        socket = WebsocketCommunicator(application, f"/ws/conversations/{conversation.pk}/", headers=headers)
        opened.append(socket)
        accepted, _ = await socket.connect()
        assert accepted
        return socket, client

    yield open_socket
    for socket in opened:
        await socket.disconnect()


def session_of(client) -> Session:
    return Session.objects.get(session_key=client.cookies["sessionid"].value)


def log_out(client, user):
    client.post("/accounts/logout/")


def change_password(client, user):
    user.set_password("another-long-passphrase")
    user.save(update_fields=["password"])


def deactivate(client, user):
    user.is_active = False
    user.save(update_fields=["is_active"])


def delete_session(client, user):
    session_of(client).delete()


def expire_session(client, user):
    Session.objects.filter(pk=session_of(client).pk).update(expire_date=timezone.now() - timedelta(seconds=1))


SESSION_ENDINGS = [log_out, change_password, deactivate, delete_session, expire_session]


async def assert_closed_as(socket, code: str, close_code: int) -> None:
    frame = await socket.receive_json_from(timeout=TIMEOUT)
    assert (frame["type"], frame["code"]) == ("error", code)
    closing = await socket.receive_output(timeout=TIMEOUT)
    assert (closing["type"], closing["code"]) == ("websocket.close", close_code)
    assert closing["reason"]


@pytest.mark.parametrize("end_session", SESSION_ENDINGS)
async def test_a_socket_whose_session_ends_is_told_and_closed(
    browser_socket, owner, conversation, end_session
):
    socket, client = await browser_socket(owner, conversation)

    await database_sync_to_async(end_session)(client, owner)

    await assert_closed_as(socket, "session_ended", 4401)


async def test_a_closed_socket_relays_nothing_while_the_users_other_session_goes_on(
    browser_socket, owner, conversation
):
    ended, ended_browser = await browser_socket(owner, conversation)
    live, _ = await browser_socket(owner, conversation)
    await database_sync_to_async(log_out)(ended_browser, owner)
    await assert_closed_as(ended, "session_ended", 4401)

    await live.send_json_to({"type": "send", "text": "Still signed in here"})
    frames = await frames_until_final(live)

    assert frames[-1]["message"]["status"] == "complete"
    assert await ended.receive_nothing()


def signed_in(user) -> tuple[Client, SessionRef]:
    """A browser signed in as `user`, and its session as a socket opened from it would hold it."""
    client = Client()
    client.force_login(user)
    return client, SessionRef(client.session.session_key, user.pk, client.session[HASH_SESSION_KEY])


@pytest.mark.parametrize("end_session", SESSION_ENDINGS)
def test_session_is_live_until_the_session_ends(owner, end_session):
    client, ref = signed_in(owner)
    assert session_is_live(*ref)

    end_session(client, owner)

    assert not session_is_live(*ref)


def test_a_session_is_not_live_for_another_user(owner, outsider):
    _, (key, _, auth_hash) = signed_in(owner)

    assert not session_is_live(key, outsider.pk, auth_hash)


@pytest.mark.parametrize("sessions", [1, 25])
def test_checking_sessions_takes_two_queries_however_many_there_are(
    owner, outsider, django_assert_num_queries, sessions
):
    refs = [signed_in(owner)[1] for _ in range(sessions)] + [signed_in(outsider)[1]]

    with django_assert_num_queries(2):
        live = sessions_live(refs)

    assert live == set(refs)


async def test_a_user_may_hold_twenty_sockets_and_the_next_is_refused_until_one_closes(
    socket_for, owner, conversation
):
    sockets = [await connected(socket_for, owner, conversation) for _ in range(20)]
    refused = await connected(socket_for, owner, conversation)
    await assert_closed_as(refused, "too_many_sockets", 4429)

    await sockets[0].disconnect()
    admitted = await connected(socket_for, owner, conversation)
    await admitted.send_json_to({"type": "send", "text": "Room for one more"})

    assert (await frames_until_final(admitted))[-1]["message"]["status"] == "complete"


async def test_the_socket_cap_counts_each_user_apart(socket_for, owner, outsider, conversation, settings):
    settings.CHAT_SOCKETS_PER_USER = 1
    outsiders_conversation = await database_sync_to_async(services.conversation_create)(owner=outsider)
    await connected(socket_for, owner, conversation)

    other = await connected(socket_for, outsider, outsiders_conversation)
    await other.send_json_to({"type": "send", "text": "My own tab"})

    assert (await frames_until_final(other))[-1]["message"]["status"] == "complete"


@pytest.mark.parametrize("action", ["delete", "switch"])
async def test_a_socket_whose_session_was_flushed_cannot_change_the_branch_and_is_ended(
    browser_socket, owner, conversation, settings, action
):
    settings.CHAT_SESSION_CHECK_INTERVAL = 3600  # the frame, not the periodic check, must find the ended session
    socket, client = await browser_socket(owner, conversation)
    await socket.send_json_to({"type": "send", "text": "What is a B-tree?"})
    first = (await frames_until_final(socket))[-1]["message"]
    await socket.send_json_to({"type": "regenerate"})
    await frames_until_final(socket)
    before = await database_sync_to_async(lambda: (
        list(Message.objects.values_list("pk", flat=True)), Conversation.objects.get().current_leaf_id
    ))()
    await database_sync_to_async(lambda: SessionStore(session_key=session_of(client).session_key).flush())()

    await socket.send_json_to({"type": action, "message": first["id"]})

    await assert_closed_as(socket, "session_ended", 4401)
    after = await database_sync_to_async(lambda: (
        list(Message.objects.values_list("pk", flat=True)), Conversation.objects.get().current_leaf_id
    ))()
    assert after == before and first["id"] in after[0]
