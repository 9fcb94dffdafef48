"""Files that code execution produced in a reply (chat/llm/server_tools.py), downloadable by the reply's owner.

A produced file is named in the reply by its Files API `file_id` (a `bash_code_execution_output` in the result
block of the call that made it). The first download fetches it through the Files API
(`client.beta.files.download`) and keeps it under MEDIA_ROOT, which no URL serves; later downloads read it from
there, so a file the API has since expired stays available. Who may download: the owner of the conversation the
reply belongs to, for a file id that reply names; anyone else gets 404, like every other read of a user's object.

Served as a download (never shown in this origin: the model wrote it, and it may be HTML with script), under the
attachments' sandboxing Content-Security-Policy and nosniff.
"""

import json
import os
import re
import tempfile
from pathlib import Path, PurePath

import anthropic
import httpx2
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from chat import selectors
from chat.attachments.storage import file_path
from chat.attachments.views import SERVED_POLICY
from chat.db import db_async
from chat.llm.client import anthropic_client
from chat.models import Message

DIRECTORY = "server_files"
FILE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MEDIA_TYPE = re.compile(r"^[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+$")
# A produced file bigger than this is not fetched: the download is held in memory once, while it is stored.
MAX_PRODUCED_FILE_BYTES = 50 * 1024 * 1024
MAX_NAME_CHARS = 200
# The result blocks of code execution, whose `content.content` lists the files a run produced.
RESULT_TYPES = ("bash_code_execution_tool_result", "code_execution_tool_result")


def produced_file_ids(content: list[dict]) -> set[str]:
    """The file ids of the files code execution produced in a reply's blocks."""
    ids = set()
    for block in content:
        result = block.get("content") if block.get("type") in RESULT_TYPES else None
        if isinstance(result, dict):
            for item in result.get("content") or ():
                if isinstance(item, dict) and isinstance(item.get("file_id"), str):
                    ids.add(item["file_id"])
    return ids


def produced_file_owner(user, message_id: int, file_id: str) -> int:
    """The owner's id when `user` owns the reply `message_id` and it produced `file_id`; else 404."""
    message = get_object_or_404(Message.objects.only("content", "conversation_id"), pk=message_id,
                                role=Message.Role.ASSISTANT)
    conversation = selectors.conversation_for_user(user, message.conversation_id)
    if file_id not in produced_file_ids(message.content):
        raise Http404("This reply produced no such file.")
    return conversation.owner_id


def _stored_name(owner_id: int, file_id: str) -> str:
    return f"{DIRECTORY}/{owner_id}/{file_id}"


def produced_file_stored(owner_id: int, file_id: str) -> tuple[Path, dict] | None:
    """The kept copy and its metadata ({filename, mime_type}), or None before the first download."""
    path = file_path(_stored_name(owner_id, file_id))
    try:
        return path, json.loads(path.with_suffix(".json").read_text())
    except (FileNotFoundError, ValueError):
        return None


async def produced_file_fetch(owner_id: int, file_id: str) -> tuple[Path, dict]:
    """Download the file through the Files API and keep it (the bytes, then its metadata beside them: a copy
    without metadata is fetched again). 404 when the API no longer has it or it is too big to fetch."""
    client = anthropic_client()
    try:
        metadata = await client.beta.files.retrieve_metadata(file_id)
        if metadata.size_bytes > MAX_PRODUCED_FILE_BYTES:
            raise Http404("This file is too big to download here.")
        response = await client.beta.files.download(file_id)
        data = await response.read()
    except anthropic.NotFoundError:
        raise Http404("This file is no longer kept by the API.") from None
    except (anthropic.APIError, httpx2.HTTPError):
        raise Http404("The file could not be fetched from the API right now. Try again later.") from None
    if len(data) > MAX_PRODUCED_FILE_BYTES:
        raise Http404("This file is too big to download here.")
    path = file_path(_stored_name(owner_id, file_id))
    shown = {"filename": _safe_name(metadata.filename, file_id), "mime_type": _safe_type(metadata.mime_type)}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, data)
    _write_atomic(path.with_suffix(".json"), json.dumps(shown).encode())
    return path, shown


def _write_atomic(path: Path, data: bytes) -> None:
    """Write beside `path` under a name of its own, then rename: two downloads fetching the same file at once
    each write whole, and a reader never sees half of one."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".download-")
    try:
        with os.fdopen(descriptor, "wb") as target:
            target.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _safe_name(name: str, file_id: str) -> str:
    name = PurePath(str(name or "").replace("\\", "/")).name.strip()[:MAX_NAME_CHARS]
    return name if name and not name.startswith(".") else file_id


def _safe_type(media_type: str) -> str:
    return media_type if MEDIA_TYPE.match(media_type or "") else "application/octet-stream"


@login_required
@require_GET
async def produced_file_download(request, message_id: int, file_id: str):
    """A file code execution produced in the user's own reply, as a download."""
    if not FILE_ID.match(file_id):
        raise Http404("No such file.")
    user = await request.auser()
    owner_id = await db_async(produced_file_owner)(user, message_id, file_id)
    stored = produced_file_stored(owner_id, file_id) or await produced_file_fetch(owner_id, file_id)
    path, shown = stored
    response = FileResponse(
        path.open("rb"), content_type=shown["mime_type"], as_attachment=True, filename=shown["filename"]
    )
    response["Content-Security-Policy"] = SERVED_POLICY
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response

