"""The Files API: an attachment is uploaded once, at the first turn that sends it, and referenced by file_id in
later turns and other conversations of its owner; through real websockets, the real SDK and the offline model's
Files endpoints (chat/llm/offline/files.py)."""

import anthropic
import httpx2
import pytest
from attachment_samples import image_bytes, pdf_bytes
from channels.db import database_sync_to_async
from document_samples import uploaded
from test_consumer import assistant_id, connected, frames_until_final, reload

from chat import services as chat_services
from chat.llm.client import anthropic_client
from chat.llm.offline import offline_transport
from chat.models import Message
from filesapi.models import UpstreamFile
from filesapi.services import backend_key
from projects import services as project_services
from projects.models import ProjectMember

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]

UPLOADS = "/v1/files"


@pytest.fixture(autouse=True)
def files_api_on(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.OFFLINE_MODEL_FILES_DIR = str(tmp_path / "offline-files")
    settings.CHAT_FILES_API = "auto"


@database_sync_to_async
def upload(owner, name: str, data: bytes):
    [attachment] = uploaded(owner, name, data)
    return attachment


@database_sync_to_async
def new_conversation(owner):
    return chat_services.conversation_create(owner=owner)


@database_sync_to_async
def upstream_files(**filters) -> list[UpstreamFile]:
    return list(UpstreamFile.objects.filter(**filters).order_by("id"))


def sources(body: dict) -> list[dict]:
    """The sources of the image and document blocks of a request body, in order."""
    return [
        block["source"]
        for message in body["messages"]
        for block in message["content"]
        if block["type"] in ("image", "document")
    ]


async def turn(socket, text: str, attachments=()) -> Message:
    await socket.send_json_to({"type": "send", "text": text, "attachments": list(attachments)})
    reply = await reload(assistant_id(await frames_until_final(socket)))
    assert reply.status == Message.Status.COMPLETE, reply.error
    return reply


async def test_the_first_turn_uploads_and_later_turns_and_conversations_reuse_the_upload(
    socket_for, owner, conversation, offline_model_reset
):
    model = offline_model_reset
    pdf = await upload(owner, "report.pdf", pdf_bytes(["Quarterly report\nRevenue grew", "Appendix"]))
    image = await upload(owner, "chart.png", image_bytes())
    assert model.requests_by_path[UPLOADS] == 0  # nothing goes upstream until a turn sends it

    socket = await connected(socket_for, owner, conversation)
    first = await turn(socket, "What is in these?", [pdf.pk, image.pk])

    assert model.requests_by_path[UPLOADS] == 2
    rows = await upstream_files(owner=owner)
    assert sorted(row.kind for row in rows) == ["image", "pdf"]
    by_kind = {row.kind: row.file_id for row in rows}
    assert sources(model.received[-1]) == [
        {"type": "file", "file_id": by_kind["pdf"]},
        {"type": "file", "file_id": by_kind["image"]},
    ]
    # The model read the files the ids name, as it would have read them inline.
    assert 'Document 1: PDF, 2 pages, first line "Quarterly report".' in first.text
    assert "Image 1: PNG, 64 x 48, RGB." in first.text

    await turn(socket, "And the second page?")
    assert sources(model.received[-1]) == [
        {"type": "file", "file_id": by_kind["pdf"]},
        {"type": "file", "file_id": by_kind["image"]},
    ]

    other = await new_conversation(owner)
    again = await upload(owner, "report-copy.pdf", pdf_bytes(["Quarterly report\nRevenue grew", "Appendix"]))
    elsewhere = await connected(socket_for, owner, other)
    await turn(elsewhere, "Summarise this", [again.pk])

    assert sources(model.received[-1]) == [{"type": "file", "file_id": by_kind["pdf"]}]
    assert model.requests_by_path[UPLOADS] == 2  # no second upload, in either conversation
    assert len(await upstream_files()) == 2


async def test_a_file_deleted_upstream_is_uploaded_again_and_the_reply_succeeds(
    socket_for, owner, conversation, offline_model_reset
):
    model = offline_model_reset
    pdf = await upload(owner, "report.pdf", pdf_bytes(["Quarterly report"]))
    socket = await connected(socket_for, owner, conversation)
    await turn(socket, "Read this", [pdf.pk])
    [row] = await upstream_files()
    await _offline_client().files.delete(row.file_id)  # gone upstream (a workspace clean-up, say)

    reply = await turn(socket, "Read it again")

    [renewed] = await upstream_files()
    assert renewed.file_id != row.file_id
    assert model.requests_by_path[UPLOADS] == 2
    assert sources(model.received[-1]) == [{"type": "file", "file_id": renewed.file_id}]
    assert 'first line "Quarterly report"' in reply.text
    assert reply.error == ""


async def test_an_expired_file_is_uploaded_again(socket_for, owner, conversation, offline_model_reset):
    model = offline_model_reset
    pdf = await upload(owner, "report.pdf", pdf_bytes(["Quarterly report"]))
    socket = await connected(socket_for, owner, conversation)
    await turn(socket, "Read this", [pdf.pk])
    [row] = await upstream_files()
    _expire(model, row.file_id, model.files.metadata(row.file_id))

    await turn(socket, "Read it again")

    [renewed] = await upstream_files()
    assert renewed.file_id != row.file_id
    assert sources(model.received[-1]) == [{"type": "file", "file_id": renewed.file_id}]


async def test_with_the_files_api_off_attachments_go_inline(
    socket_for, owner, conversation, offline_model_reset, settings
):
    settings.CHAT_FILES_API = "off"
    model = offline_model_reset
    image = await upload(owner, "chart.png", image_bytes())
    socket = await connected(socket_for, owner, conversation)

    await turn(socket, "Look", [image.pk])

    assert model.requests_by_path[UPLOADS] == 0
    [source] = sources(model.received[-1])
    assert source["type"] == "base64" and source["media_type"] == "image/png"
    assert await upstream_files() == []


async def test_when_the_files_api_fails_the_turn_sends_inline_and_a_later_turn_uploads(
    socket_for, owner, conversation, offline_model_reset
):
    model = offline_model_reset
    image = await upload(owner, "chart.png", image_bytes())
    socket = await connected(socket_for, owner, conversation)
    model.files.inject_fault(times=1)  # the next upload answers 500

    await turn(socket, "Look", [image.pk])
    [source] = sources(model.received[-1])
    assert source["type"] == "base64"
    assert await upstream_files() == []

    await turn(socket, "Again")
    [row] = await upstream_files()
    assert sources(model.received[-1]) == [{"type": "file", "file_id": row.file_id}]


async def test_after_uploads_time_out_later_turns_go_inline_at_once_for_a_while(
    socket_for, owner, conversation, offline_model_reset, settings, monkeypatch
):
    """A Files API that hangs costs one turn the upload timeout; the turns of the next minute send inline without
    waiting on it again, then uploads are tried again (filesapi/services.py `UPLOAD_PAUSE_SECONDS`)."""
    from filesapi import services as files_services

    monkeypatch.setattr(files_services, "_upload_pause_until", 0.0)  # restored after, for the other tests
    model = offline_model_reset
    first, second = await upload(owner, "chart.png", image_bytes()), await upload(owner, "a.pdf", pdf_bytes(["A"]))
    socket = await connected(socket_for, owner, conversation)
    settings.CHAT_FILES_UPLOAD_TIMEOUT = 0  # the upload cannot answer in time
    await turn(socket, "Look", [first.pk])
    assert [source["type"] for source in sources(model.received[-1])] == ["base64"]
    tried = model.requests_by_path[UPLOADS]

    settings.CHAT_FILES_UPLOAD_TIMEOUT = 10
    await turn(socket, "And this", [second.pk])
    assert model.requests_by_path[UPLOADS] == tried  # not tried during the pause
    assert [source["type"] for source in sources(model.received[-1])] == ["base64", "base64"]
    assert await upstream_files() == []

    monkeypatch.setattr(files_services, "_upload_pause_until", 0.0)  # the pause is over
    await turn(socket, "Again")
    assert [source["type"] for source in sources(model.received[-1])] == ["file", "file"]


async def test_a_different_api_key_gets_its_own_upload(socket_for, owner, conversation, offline_model_reset):
    model = offline_model_reset
    image = await upload(owner, "chart.png", image_bytes())
    socket = await connected(socket_for, owner, conversation)
    await turn(socket, "Look", [image.pk])
    [row] = await upstream_files()
    # As if the row had been made under another key: its id must never be sent with this one.
    await database_sync_to_async(UpstreamFile.objects.update)(backend="0" * 64)

    await turn(socket, "Again")

    rows = await upstream_files()
    assert len(rows) == 2 and model.requests_by_path[UPLOADS] == 2
    [source] = sources(model.received[-1])
    assert source["type"] == "file" and source["file_id"] != row.file_id


def test_backend_keys_differ_by_api_key_and_base_url():
    def client(key, url):
        return anthropic.AsyncAnthropic(
            api_key=key, base_url=url, http_client=httpx2.AsyncClient(transport=offline_transport())
        )

    one = backend_key(client("key-one", "https://api.anthropic.com"))
    assert one == backend_key(client("key-one", "https://api.anthropic.com"))
    assert one != backend_key(client("key-two", "https://api.anthropic.com"))
    assert one != backend_key(client("key-one", "https://gateway.example.com"))


async def test_another_users_identical_file_gets_their_own_upload(
    socket_for, owner, outsider, conversation, offline_model_reset
):
    model = offline_model_reset
    data = image_bytes()
    mine = await upload(owner, "chart.png", data)
    socket = await connected(socket_for, owner, conversation)
    await turn(socket, "Look", [mine.pk])

    theirs = await upload(outsider, "chart.png", data)
    their_conversation = await new_conversation(outsider)
    their_socket = await connected(socket_for, outsider, their_conversation)
    await turn(their_socket, "Look", [theirs.pk])

    [my_row] = await upstream_files(owner=owner)
    [their_row] = await upstream_files(owner=outsider)
    assert my_row.sha256 == their_row.sha256 and my_row.file_id != their_row.file_id
    assert sources(model.received[-1]) == [{"type": "file", "file_id": their_row.file_id}]
    assert model.requests_by_path[UPLOADS] == 2


async def test_a_project_members_turn_references_the_owners_upload_of_a_project_file(
    socket_for, owner, django_user_model, offline_model_reset
):
    model = offline_model_reset
    member = await database_sync_to_async(django_user_model.objects.create_user)(
        username="member", password="x" * 12
    )
    notes = await upload(owner, "notes.txt", b"Page size is 8 KiB.\n" * 20)

    @database_sync_to_async
    def project_conversations():
        project = project_services.project_create(owner=owner, name="Storage engine")
        project_services.project_member_set(project=project, user=member, access=ProjectMember.Access.READ)
        project_services.project_files_add(project=project, attachment_ids=[notes.pk], user=owner)
        return (
            project_services.project_conversation_create(project=project, owner=owner),
            project_services.project_conversation_create(project=project, owner=member),
        )

    owners, members = await project_conversations()
    await turn(await connected(socket_for, owner, owners), "What is the page size?")
    await turn(await connected(socket_for, member, members), "And the split point?")

    [row] = await upstream_files()
    assert row.owner_id == owner.pk and row.kind == "text"
    assert sources(model.received[-1]) == [{"type": "file", "file_id": row.file_id}]
    assert model.requests_by_path[UPLOADS] == 1


# --- the offline Files API through the SDK ------------------------------------------------------------------


def _offline_client() -> anthropic.AsyncAnthropic:
    return anthropic_client()


def _expire(model, file_id: str, stored: dict) -> None:
    """Moves the file's clock past an expiry, as if it had been uploaded with expires_in_seconds."""
    import json
    from pathlib import Path

    from django.conf import settings

    path = Path(settings.OFFLINE_MODEL_FILES_DIR) / f"{file_id}.json"
    path.write_text(json.dumps({**stored, "expires_at": stored["created_at"] + 3600}))
    model.files.clock = lambda: stored["created_at"] + 3601


async def test_uploaded_files_are_listed_and_described_but_only_produced_files_download(offline_model_reset):
    from chat.llm.offline.files import store_produced_file

    client = _offline_client()
    uploaded_file = await client.files.upload(file=("notes.txt", b"hello\n", "text/plain"))
    assert uploaded_file.downloadable is False and uploaded_file.size_bytes == 6
    assert (await client.files.retrieve_metadata(uploaded_file.id)).filename == "notes.txt"
    produced = store_produced_file("table.csv", "text/csv", b"a,b\n1,2\n")

    page = await client.files.list(limit=10)
    assert [file.id for file in page.data] == [produced, uploaded_file.id]  # newest first
    assert await (await client.files.download(produced)).read() == b"a,b\n1,2\n"
    with pytest.raises(anthropic.BadRequestError) as refused:
        await client.files.download(uploaded_file.id)
    assert refused.value.error_code == "file_not_downloadable"

    await client.files.delete(uploaded_file.id)
    with pytest.raises(anthropic.NotFoundError):
        await client.files.retrieve_metadata(uploaded_file.id)


async def test_a_message_naming_an_unknown_or_expired_file_is_refused(offline_model_reset):
    client = _offline_client()
    message = {
        "role": "user",
        "content": [
            {
                "type": "document",
                "source": {"type": "file", "file_id": "file_offline_000000000000000000000000"},
            },
            {"type": "text", "text": "Read it"},
        ],
    }
    with pytest.raises(anthropic.NotFoundError) as refused:
        await client.messages.create(model="claude-sonnet-5-5", max_tokens=100, messages=[message])
    assert "file_offline_000000000000000000000000" in refused.value.message

    expiring = await client.files.upload(file=("a.txt", b"text", "text/plain"), expires_in_seconds=3600)
    offline_model_reset.files.clock = lambda: expiring.created_at.timestamp() + 3601
    message["content"][0]["source"]["file_id"] = expiring.id
    with pytest.raises(anthropic.NotFoundError) as expired:
        await client.messages.create(model="claude-sonnet-5-5", max_tokens=100, messages=[message])
    assert expired.value.error_code == "file_expired"


async def test_an_image_block_refuses_a_file_that_is_not_an_image(offline_model_reset):
    client = _offline_client()
    text_file = await client.files.upload(file=("a.txt", b"text", "text/plain"))
    message = {
        "role": "user",
        "content": [
            {"type": "image", "source": {"type": "file", "file_id": text_file.id}},
            {"type": "text", "text": "See"},
        ],
    }
    with pytest.raises(anthropic.BadRequestError, match="image block takes"):
        await client.messages.create(model="claude-sonnet-5-5", max_tokens=100, messages=[message])


def test_admins_see_the_uploads_and_forget_them(admin_client, owner):
    row = UpstreamFile.objects.create(
        owner=owner, backend="b" * 64, sha256="s" * 64, file_id="file_offline_0123", kind="pdf", size=10
    )
    listing = admin_client.get("/admin/filesapi/upstreamfile/")
    assert listing.status_code == 200 and "file_offline_0123" in listing.content.decode()

    answer = admin_client.post(
        "/admin/filesapi/upstreamfile/", {"action": "forget", "_selected_action": [row.pk]}, follow=True
    )

    assert "1 uploads forgotten" in answer.content.decode()
    assert not UpstreamFile.objects.exists()
