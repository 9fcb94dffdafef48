"""Attachment files under MEDIA_ROOT, which no URL serves: only the owner-checked views in views.py read them.

Names are generated from the owner and the sha256 of the uploaded bytes, never from the uploaded name, so the
same upload by the same owner lands on the same file.
"""

import os
import tempfile
from pathlib import Path

from django.conf import settings

DIRECTORY = "attachments"


def file_name(owner_id: int, sha256: str, suffix: str) -> str:
    """A stored file's name, relative to MEDIA_ROOT; `suffix` such as ".jpg" or ".thumb.png"."""
    return f"{DIRECTORY}/{owner_id}/{sha256}{suffix}"


def file_path(name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / name


def file_write(name: str, data: bytes) -> None:
    """Write atomically, so a reader never sees half a file even when the same upload is processed twice."""
    path = file_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
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
