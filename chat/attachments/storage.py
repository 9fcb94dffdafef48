"""Attachment files under MEDIA_ROOT, which no URL serves: only the owner-checked views in views.py read them.

Names are generated from the owner and the sha256 of the uploaded bytes, never from the uploaded name, so the
same upload by the same owner lands on the same file.
"""

import errno
import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

DIRECTORY = "attachments"
DISK_FULL = "The server's disk is full, so this file could not be stored. Try again later, or tell an admin."
# What the kernel says when a write finds no room: no free blocks (or inodes), or the user's quota is spent.
DISK_FULL_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(error: OSError) -> bool:
    return error.errno in DISK_FULL_ERRORS


def file_name(owner_id: int, sha256: str, suffix: str) -> str:
    """A stored file's name, relative to MEDIA_ROOT; `suffix` such as ".jpg" or ".thumb.png"."""
    return f"{DIRECTORY}/{owner_id}/{sha256}{suffix}"


def file_path(name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / name


def file_store(name: str, source: Path) -> None:
    """Copy `source` in as `name`, a chunk at a time, so a file of any size costs no more memory than one chunk.

    Atomic: the copy goes to a temporary file beside the destination, renamed over it once complete, so a reader
    never sees half a file even when the same upload is processed twice at once. A full disk leaves nothing
    behind and raises ValidationError(DISK_FULL), an answer for the user like any other refusal.
    """
    path = file_path(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(descriptor, "wb") as target, source.open("rb") as origin:
                shutil.copyfileobj(origin, target)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        if is_disk_full(error):
            raise ValidationError(DISK_FULL) from error
        raise


def file_read(name: str) -> bytes:
    return file_path(name).read_bytes()


def file_delete(name: str) -> None:
    file_path(name).unlink(missing_ok=True)


def stored_files() -> list[tuple[str, float]]:
    """Every stored file's name and modification time (orphan sweeps compare them with the rows)."""
    root = Path(settings.MEDIA_ROOT)
    return [
        (path.relative_to(root).as_posix(), path.stat().st_mtime)
        for path in (root / DIRECTORY).glob("*/*")
        if path.is_file()
    ]
