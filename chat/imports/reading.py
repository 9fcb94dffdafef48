"""An uploaded import file as a stream of JSON documents, one conversation's worth at a time, at bounded cost.

The file is untrusted and may be large, so nothing here holds it whole: a zip is opened on the upload's
temporary file and only its `conversations.json` member is read; JSON is parsed as a stream of events
(ijson) and built into Python values one document at a time, a document being each element of a top-level
list, or the top-level object itself. What one document may cost is capped while it is built, so a single
conversation can never take more memory than IMPORT_MAX_CONVERSATION_BYTES of JSON (and MAX_VALUES values,
MAX_DEPTH levels deep) however the bytes are arranged; the bytes read in all are capped by
IMPORT_MAX_UNCOMPRESSED_BYTES whatever a zip's headers declare.
"""

import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import ijson
from django.conf import settings

from chat.attachments.limits import megabytes
from chat.refusals import Refusal

MEMBER = "conversations.json"
ZIP_MAGIC = b"PK\x03\x04"
# A conversation as this app, claude.ai or ChatGPT writes it is a dozen levels deep (a tool call's input a few
# more); thousands of levels is a file built to exhaust a recursive reader.
MAX_DEPTH = 64
# Values (strings, numbers, containers) in one document: a ChatGPT node holds about thirty, so this is tens of
# thousands of messages. It bounds the memory of documents of tiny values ("[[],[],...]"), which the byte cap
# alone would let grow to dozens of times their size.
MAX_VALUES = 1_000_000


class ImportRefused(Refusal):
    """The file cannot be imported at all; `detail` is the one sentence that says why."""


@dataclass
class Document:
    """One top-level JSON value, or `problem`: why it was not built (too big, too deep), in a sentence."""

    value: object = None
    problem: str = ""


class DocumentsBroken(Exception):
    """The JSON stopped being valid after some documents had been read; `detail` says how, in a sentence."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


def documents(upload: IO[bytes]) -> tuple[bool, Iterator[Document]]:
    """Whether the file holds a list of documents (else one object), and the documents, read as they are
    iterated. Raises ImportRefused when the file is not something to import at all: not a zip or JSON, a zip
    without conversations.json or over the size cap, JSON that is neither a list nor an object. The iterator
    raises DocumentsBroken when the JSON breaks off later."""
    upload.seek(0)
    head = upload.read(len(ZIP_MAGIC))
    upload.seek(0)
    if not head:
        raise ImportRefused("empty", "The file is empty.")
    if head == ZIP_MAGIC:
        stream = _member(upload)
    else:
        stream = _Counted(upload, settings.IMPORT_MAX_UNCOMPRESSED_BYTES)
    events = ijson.basic_parse(stream, use_float=True)
    try:
        event, _ = next(events)
    except _TooBig as error:
        raise ImportRefused("too_big", str(error)) from None
    except (ijson.JSONError, UnicodeDecodeError, ValueError, *UNPACK_ERRORS):
        raise ImportRefused(
            "not_json",
            "This file is not JSON or a zip: choose a conversations.json, an export's .zip, or a "
            "conversation exported from here as JSON.",
        ) from None
    if event == "start_map":
        return False, _one(event, events, stream)
    if event == "start_array":
        return True, _elements(events, stream)
    raise ImportRefused(
        "not_conversations", "This JSON holds no conversations: it is not a list or an object."
    )


def _member(upload: IO[bytes]) -> "_Counted":
    """The zip's conversations.json (the shallowest one, if several), refused over the uncompressed cap by its
    declared size before a byte is inflated, and counted as it inflates in case the declaration lies."""
    limit = settings.IMPORT_MAX_UNCOMPRESSED_BYTES
    try:
        archive = zipfile.ZipFile(upload)
        members = [info for info in archive.infolist() if info.filename.rsplit("/", 1)[-1] == MEMBER]
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise ImportRefused("bad_zip", "This zip file is damaged and cannot be read.") from None
    if not members:
        raise ImportRefused(
            "no_conversations_json",
            "This zip holds no conversations.json: choose the .zip of a claude.ai or ChatGPT data export.",
        )
    info = min(members, key=lambda member: (member.filename.count("/"), member.filename))
    if info.file_size > limit:
        raise ImportRefused(
            "too_big",
            f"Its conversations.json is {megabytes(info.file_size)} unpacked; an import can be at "
            f"most {megabytes(limit)}.",
        )
    try:
        return _Counted(archive.open(info), limit)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError):  # damaged, an unknown method, encrypted
        raise ImportRefused("bad_zip", "The conversations.json in this zip cannot be unpacked.") from None


class _TooBig(Exception):
    pass


class _Counted:
    """A binary stream that refuses to give more than `limit` bytes in all, and says how many it gave."""

    def __init__(self, stream: IO[bytes], limit: int):
        self.stream, self.limit, self.taken = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size if size is not None and size >= 0 else 64 * 1024)
        self.taken += len(chunk)
        if self.taken > self.limit:
            raise _TooBig(
                f"The file holds more than {megabytes(self.limit)} of JSON; an import can hold at most that."
            )
        return chunk


# A damaged member may fail its CRC check, its inflation, or end early.
UNPACK_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError)
PARSE_ERRORS = (_TooBig, ijson.JSONError, UnicodeDecodeError, ValueError, *UNPACK_ERRORS)


def _one(first: str, events, stream: _Counted) -> Iterator[Document]:
    try:
        yield _document(first, events, stream)
    except PARSE_ERRORS as error:
        raise _broken(error, 0) from None


def _elements(events, stream: _Counted) -> Iterator[Document]:
    read = 0
    try:
        for event, value in events:
            if event == "end_array":
                return
            yield _document(event, events, stream, value)
            read += 1
    except PARSE_ERRORS as error:
        raise _broken(error, read) from None


def _broken(error: Exception, read: int) -> DocumentsBroken:
    """A parse error, or the byte cap, met after `read` documents."""
    if isinstance(error, _TooBig):
        return DocumentsBroken(str(error))
    where = f" after {read} conversation{'' if read == 1 else 's'}" if read else ""
    if isinstance(error, UNPACK_ERRORS):
        return DocumentsBroken(f"The zip is damaged{where}.")
    return DocumentsBroken(f"The file stops being valid JSON{where}.")


def _document(first: str, events, stream: _Counted, scalar=None) -> Document:
    """The value that starts with `event`, built without recursion. Past a cap it is not kept: the rest of it
    is read and dropped, so the documents after it can still be read."""
    if first not in ("start_map", "start_array"):
        return Document(scalar)
    limit = settings.IMPORT_MAX_CONVERSATION_BYTES
    started = stream.taken
    root: dict | list = {} if first == "start_map" else []
    stack: list = [root]
    key = None
    values = 1
    for event, value in events:
        if event == "map_key":
            key = value
            continue
        if event in ("end_map", "end_array"):
            stack.pop()
            if not stack:
                return Document(root)
            continue
        values += 1
        if values > MAX_VALUES or len(stack) >= MAX_DEPTH or stream.taken - started > limit:
            problem = (
                f"it is over {megabytes(limit)} of JSON"
                if stream.taken - started > limit
                else f"it is nested more than {MAX_DEPTH} levels deep"
                if len(stack) >= MAX_DEPTH
                else f"it holds more than {MAX_VALUES:,} values"
            )
            _skip(event, len(stack), events)
            return Document(problem=problem)
        item = {} if event == "start_map" else [] if event == "start_array" else value
        parent = stack[-1]
        if type(parent) is dict:
            parent[key] = item
        else:
            parent.append(item)
        if event in ("start_map", "start_array"):
            stack.append(item)
    raise ValueError("incomplete JSON")


def _skip(last: str, depth: int, events) -> None:
    """Read past the rest of a value `depth` containers deep, `last` being the last event read."""
    if last in ("start_map", "start_array"):
        depth += 1
    for event, _ in events:
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                return
    raise ValueError("incomplete JSON")
