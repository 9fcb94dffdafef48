"""Content blocks for the model, built from the stored files at request time: the database holds references.

A conversation sends its attachments again with every turn, so their base64 text (a text document's text)
is kept in a per-process LRU (`encoded_files`, bounded by ENCODED_CACHE_BYTES) instead of being read from disk
and encoded each time. Stored files never change under their name (it is the sha256 of the bytes,
chat/attachments/storage.py), so an entry cannot go stale; it is keyed on the attachment's id and the file's
full path, so a different MEDIA_ROOT (each test has its own) never reads another's entry.
"""

import base64
import logging
import threading
from collections import OrderedDict

from chat.attachments.storage import file_path, file_read
from chat.models import Attachment

log = logging.getLogger(__name__)

# The block types an attachment becomes; the context budget counts them by the attachment's stored estimate.
ATTACHMENT_BLOCK_TYPES = ("image", "document")
ENCODED_CACHE_BYTES = 64 * 1024 * 1024


class EncodedFiles:
    """Stored files as the request carries them, least recently used dropped first once they pass `max_bytes`.

    Thread-safe: requests are built on the thread pool (chat/db.py), several at a time. A file larger than the
    whole budget is encoded for its request and not kept.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> str | None:
        with self._lock:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
            return data

    def put(self, key: tuple, data: str) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = data
            self.size += len(data)
            while self.size > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self.size -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.size = 0

    def __len__(self) -> int:
        return len(self._entries)


encoded_files = EncodedFiles(ENCODED_CACHE_BYTES)


def reference_block(attachment_id: int) -> dict:
    """What a user message stores in place of an attachment."""
    return {"type": "attachment", "attachment_id": attachment_id}


def content_block(attachment: Attachment) -> dict:
    """The image or document block the API reads. A file gone from disk becomes a note, not a failed reply.

    A text document is a document block of the text itself, titled with the file's name like a PDF. Each call
    returns new dicts (the request sets cache breakpoints on its blocks); only the text of the file is shared.
    """
    is_text = attachment.kind == Attachment.Kind.TEXT
    key = (attachment.pk, str(file_path(attachment.file)))
    data = encoded_files.get(key)
    if data is None:
        try:
            stored = file_read(attachment.file)
        except FileNotFoundError:
            log.warning("attachment %s has no file %s", attachment.pk, attachment.file)
            return {"type": "text", "text": f"(The attachment {attachment.name!r} is no longer available.)"}
        data = stored.decode("utf-8") if is_text else base64.b64encode(stored).decode("ascii")
        encoded_files.put(key, data)
    source_type = "text" if is_text else "base64"
    source = {"type": source_type, "media_type": attachment.media_type, "data": data}
    if attachment.kind == Attachment.Kind.IMAGE:
        return {"type": "image", "source": source}
    # Citations on every document (the API takes them on all of a request's documents or none): a reply quoting
    # it cites the page or the characters it read (chat/citations.py).
    return {"type": "document", "source": source, "title": attachment.name, "citations": {"enabled": True}}


def file_referenced(block: dict, file_id: str) -> dict:
    """`block` (from `content_block`) sending its file by the Files API's id instead of its bytes: the same
    block, title and cache breakpoint kept, with a `file` source (filesapi/services.py decides when)."""
    return {**block, "source": {"type": "file", "file_id": file_id}}
