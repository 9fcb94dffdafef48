"""Sending attachments: the message claims them, and each request turns them into image and document blocks."""

import pytest
from attachment_samples import image_bytes, pdf_bytes, photo_bytes
from channels.db import database_sync_to_async
from django.urls import reverse
from document_samples import docx_bytes, uploaded
from test_consumer import TIMEOUT, assistant_id, connected, frames_until_final, reload
from transcripts import message_appended

from chat.models import Attachment, Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("generations_drained")]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@database_sync_to_async
def upload(owner, name: str, data: bytes) -> Attachment:
    [attachment] = uploaded(owner, name, data)
    return attachment


@database_sync_to_async
def stored_messages(conversation) -> list[Message]:
    return list(conversation.messages.all())


@database_sync_to_async
def fresh(attachment: Attachment) -> Attachment:
    attachment.refresh_from_db()
    return attachment


async def refused(socket, frame: dict) -> dict:
    await socket.send_json_to(frame)
    answer = await socket.receive_json_from(timeout=TIMEOUT)
    assert answer["type"] == "error", answer
    return answer


# --- the whole path -------------------------------------------------------------------------------------


async def test_an_image_and_a_pdf_reach_the_model_and_the_reply_describes_them(socket_for, owner, conversation):
    pdf = await upload(owner, "report.pdf", pdf_bytes(["Quarterly report\nRevenue grew", "Appendix"]))
    image = await upload(owner, "photo.jpg", photo_bytes((4000, 3000)))
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "What is in these?", "attachments": [image.pk, pdf.pk]})
    frames = await frames_until_final(socket)

    reply = await reload(assistant_id(frames))
    assert reply.status == Message.Status.COMPLETE
    assert "Image 1: JPEG, 1238 x 928, RGB." in reply.text
    assert 'Document 1: PDF, 2 pages, first line "Quarterly report".' in reply.text
    user_frame = frames[0]["message"]
    assert [a["name"] for a in user_frame["attachments"]] == ["photo.jpg", "report.pdf"]  # as sent, not uploaded
    assert user_frame["attachments"][0]["thumbnail_url"] == reverse("attachment_thumbnail", args=[image.pk])


async def test_the_database_holds_references_not_base64(socket_for, owner, conversation):
    image = await upload(owner, "photo.png", image_bytes())
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Look", "attachments": [image.pk]})
    await frames_until_final(socket)

    user_message = (await stored_messages(conversation))[0]
    assert user_message.content == [
        {"type": "attachment", "attachment_id": image.pk}, {"type": "text", "text": "Look"}
    ]
    assert (await fresh(image)).message_id == user_message.pk


async def test_a_follow_up_question_about_the_same_pdf_reads_it_from_the_cache(socket_for, owner, conversation):
    pdf = await upload(owner, "manual.pdf", pdf_bytes(["Installation manual\nStep one", "Step two"]))
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "Summarise this manual", "attachments": [pdf.pk]})
    first = await reload(assistant_id(await frames_until_final(socket)))

    await socket.send_json_to({"type": "send", "text": "And what is step two?"})
    second = await reload(assistant_id(await frames_until_final(socket)))

    assert first.cache_creation_input_tokens > 2 * 1_500 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens >= first.cache_creation_input_tokens
    assert 'Document 1: PDF, 2 pages, first line "Installation manual"' in second.text


async def test_a_text_file_and_a_word_document_reach_the_model_as_titled_text_documents(
    socket_for, owner, conversation
):
    notes = await upload(owner, "notes.md", b"# Launch plan\n\nShip on Friday.\n")
    offer = await upload(owner, "offer.docx", docx_bytes(["Offer for ACME", "Total: 1,200"]))
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Compare these", "attachments": [notes.pk, offer.pk]})
    frames = await frames_until_final(socket)

    reply = await reload(assistant_id(frames))
    assert reply.status == Message.Status.COMPLETE
    assert 'Document 1: plain text, first line "# Launch plan".' in reply.text
    assert 'Document 2: plain text, first line "Offer for ACME".' in reply.text
    assert [(a["name"], a["kind"]) for a in frames[0]["message"]["attachments"]] == [
        ("notes.md", "text"), ("offer.docx", "text")
    ]


async def test_a_pdf_over_100_pages_reaches_the_model_as_the_text_of_its_pages(socket_for, owner, conversation):
    long = await upload(owner, "minutes.pdf", pdf_bytes([f"Minutes of meeting {n}" for n in range(1, 151)]))
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Summarise the minutes", "attachments": [long.pk]})
    frames = await frames_until_final(socket)

    reply = await reload(assistant_id(frames))
    assert reply.status == Message.Status.COMPLETE
    assert 'Document 1: plain text, first line "--- Page 1 ---".' in reply.text
    [attachment] = frames[0]["message"]["attachments"]
    assert (attachment["kind"], attachment["page_count"]) == ("text", 150)
    assert attachment["note"].startswith("150 pages: over the model's 100-page limit for PDFs")
    read = reply.input_tokens + reply.cache_creation_input_tokens
    assert long.tokens // 2 < read < 100 * 1_500  # 150 pages of text, not 150 page images


async def test_a_pdf_sent_as_text_does_not_count_toward_the_100_pdf_pages(socket_for, owner, conversation):
    long = await upload(owner, "archive.pdf", pdf_bytes(["Old page"] * 120))
    short = await upload(owner, "brief.pdf", pdf_bytes(["New page"] * 90))
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "Both", "attachments": [long.pk, short.pk]})
    frames = await frames_until_final(socket)

    assert (await reload(assistant_id(frames))).status == Message.Status.COMPLETE  # not refused: too_many_pages
    assert [a["kind"] for a in frames[0]["message"]["attachments"]] == ["text", "pdf"]


async def test_attachments_without_text_are_a_message_and_name_the_conversation(socket_for, owner, conversation):
    image = await upload(owner, "whiteboard.png", image_bytes())
    socket = await connected(socket_for, owner, conversation)

    await socket.send_json_to({"type": "send", "text": "  ", "attachments": [image.pk]})
    frames = await frames_until_final(socket)

    reply = await reload(assistant_id(frames))
    assert "You sent no text, only attachments." in reply.text and "Image 1: PNG, 64 x 48, RGB." in reply.text
    assert next(f for f in frames if f["type"] == "conversation")["conversation"]["title"] == "whiteboard.png"


# --- refused before anything is stored ------------------------------------------------------------------


async def assert_unclaimed(*attachments):
    for attachment in attachments:
        assert (await fresh(attachment)).message_id is None  # still in the composer, ready to send again


async def assert_nothing_stored(conversation, *attachments):
    assert await stored_messages(conversation) == []
    await assert_unclaimed(*attachments)


async def test_someone_elses_attachment_is_refused_and_nothing_is_stored(socket_for, owner, outsider, conversation):
    theirs = await upload(outsider, "theirs.png", image_bytes())
    socket = await connected(socket_for, owner, conversation)

    error = await refused(socket, {"type": "send", "text": "Steal", "attachments": [theirs.pk]})

    assert error["code"] == "bad_attachment"
    await assert_nothing_stored(conversation, theirs)


async def test_an_unknown_attachment_is_refused_with_the_same_answer(socket_for, owner, conversation):
    mine = await upload(owner, "mine.png", image_bytes())
    socket = await connected(socket_for, owner, conversation)

    error = await refused(socket, {"type": "send", "text": "Hi", "attachments": [mine.pk, 999_999]})

    assert error == {
        "type": "error", "code": "bad_attachment",
        "detail": "An attachment is missing, or was already sent. Remove it and attach the file again.",
    }
    await assert_nothing_stored(conversation, mine)


async def test_an_attachment_already_sent_cannot_be_sent_again(socket_for, owner, conversation):
    image = await upload(owner, "once.png", image_bytes())
    socket = await connected(socket_for, owner, conversation)
    await socket.send_json_to({"type": "send", "text": "First", "attachments": [image.pk]})
    await frames_until_final(socket)

    error = await refused(socket, {"type": "send", "text": "Again", "attachments": [image.pk]})

    assert error["code"] == "bad_attachment"
    assert len(await stored_messages(conversation)) == 2


@pytest.mark.parametrize("attachments", ["7", [True], [1.5], ["7"], {"id": 7}])
async def test_a_malformed_attachments_field_is_a_bad_frame(socket_for, owner, conversation, attachments):
    socket = await connected(socket_for, owner, conversation)

    error = await refused(socket, {"type": "send", "text": "Hi", "attachments": attachments})

    assert (error["code"], error["detail"]) == ("bad_frame", "`attachments` must be a list of attachment ids.")
    assert await stored_messages(conversation) == []


async def test_more_than_20_attachments_in_one_message_are_refused(socket_for, owner, conversation):
    socket = await connected(socket_for, owner, conversation)

    error = await refused(socket, {"type": "send", "text": "Hi", "attachments": list(range(1, 22))})

    assert (error["code"], error["detail"]) == (
        "too_many_attachments", "A message can carry at most 20 attachments."
    )


@database_sync_to_async
def sent_before(conversation, owner, **fields) -> None:
    """An earlier turn on the active path that carried an attachment (its file is never read here)."""
    message = message_appended(conversation, role="user", text="x")
    Attachment.objects.create(owner=owner, message=message, name="old", sha256="0" * 64, file="none", **fields)


@pytest.mark.parametrize(
    ("earlier", "new", "code", "detail"),
    [
        (
            [{"kind": "image", "media_type": "image/png", "size": 1000}] * 95,
            [("a.png", image_bytes(color=(n, 0, 0))) for n in range(6)],
            "too_many_images",
            "A request to the model can carry 100 images, and this conversation would carry 101. Remove some, "
            "or start a new chat for these.",
        ),
        (
            [{"kind": "pdf", "media_type": "application/pdf", "size": 1000, "page_count": 95}],
            [("six.pdf", pdf_bytes(["page"] * 6))],
            "too_many_pages",
            "A request to the model can carry 100 PDF pages, and this conversation would carry 101. Remove a "
            "PDF, or start a new chat for it.",
        ),
        (
            [
                {"kind": "pdf", "media_type": "application/pdf", "size": 20 * 1024 * 1024, "page_count": 1},
                {"kind": "image", "media_type": "image/png", "size": 3 * 1024 * 1024},
            ],
            [("photo.jpg", photo_bytes((1200, 900)))],
            "too_large",
            "With these attachments the request to the model would be about 33 MB; it can be at most 32 MB. "
            "Remove an attachment, or start a new chat for it.",
        ),
    ],
    ids=["images", "pages", "size"],
)
async def test_a_send_that_would_break_the_apis_limits_is_refused_naming_the_limit(
    socket_for, owner, conversation, earlier, new, code, detail
):
    for fields in earlier:
        await sent_before(conversation, owner, **fields)
    attachments = [await upload(owner, name, data) for name, data in new]
    before = len(await stored_messages(conversation))
    socket = await connected(socket_for, owner, conversation)

    error = await refused(socket, {"type": "send", "text": "More", "attachments": [a.pk for a in attachments]})

    assert (error["code"], error["detail"]) == (code, detail)
    assert len(await stored_messages(conversation)) == before
    await assert_unclaimed(*attachments)
