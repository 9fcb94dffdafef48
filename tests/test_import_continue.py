"""An imported conversation opens and goes on like any other: the next reply is asked with the imported
history (the active path), through the real socket, the real SDK and the offline model; and the import's
upload is let through the body limit that holds every other form to a few megabytes."""

import io
import json
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat import imports
from chat.models import ApiCall, Conversation
from config.body_limit import BodyLimit
from tests.test_consumer import connected, frames_until_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]

SAMPLE = Path(__file__).parent / "import_samples" / "chatgpt_conversations.json"


def imported_sample(owner) -> Conversation:
    report = imports.conversations_import(owner=owner, upload=io.BytesIO(SAMPLE.read_bytes()))
    return report.imported[0]


def said(request: dict) -> list[tuple[str, str]]:
    """The request's turns as (role, text), text blocks only."""
    return [
        (turn["role"], "".join(block.get("text", "") for block in turn["content"] if block["type"] == "text"))
        for turn in request["messages"]
    ]


async def test_an_imported_conversation_is_continued_with_its_history(socket_for, owner, offline_model_reset):
    conversation = await database_sync_to_async(imported_sample)(owner)
    assert await database_sync_to_async(ApiCall.objects.count)() == 0
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "What about rye flour?"})
    frames = await frames_until_final(socket)

    assert frames[-1]["message"]["status"] == "complete"
    [sent] = [body for body in offline_model_reset.received if body.get("stream")]
    assert said(sent) == [
        ("user", "_[An image or file was attached; it was not imported.]_How do I keep my starter alive?"),
        ("assistant", "Feed it every 12 hours at room temperature."),
        ("user", "And in the fridge?"),
        ("assistant", "Once a week is enough in the fridge."),
        ("user", "What about rye flour?"),
    ]  # the active path: the first answer, a version beside it, is not sent
    assert sent["model"] == conversation.model
    assert await database_sync_to_async(ApiCall.objects.filter(conversation=conversation).count)() == 1


async def test_an_outsider_cannot_open_an_imported_conversations_socket(socket_for, owner, outsider):
    conversation = await database_sync_to_async(imported_sample)(owner)
    socket = await socket_for(outsider, conversation.pk)

    accepted, _ = await socket.connect()

    assert not accepted


def _session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _through_the_guard(length: int, cookie: bytes) -> tuple[tuple[int, str] | None, bool]:
    """POST `length` declared bytes to the import URL through BodyLimit: the status it answered with, if it
    did (with its sentence), and whether Django behind it was reached."""
    reached = False

    async def django(scope, receive, send):
        nonlocal reached
        reached = True

    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    headers = [(b"content-length", str(length).encode()), (b"cookie", cookie)]
    scope = {"type": "http", "method": "POST", "path": "/conversations/import/", "headers": headers}
    await BodyLimit(django)(scope, receive, send)
    if not sent:
        return None, reached
    return (sent[0]["status"], json.loads(sent[1]["body"])["error"]), reached


async def test_a_signed_in_import_may_carry_more_than_a_form_and_no_more_than_its_cap(owner, settings):
    settings.IMPORT_MAX_BYTES = 50 * 1024 * 1024
    cookie = await database_sync_to_async(_session_cookie)(owner)

    assert await _through_the_guard(settings.REQUEST_MAX_BODY_BYTES + 1, cookie) == (None, True)
    assert await _through_the_guard(settings.IMPORT_MAX_BYTES + 1, cookie) == (
        (413, "An import file can be at most 50 MB."),
        False,
    )
    assert await _through_the_guard(settings.REQUEST_MAX_BODY_BYTES + 1, b"sessionid=made-up") == (
        (413, "A request can carry at most 2.5 MB."),
        False,
    )
