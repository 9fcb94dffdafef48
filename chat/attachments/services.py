"""Writes for attachments: an upload processed and stored, claimed by the message that sends it, removed."""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from chat.attachments import storage
from chat.attachments.images import image_process
from chat.attachments.limits import (
    API_MAX_REQUEST_BYTES, REQUEST_TEXT_ALLOWANCE, AttachmentRefused, encoded_size, request_limits_check,
)
from chat.attachments.names import display_name
from chat.attachments.pdfs import is_pdf, pdf_read, pdf_tokens
from chat.models import Attachment, Conversation, Message

# What an upload of bytes the owner sent before copies from the earlier row instead of processing them again.
PROCESSED_FIELDS = (
    "kind", "sha256", "media_type", "file", "thumbnail", "size", "width", "height", "page_count", "pages",
    "tokens",
)
MEGABYTE = 1024 * 1024


def attachment_upload(*, owner, name: str, data: bytes) -> Attachment:
    """Process and store one uploaded file, or raise ValidationError saying why (then nothing is stored).

    The content decides what a file is: a PDF by its header, else an image by Pillow's allow-listed parsers.
    """
    if not data:
        raise ValidationError("This file is empty.")
    limit = settings.ATTACHMENT_MAX_FILE_BYTES
    if len(data) > limit:
        raise ValidationError(
            f"This file is {len(data) / MEGABYTE:.1f} MB; files can be at most {limit / MEGABYTE:g} MB."
        )
    sha256 = hashlib.sha256(data).hexdigest()
    name = display_name(name)
    earlier = Attachment.objects.filter(owner=owner, sha256=sha256).first()
    if earlier is not None and storage.file_path(earlier.file).exists():
        processed = {field: getattr(earlier, field) for field in PROCESSED_FIELDS}
        return Attachment.objects.create(owner=owner, name=name, **processed)
    fields = _stored_pdf(owner, sha256, data) if is_pdf(data) else _stored_image(owner, sha256, data)
    return Attachment.objects.create(owner=owner, name=name, sha256=sha256, **fields)


def _stored_image(owner, sha256: str, data: bytes) -> dict:
    image = image_process(data)
    file = storage.file_name(owner.pk, sha256, ".png" if image.media_type == "image/png" else ".jpg")
    thumbnail = storage.file_name(
        owner.pk, sha256, ".thumb.png" if image.thumbnail_media_type == "image/png" else ".thumb.jpg"
    )
    storage.file_write(file, image.data)
    storage.file_write(thumbnail, image.thumbnail)
    return {
        "kind": Attachment.Kind.IMAGE, "media_type": image.media_type, "file": file, "thumbnail": thumbnail,
        "size": len(image.data), "width": image.width, "height": image.height, "tokens": image.tokens,
    }


def _stored_pdf(owner, sha256: str, data: bytes) -> dict:
    """The PDF goes to the model as it is, base64-encoded: it must fit in one request once encoded."""
    room = API_MAX_REQUEST_BYTES - REQUEST_TEXT_ALLOWANCE
    if encoded_size(len(data)) > room:
        raise ValidationError(
            f"This PDF is {len(data) / MEGABYTE:.1f} MB; a PDF can be at most {room * 3 / 4 / MEGABYTE:.0f} "
            f"MB to fit in a request to the model ({API_MAX_REQUEST_BYTES // MEGABYTE} MB once encoded)."
        )
    pages = pdf_read(data)
    file = storage.file_name(owner.pk, sha256, ".pdf")
    storage.file_write(file, data)
    return {
        "kind": Attachment.Kind.PDF, "media_type": "application/pdf", "file": file, "size": len(data),
        "page_count": len(pages), "pages": pages, "tokens": pdf_tokens(pages),
    }


def attachments_for_turn(*, conversation: Conversation, attachment_ids: list[int]) -> list[Attachment]:
    """The conversation owner's unclaimed attachments with these ids, in this order, within the API's limits.

    Raises AttachmentRefused. Someone else's attachment, an unknown id and one already sent look the same.
    """
    found = {
        attachment.pk: attachment
        for attachment in Attachment.objects.filter(
            pk__in=attachment_ids, owner_id=conversation.owner_id, message__isnull=True
        )
    }
    if len(found) != len(set(attachment_ids)):
        raise AttachmentRefused(
            "bad_attachment",
            "An attachment is missing, or was already sent. Remove it and attach the file again.",
        )
    sending = [found[attachment_id] for attachment_id in dict.fromkeys(attachment_ids)]
    sent = Attachment.objects.filter(message__conversation=conversation).only("kind", "size", "page_count")
    request_limits_check(sending=sending, sent=list(sent))
    return sending


def attachments_claim(*, attachments: list[Attachment], message: Message) -> None:
    """Attach uploads to the message that sends them. Call inside the transaction that stores the message.

    The update only takes rows still unclaimed, so of two messages racing for one upload, one fails (and its
    transaction, message included, rolls back) instead of both sending it.
    """
    claimed = Attachment.objects.filter(
        pk__in=[attachment.pk for attachment in attachments], message__isnull=True
    ).update(message=message)
    if claimed != len(attachments):
        raise AttachmentRefused("bad_attachment", "An attachment was just sent in another message.")
    for attachment in attachments:
        attachment.message = message


def attachments_cleanup(*, older_than: timedelta) -> tuple[int, int]:
    """Delete uploads never sent within `older_than`, then stored files that no attachment names any more.

    Files are deleted only once they are as old as the uploads: a file being written for an upload in
    progress has no row yet. Files left by deleted conversations go the same way. Returns (attachments, files) deleted.
    """
    cutoff = timezone.now() - older_than
    deleted, _ = Attachment.objects.filter(message__isnull=True, created_at__lt=cutoff).delete()
    referenced = set()
    for file, thumbnail in Attachment.objects.values_list("file", "thumbnail").iterator():
        referenced.update((file, thumbnail))
    removed = 0
    for name, modified in storage.stored_files():
        if name not in referenced and modified < cutoff.timestamp():
            storage.file_delete(name)
            removed += 1
    return deleted, removed
