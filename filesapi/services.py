"""Attachments sent by `file_id`: uploaded once to the Files API, then referenced by every later turn.

A request is built with its attachments inline (chat/llm/request.py, chat/attachments/blocks.py), measured,
and given its cache breakpoints; just before it is sent, `request_files_reference` swaps each attachment
block's inline source for a `file` source, uploading the files that the API does not hold yet. So the upload
happens at the first turn that sends the attachment, never at upload time (the user may never send it), and
the breakpoints stay where they were (a block keeps its `cache_control` and title).

- Uploads are keyed by the attachment's owner, the sha256 of the bytes and the backend (a hash of the API's
  base URL and key, `backend_key`): two conversations of one owner share an upload; another user with the same
  bytes gets their own; another key never gets an id its workspace cannot read. A project's files belong to
  the project's owner, whose uploads every member's turn references (the member may read those files).
- The Files API being unavailable (off in CHAT_FILES_API, a network error, an error status, no answer within
  CHAT_FILES_UPLOAD_TIMEOUT for the turn's uploads together) leaves the blocks inline: the turn goes on.
- After uploads that timed out, this process sends attachments inline for UPLOAD_PAUSE_SECONDS without trying
  (`_upload_pause_until`): a Files API that hangs costs one turn the timeout, not every turn meanwhile.
- A request refused because a file is gone (expired, deleted upstream: a 400 or 404 naming the id, or the
  `file_expired` code) forgets those ids (`upstream_files_forget`); the generation then references again,
  which uploads afresh, and retries once (chat/replies/generation.py).

Two turns that upload the same new file at once both upload it; the first row stays, the other upload is
left unused upstream.
"""

import asyncio
import functools
import hashlib
import logging
import time
from dataclasses import dataclass

import anthropic
import httpx2
from django.conf import settings
from django.db import IntegrityError, transaction

from chat.attachments.blocks import ATTACHMENT_BLOCK_TYPES, content_block, file_referenced
from chat.attachments.storage import file_path
from chat.db import db_async
from chat.models import Attachment
from filesapi.models import UpstreamFile

log = logging.getLogger(__name__)

# After the turn's uploads timed out, the uploads of the next this many seconds are not tried (they go inline).
UPLOAD_PAUSE_SECONDS = 60.0
_upload_pause_until = 0.0  # time.monotonic() before which no upload is tried, in this process

INLINE_SOURCES = ("base64", "text")


@dataclass(frozen=True)
class _Upload:
    attachment: Attachment
    key: str  # "<owner id>:<sha256 of the bytes>"
    data: bytes  # what goes upstream: the stored file


def backend_key(client: anthropic.AsyncAnthropic) -> str:
    """The Files API's namespace for `client`: file ids belong to the workspace of one key on one API."""
    return hashlib.sha256(f"{client.base_url}\n{client.api_key}".encode()).hexdigest()


async def request_files_reference(
    client: anthropic.AsyncAnthropic, request: dict, attachments: tuple[Attachment, ...]
) -> tuple[dict, frozenset[str]]:
    """`request` with the blocks of `attachments` referencing their uploads, and the file ids it carries.

    The request is not changed; the one returned shares everything but the swapped blocks and their lists.
    """
    if settings.CHAT_FILES_API == "off" or not attachments:
        return request, frozenset()
    backend = backend_key(client)
    matched, known, missing = await db_async(_request_files_known)(request, attachments, backend)
    if not matched:
        return request, frozenset()
    if missing:
        known = {**known, **await _uploads_made(client, missing, backend)}
    file_ids: dict[int, str] = {}  # by the id() of the block
    for block, key in matched:
        if key in known:
            file_ids[id(block)] = known[key]
    if not file_ids:
        return request, frozenset()
    return request_files_swapped(request, file_ids), frozenset(file_ids.values())


def request_files_swapped(request: dict, file_ids: dict[int, str]) -> dict:
    """`request` with each block whose id() is in `file_ids` sending that file id instead of its bytes; the
    rest is shared with `request`, which is not changed."""
    messages = [
        {
            **message,
            "content": [
                file_referenced(block, file_ids[id(block)]) if id(block) in file_ids else block
                for block in message["content"]
            ],
        }
        for message in request["messages"]
    ]
    return {**request, "messages": messages}


def upstream_files_gone(error: Exception, file_ids: frozenset[str]) -> frozenset[str]:
    """Those of `file_ids` that the API's refusal says are gone (expired or deleted upstream)."""
    if not file_ids or not isinstance(error, anthropic.APIStatusError) or error.status_code not in (400, 404):
        return frozenset()
    if getattr(error, "error_code", None) == "file_expired":
        return file_ids
    return frozenset(file_id for file_id in file_ids if file_id in str(error.message))


def upstream_files_forget(*, file_ids: frozenset[str], backend: str) -> int:
    """Forgets uploads the API no longer holds, so the next reference uploads them again."""
    deleted, _ = UpstreamFile.objects.filter(backend=backend, file_id__in=file_ids).delete()
    return deleted


def _request_files_known(
    request: dict, attachments: tuple[Attachment, ...], backend: str
) -> tuple[list[tuple[dict, str]], dict[str, str], list[_Upload]]:
    """The request's attachment blocks with their keys ("<owner id>:<sha256 of the file>"), the file ids
    already uploaded by key, and what must be uploaded. One query. Blocks are matched to attachments by their
    data, which both take from the encoded files' cache."""
    by_data: dict[str, Attachment] = {}
    for attachment in attachments:
        source = content_block(attachment).get("source")
        if isinstance(source, dict) and source.get("data") is not None:
            by_data.setdefault(source["data"], attachment)
    matched: list[tuple[dict, str]] = []
    owners: dict[str, Attachment] = {}  # by key: the first attachment of those bytes and that owner
    for message in request["messages"]:
        for block in message["content"]:
            source = block.get("source") if block.get("type") in ATTACHMENT_BLOCK_TYPES else None
            if not isinstance(source, dict) or source.get("type") not in INLINE_SOURCES:
                continue
            attachment = by_data.get(source.get("data"))
            if attachment is None:
                continue
            key = f"{attachment.owner_id}:{_stored_sha256(str(file_path(attachment.file)))}"
            matched.append((block, key))
            owners.setdefault(key, attachment)
    if not matched:
        return [], {}, []
    rows = UpstreamFile.objects.filter(
        backend=backend,
        owner_id__in={attachment.owner_id for attachment in owners.values()},
        sha256__in={key.partition(":")[2] for key in owners},
    ).values_list("owner_id", "sha256", "file_id")
    known = {f"{owner_id}:{sha256}": file_id for owner_id, sha256, file_id in rows}
    missing = [
        _Upload(attachment, key, file_path(attachment.file).read_bytes())
        for key, attachment in owners.items()
        if key not in known
    ]
    return matched, known, missing


async def _uploads_made(
    client: anthropic.AsyncAnthropic, uploads: list[_Upload], backend: str
) -> dict[str, str]:
    """Uploads the files (together, within CHAT_FILES_UPLOAD_TIMEOUT), records them, and returns their ids by
    key; what could not be uploaded is left out, and its blocks stay inline."""
    global _upload_pause_until
    if time.monotonic() < _upload_pause_until:
        return {}
    uploader = client.with_options(max_retries=0)  # within the turn's time: an outage means inline, at once
    try:
        async with asyncio.timeout(settings.CHAT_FILES_UPLOAD_TIMEOUT):
            answers = await asyncio.gather(
                *(uploader.files.upload(file=_upload_file(upload)) for upload in uploads),
                return_exceptions=True,
            )
    except TimeoutError:
        _upload_pause_until = time.monotonic() + UPLOAD_PAUSE_SECONDS
        log.warning(
            "the Files API took over %gs; attachments go inline, without trying to upload, for %gs",
            settings.CHAT_FILES_UPLOAD_TIMEOUT, UPLOAD_PAUSE_SECONDS,
        )
        return {}
    uploaded = {}
    for upload, answer in zip(uploads, answers):
        if isinstance(answer, anthropic.APIError | httpx2.HTTPError):
            log.warning("uploading attachment %s failed; it goes inline: %r", upload.attachment.pk, answer)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            uploaded[upload.key] = await db_async(_upstream_file_record)(upload, answer.id, backend)
    return uploaded


def _upstream_file_record(upload: _Upload, file_id: str, backend: str) -> str:
    """The file id to use for `upload`: the one just made, or the one a concurrent turn recorded first."""
    owner_id, _, sha256 = upload.key.partition(":")
    try:
        with transaction.atomic():
            UpstreamFile.objects.create(
                owner_id=owner_id,
                backend=backend,
                sha256=sha256,
                file_id=file_id,
                kind=upload.attachment.kind,
                size=len(upload.data),
            )
        return file_id
    except IntegrityError:
        return UpstreamFile.objects.get(owner_id=owner_id, backend=backend, sha256=sha256).file_id


def _upload_file(upload: _Upload) -> tuple[str, bytes, str]:
    attachment = upload.attachment
    media_type = "text/plain" if attachment.kind == Attachment.Kind.TEXT else attachment.media_type
    return attachment.name, upload.data, media_type


@functools.lru_cache(maxsize=4096)
def _stored_sha256(path: str) -> str:
    """The sha256 of a stored file. Stored files never change under their name (chat/attachments/storage.py),
    so it is computed once per process; the path includes MEDIA_ROOT, so tests never share an entry."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
