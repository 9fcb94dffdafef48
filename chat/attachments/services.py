"""Writes for attachments: an upload processed and stored, claimed by the message that sends it, removed."""

import hashlib
import tempfile
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chat.attachments import storage
from chat.attachments.formats import SUFFIXES, file_format
from chat.attachments.limits import AttachmentRefused, megabytes, request_limits_check
from chat.attachments.names import display_name
from chat.attachments.readers import PIPELINE_VERSION, READERS, Processed
from chat.models import Attachment, Conversation, Message
from chat.selectors import Tree
from projects.selectors import project_in_reach

# What an upload of bytes the owner sent before copies from the earlier row instead of processing them again.
PROCESSED_FIELDS = (
    "kind", "sha256", "media_type", "file", "thumbnail", "size", "width", "height", "page_count", "pages",
    "tokens", "note", "pipeline",
)


def attachments_upload(*, owner, name: str, path: Path) -> list[Attachment]:
    """Process and store one uploaded file, or raise ValidationError saying why (then nothing is stored).

    The file at `path` is the caller's: read, never moved or deleted. Its content decides what it is
    (formats.py) and which reader makes it into attachments (readers.py). One attachment, or one per page of
    a multi-page TIFF. Whatever fails after a file was stored (a full disk while storing a thumbnail) deletes
    what this upload stored.
    """
    size = path.stat().st_size
    if not size:
        raise ValidationError("This file is empty.")
    limit = settings.ATTACHMENT_MAX_FILE_BYTES
    if size > limit:
        raise ValidationError(f"This file is {megabytes(size)}; files can be at most {megabytes(limit)}.")
    with path.open("rb") as handle:
        sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
    name = display_name(name)
    earlier = _earlier_upload(owner, sha256)
    if earlier:
        return _copied(owner, name, earlier)
    kind = file_format(path)
    try:
        with tempfile.TemporaryDirectory(prefix="attachment-") as scratch:
            processed = READERS[kind](path, Path(scratch))
            return _stored(owner, name, sha256, processed)
    except OSError as error:  # the scratch folder is on a full disk
        if storage.is_disk_full(error):
            raise ValidationError(storage.DISK_FULL) from error
        raise


def _earlier_upload(owner, sha256: str) -> list[Attachment]:
    """The rows of the owner's first upload of these bytes by the current readers (one per stored file), while
    all its files are still there. One made by older readers is not copied: the upload is read again."""
    rows: dict[str, Attachment] = {}
    earlier = Attachment.objects.filter(owner=owner, sha256=sha256, pipeline=PIPELINE_VERSION)
    for row in earlier.order_by("id"):
        rows.setdefault(row.file, row)
    names = [name for row in rows.values() for name in (row.file, row.thumbnail) if name]
    stored = all(storage.file_path(name).exists() for name in names)
    return list(rows.values()) if stored else []


def _copied(owner, name: str, earlier: list[Attachment]) -> list[Attachment]:
    with transaction.atomic():
        return [
            Attachment.objects.create(
                owner=owner, name=f"{name} (page {number})" if len(earlier) > 1 else name,
                **{field: getattr(row, field) for field in PROCESSED_FIELDS},
            )
            for number, row in enumerate(earlier, 1)
        ]


def _stored(owner, name: str, sha256: str, processed: list[Processed]) -> list[Attachment]:
    stored: list[str] = []
    try:
        rows = []
        for item in processed:
            page = f".p{item.page}" if item.page is not None else ""
            file = storage.file_name(owner.pk, sha256, page + SUFFIXES[item.fields["media_type"]])
            storage.file_store(file, item.file)
            stored.append(file)
            thumbnail = ""
            if item.thumbnail is not None:
                suffix = f"{page}.thumb{SUFFIXES[item.thumbnail_media_type]}"
                thumbnail = storage.file_name(owner.pk, sha256, suffix)
                storage.file_store(thumbnail, item.thumbnail)
                stored.append(thumbnail)
            shown = f"{name} (page {item.page})" if item.page is not None else name
            rows.append(Attachment(
                owner=owner, name=shown, sha256=sha256, file=file, thumbnail=thumbnail,
                pipeline=PIPELINE_VERSION, **item.fields,
            ))
        with transaction.atomic():
            for row in rows:
                row.save()
        return rows
    except BaseException:
        _unreferenced_deleted(stored)
        raise


def _unreferenced_deleted(names: list[str]) -> None:
    """Delete files this upload stored, but not one that another row names: the same bytes uploaded at the
    same time by the same owner land on the same names, and that upload may have finished first."""
    if not names:
        return
    named = Attachment.objects.filter(Q(file__in=names) | Q(thumbnail__in=names))
    referenced = {name for pair in named.values_list("file", "thumbnail") for name in pair}
    for name in names:
        if name not in referenced:
            storage.file_delete(name)


def attachments_for_turn(
    *, conversation: Conversation, attachment_ids: list[int], tree: Tree | None = None
) -> list[Attachment]:
    """The conversation owner's unclaimed attachments with these ids, in this order, within the API's limits.
    `tree`: the conversation's, when the caller has read it already.

    Raises AttachmentRefused. Someone else's attachment, an unknown id and one already sent look the same.
    """
    found = {
        attachment.pk: attachment
        for attachment in Attachment.objects.filter(
            pk__in=attachment_ids, owner_id=conversation.owner_id, message__isnull=True, project__isnull=True
        )
    }
    if len(found) != len(set(attachment_ids)):
        raise AttachmentRefused(
            "bad_attachment",
            "An attachment is missing, or was already sent. Remove it and attach the file again.",
        )
    sending = [found[attachment_id] for attachment_id in dict.fromkeys(attachment_ids)]
    # The request carries the attachments of the path the new message continues, not of other branches, and
    # the files of the conversation's project, which every request of it starts with.
    path = (tree or Tree.of(conversation.pk)).path_to(conversation.current_leaf_id)
    carried = Q(message_id__in=path)
    if (project := project_in_reach(conversation)) is not None:
        carried |= Q(project=project)
    sent = Attachment.objects.filter(carried).only("kind", "size", "page_count")
    request_limits_check(sending=sending, sent=list(sent))
    return sending


def attachments_claim(*, attachments: list[Attachment], message: Message) -> None:
    """Attach uploads to the message that sends them. Call inside the transaction that stores the message.

    The update only takes rows still unclaimed, so of two messages racing for one upload, one fails (and its
    transaction, message included, rolls back) instead of both sending it.
    """
    claimed = Attachment.objects.filter(
        pk__in=[attachment.pk for attachment in attachments], message__isnull=True, project__isnull=True
    ).update(message=message)
    if claimed != len(attachments):
        raise AttachmentRefused("bad_attachment", "An attachment was just sent in another message.")
    for attachment in attachments:
        attachment.message = message


def attachments_copy(*, attachments: list[Attachment], message: Message, owner) -> dict[int, Attachment]:
    """New rows for `attachments`, claimed by `message` and owned by `owner`, naming the same stored files (an
    edited message keeps the original's, a fork its source's): by the original's id. Files are never copied;
    attachments_cleanup keeps a file while any row names it. Call inside the transaction storing `message`."""
    copies = {
        attachment.pk: Attachment(
            owner=owner, message=message, name=attachment.name,
            **{field: getattr(attachment, field) for field in PROCESSED_FIELDS},
        )
        for attachment in attachments
    }
    Attachment.objects.bulk_create(copies.values())
    return copies


def attachments_cleanup(*, older_than: timedelta) -> tuple[int, int]:
    """Delete uploads never sent within `older_than`, then stored files that no attachment names any more.

    Files are deleted only once they are as old as the uploads: a file being written for an upload in
    progress has no row yet. Files left by deleted conversations go the same way. Returns (attachments, files) deleted.
    """
    cutoff = timezone.now() - older_than
    deleted, _ = Attachment.objects.filter(message__isnull=True, project__isnull=True, created_at__lt=cutoff).delete()
    referenced = set()
    for file, thumbnail in Attachment.objects.values_list("file", "thumbnail").iterator():
        referenced.update((file, thumbnail))
    removed = 0
    for name, modified in storage.stored_files():
        if name not in referenced and modified < cutoff.timestamp():
            storage.file_delete(name)
            removed += 1
    return deleted, removed
