"""The Files API on the offline model: upload, list, metadata, download and delete, and `file` sources.

Files live in OFFLINE_MODEL_FILES_DIR, like the batches (batches.py), so every process on the machine sees the
same ones: `<id>.json` is a file's metadata, `<id>.bin` its bytes, each written under a temporary name and
moved into place (a reader sees the whole file or none; the metadata goes last, so a file exists once its
bytes are in place). As on the API, a file uploaded by the client cannot be downloaded again; only those the
model produces (code execution's outputs, `store_produced_file`) can. A file uploaded with
`expires_in_seconds` is gone once its time has passed on `clock` (tests set it forward): its metadata and
content answer 404 `file_expired`, and so does a message that references it. `inject_fault` makes the next
requests answer 500, for tests of an unavailable Files API.

`file_block_resolved` turns an image or document block with a `file` source into the same block with the
stored bytes inline, so that the Messages validator (prompt.py) counts and reads it like any other.
"""

import base64
import email.parser
import email.policy
import json
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx2
from django.conf import settings

from chat.llm.offline.paging import ids_page, list_page
from chat.llm.offline.prompt import InvalidRequest

FILES_PATH = "/v1/files"
MAX_FILE_BYTES = 500 * 1024 * 1024  # the API's limit on one file
MIN_EXPIRES, MAX_EXPIRES = 3600, 7_776_000  # the API's bounds on expires_in_seconds
# The microsecond of creation, in hex, comes first: ids sort as files were created; `list` pages by them.
FILE_ID = re.compile(r"file_offline_[0-9a-f]{24}")
STATE_FILE = re.compile(rf"({FILE_ID.pattern})\.json")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
DOCUMENT_TYPES = ("application/pdf", "text/plain")


class FileRefused(InvalidRequest):
    """A Files API answer other than 400 (404 for an unknown or expired file, 413 for one over the limit), or a
    400 with an `error_code` in its details. Being an InvalidRequest, a batch records it as `errored`."""

    def __init__(self, status: int, error_type: str, message: str, error_code: str = "") -> None:
        super().__init__(message)
        self.status, self.error_type, self.error_code = status, error_type, error_code


class OfflineFiles:
    """The /v1/files endpoints. `clock` returns wall-clock seconds; tests replace it to expire a file."""

    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.time
        self._faults = 0
        self._lock = threading.Lock()

    def inject_fault(self, *, times: int = 1) -> None:
        """Makes the next `times` requests under /v1/files answer 500, as an API having a bad moment."""
        with self._lock:
            self._faults += times

    def reset(self) -> None:
        with self._lock:
            self._faults = 0
        self.clock = time.time

    def handle(self, request: httpx2.Request) -> dict | bytes:
        """The answer to one request under /v1/files: a JSON object, or a file's bytes (its content).

        It blocks (files): the caller runs it in a thread."""
        with self._lock:
            failing, self._faults = self._faults > 0, max(self._faults - 1, 0)
        if failing:
            raise FileRefused(500, "api_error", "Internal server error (offline fault)")
        method, path = request.method, request.url.path
        directory = _directory()
        if path == FILES_PATH and method == "POST":
            return _file_object(self._upload(directory, request))
        if path == FILES_PATH and method == "GET":
            return self._list(directory, request.url.params)
        file_id, _, action = path.removeprefix(f"{FILES_PATH}/").partition("/")
        if (method, action) == ("GET", ""):
            return _file_object(self.metadata(file_id))
        if (method, action) == ("GET", "content"):
            return self._content(directory, file_id)
        if (method, action) == ("DELETE", ""):
            self.metadata(file_id)
            for suffix in (".json", ".bin"):  # the metadata first: then it is gone
                (directory / f"{file_id}{suffix}").unlink(missing_ok=True)
            return {"id": file_id, "type": "file_deleted"}
        raise FileRefused(404, "not_found_error", f"Not found: {method} {path}")

    def metadata(self, file_id: str) -> dict:
        """A stored file's metadata; FileRefused 404 when it is unknown, deleted or expired."""
        if not FILE_ID.fullmatch(file_id):
            raise FileRefused(404, "not_found_error", f"File not found: {file_id}")
        try:
            state = json.loads((_directory() / f"{file_id}.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileRefused(404, "not_found_error", f"File not found: {file_id}") from None
        if state["expires_at"] is not None and self.clock() >= state["expires_at"]:
            raise FileRefused(404, "not_found_error", f"File {file_id} has expired.", "file_expired")
        return state

    def read(self, file_id: str) -> tuple[dict, bytes]:
        """A stored file's metadata and bytes, for a message that references it."""
        state = self.metadata(file_id)
        try:
            return state, (_directory() / f"{file_id}.bin").read_bytes()
        except FileNotFoundError:  # deleted since
            raise FileRefused(404, "not_found_error", f"File not found: {file_id}") from None

    def store(
        self, filename: str, media_type: str, data: bytes, *, downloadable: bool, expires_in=None
    ) -> dict:
        if len(data) > MAX_FILE_BYTES:
            raise FileRefused(
                413, "request_too_large", f"File exceeds the maximum size of {MAX_FILE_BYTES} bytes."
            )
        now = self.clock()
        file_id = f"file_offline_{int(now * 1_000_000):014x}{uuid.uuid4().hex[:10]}"
        directory = _directory()
        _write_atomic(directory / f"{file_id}.bin", data)
        state = {
            "id": file_id,
            "filename": Path(filename).name or "unnamed",
            "mime_type": media_type,
            "size_bytes": len(data),
            "created_at": now,
            "expires_at": now + expires_in if expires_in else None,
            "downloadable": downloadable,
        }
        _write_atomic(directory / f"{file_id}.json", json.dumps(state).encode())  # last: then it exists
        return state

    def _upload(self, directory: Path, request: httpx2.Request) -> dict:
        if len(request.content) > MAX_FILE_BYTES + 64 * 1024:  # the file and its multipart framing
            raise FileRefused(
                413, "request_too_large", f"File exceeds the maximum size of {MAX_FILE_BYTES} bytes."
            )
        fields = _multipart_fields(request)
        if "file" not in fields:
            raise InvalidRequest("file: Field required")
        filename, media_type, data = fields["file"]
        expires_in = None
        if "expires_in_seconds" in fields:
            try:
                expires_in = int(fields["expires_in_seconds"][2])
            except ValueError:
                expires_in = 0
            if not MIN_EXPIRES <= expires_in <= MAX_EXPIRES:
                raise InvalidRequest(
                    f"expires_in_seconds: Input should be between {MIN_EXPIRES} and {MAX_EXPIRES}"
                )
        return self.store(filename, media_type, data, downloadable=False, expires_in=expires_in)

    def _content(self, directory: Path, file_id: str) -> bytes:
        state, data = self.read(file_id)
        if not state["downloadable"]:
            message = (
                f"File {file_id} is not downloadable: only files produced by the model can be downloaded."
            )
            raise FileRefused(400, "invalid_request_error", message, "file_not_downloadable")
        return data

    def _list(self, directory: Path, params: httpx2.QueryParams) -> dict:
        """A page of files, newest first, paged by after_id (older) or before_id (newer) as the API pages."""
        page, has_more = ids_page(directory, STATE_FILE, params)
        files = []
        for file_id in page:
            try:
                files.append(_file_object(self.metadata(file_id)))
            except FileRefused:  # deleted or expired since the directory was read
                continue
        return list_page(files, page, has_more)


offline_files = OfflineFiles()


def store_produced_file(name: str, media_type: str, data: bytes) -> str:
    """Stores a file the model produced (code execution's outputs) and returns its file_id: unlike an
    uploaded file, it can be downloaded."""
    return offline_files.store(name, media_type, data, downloadable=True)["id"]


def file_block_resolved(block: dict) -> dict:
    """`block` (an image or document) with its `file` source replaced by the stored bytes, as base64 (a text
    file as a `text` source); any other block as it is. Raises FileRefused when the file is unknown, deleted
    or expired, InvalidRequest when its type does not suit the block."""
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") != "file":
        return block
    file_id = source.get("file_id")
    if not isinstance(file_id, str) or not file_id:
        raise InvalidRequest(f"{block['type']}.source.file_id: Field required")
    state, data = offline_files.read(file_id)
    media_type = state["mime_type"]
    allowed = IMAGE_TYPES if block["type"] == "image" else DOCUMENT_TYPES
    if media_type not in allowed:
        raise InvalidRequest(
            f"{block['type']}.source: file {file_id} is {media_type!r}; a {block['type']} block takes "
            f"{', '.join(allowed)}"
        )
    if media_type == "text/plain":
        try:
            resolved = {"type": "text", "media_type": media_type, "data": data.decode("utf-8")}
        except UnicodeDecodeError as exc:
            raise InvalidRequest(f"document.source: file {file_id} is not UTF-8 text") from exc
    else:
        resolved = {
            "type": "base64",
            "media_type": media_type,
            "data": base64.b64encode(data).decode("ascii"),
        }
    return {**block, "source": resolved}


def _directory() -> Path:
    directory = Path(settings.OFFLINE_MODEL_FILES_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _multipart_fields(request: httpx2.Request) -> dict[str, tuple[str, str, bytes]]:
    """The form's fields by name: (filename, content type, bytes)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest("The request must be multipart/form-data with a `file` field.")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.content)
    if not message.is_multipart():
        raise InvalidRequest("The multipart body could not be read.")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            data = part.get_payload(decode=True) or b""
            fields[name] = (part.get_filename() or "", part.get_content_type(), data)
    return fields


def _file_object(state: dict) -> dict:
    """The FileMetadata object the API returns for a stored file."""
    return {
        "id": state["id"],
        "type": "file",
        "filename": state["filename"],
        "mime_type": state["mime_type"],
        "size_bytes": state["size_bytes"],
        "created_at": _rfc3339(state["created_at"]),
        "expires_at": _rfc3339(state["expires_at"]) if state["expires_at"] is not None else None,
        "downloadable": state["downloadable"],
    }


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _write_atomic(path: Path, data: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
