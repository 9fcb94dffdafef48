"""Half-price replies over the conversation websocket: `send` with `batch: true`, `cancel`, and the page learning
the answer. Real sockets (channels' communicator through the real ASGI stack), the real SDK, the offline model."""

import pytest
from channels.db import database_sync_to_async

from batches.models import Batch
from batches.worker import batches_work_once
from billing.models import Reservation
from chat.models import Message
from tests.test_consumer import TIMEOUT, connected

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def offline_batches(settings, tmp_path):
    settings.OFFLINE_MODEL_BATCH_DIR = str(tmp_path / "offline-batches")
    settings.OFFLINE_MODEL_BATCH_SECONDS = 0


async def queued_reply(socket) -> dict:
    await socket.send_json_to({"type": "send", "text": "No rush: what is a haiku?", "batch": True})
    while True:
        frame = await socket.receive_json_from(timeout=TIMEOUT)
        if frame["type"] == "message" and frame["message"]["role"] == "assistant":
            return frame["message"]


async def test_a_half_price_send_is_queued_and_starts_no_generation(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)

    reply = await queued_reply(socket)

    assert reply["status"] == "queued"
    from chat.replies.generation import running

    assert reply["id"] not in running
    assert await database_sync_to_async(Batch.objects.count)() == 1


async def test_a_second_send_is_refused_while_a_reply_is_queued(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    await queued_reply(socket)

    await socket.send_json_to({"type": "send", "text": "Actually, now please"})
    frame = await socket.receive_json_from(timeout=TIMEOUT)

    assert frame["type"] == "error" and frame["code"] == "queued" and "queued" in frame["detail"]


async def test_batch_must_be_a_boolean(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Hi", "batch": "yes"})
    frame = await socket.receive_json_from(timeout=TIMEOUT)
    assert frame["code"] == "bad_frame" and "`batch`" in frame["detail"]


async def test_cancel_frame_stops_the_queued_reply_for_every_socket(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    other = await connected(socket_for, owner, conversation)
    reply = await queued_reply(socket)
    while (await other.receive_json_from(timeout=TIMEOUT))["type"] != "conversation":
        pass

    await socket.send_json_to({"type": "cancel", "message": reply["id"]})
    frame = await other.receive_json_from(timeout=TIMEOUT)

    assert frame["type"] == "message" and frame["message"]["id"] == reply["id"]
    assert frame["message"]["status"] == "stopped"
    assert not await database_sync_to_async(Reservation.objects.exists)()


async def test_an_outsider_cannot_cancel_a_queued_reply(socket_for, owner, outsider, conversation):
    socket = await connected(socket_for, owner, conversation)
    reply = await queued_reply(socket)
    from chat import services

    theirs = await database_sync_to_async(services.conversation_create)(owner=outsider)
    their_socket = await connected(socket_for, outsider, theirs)

    await their_socket.send_json_to({"type": "cancel", "message": reply["id"]})
    frame = await their_socket.receive_json_from(timeout=TIMEOUT)

    assert frame["type"] == "error" and frame["code"] == "not_queued"
    assert (await database_sync_to_async(Message.objects.get)(pk=reply["id"])).status == "queued"


async def test_a_worker_in_the_same_process_tells_the_open_socket(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)
    reply = await queued_reply(socket)
    while (await socket.receive_json_from(timeout=TIMEOUT))["type"] != "conversation":
        pass

    await batches_work_once()  # submits
    await batches_work_once()  # settles, and publishes to the conversation's sockets
    frame = await socket.receive_json_from(timeout=TIMEOUT)

    assert frame["type"] == "message" and frame["message"]["id"] == reply["id"]
    assert frame["message"]["status"] == "complete" and frame["message"]["content"][0]["text"]


async def test_without_a_shared_layer_the_page_learns_the_reply_by_asking(socket_for, owner, conversation):
    """The worker is another process with the in-memory layer: its frame never reaches this socket. The page
    asks with `resume` (static/chat/frames.js) and gets the stored answer."""
    socket = await connected(socket_for, owner, conversation)
    reply = await queued_reply(socket)
    while (await socket.receive_json_from(timeout=TIMEOUT))["type"] != "conversation":
        pass
    from django.core.management import call_command

    # As the separate worker process would: through its own event loop, whose sockets are none of ours.
    await database_sync_to_async(call_command, thread_sensitive=False)("batches_work", "--once")
    await database_sync_to_async(call_command, thread_sensitive=False)("batches_work", "--once")
    assert await socket.receive_nothing(timeout=0.2)

    await socket.send_json_to({"type": "resume", "message": reply["id"]})
    frame = await socket.receive_json_from(timeout=TIMEOUT)

    assert frame["message"]["id"] == reply["id"] and frame["message"]["status"] == "complete"
