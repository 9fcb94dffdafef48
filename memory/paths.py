"""Memory paths: what the model may name, normalised, and everything else refused with a reason it can read.

Every path the memory tool or the settings page takes goes through `memory_path`. The storage is rows, not a
filesystem, so `..` could never reach another user's files; it is refused anyway, with everything else that
would mean something different to a reader than to the storage (an encoded dot, a backslash, a NUL, `.` and
empty segments, look-alike dots that Unicode folds into `..`), so that each file has one spelling.
"""

import re
import unicodedata

ROOT = "/memories"
MAX_PATH_CHARS = 255
MAX_DEPTH = 8
# %2e, %2F, %5c ...: an encoded character is refused rather than decoded (decoding twice is how traversals pass).
ENCODED = re.compile(r"%[0-9a-fA-F]{2}")


class MemoryRefused(ValueError):
    """A path or a write the memory refuses (memory/services.py raises it too); its message is what the model
    reads as the tool's error result, and what the settings page shows."""


def memory_path(path: object) -> str:
    """`path` normalised (`/memories` or `/memories/a/b.md`: no trailing slash), or MemoryRefused."""
    if not isinstance(path, str) or not path:
        raise MemoryRefused("The path must be a non-empty string, such as /memories/notes.md.")
    if len(path) > MAX_PATH_CHARS:
        raise MemoryRefused(f"The path is longer than {MAX_PATH_CHARS} characters.")
    if "\x00" in path or any(unicodedata.category(char) == "Cc" for char in path):
        raise MemoryRefused("The path contains a control character.")
    if "\\" in path:
        raise MemoryRefused(f"The path {path} contains a backslash; use / between names.")
    if ENCODED.search(path):
        raise MemoryRefused(f"The path {path} contains an encoded character (%..); write it plainly.")
    path = unicodedata.normalize("NFC", path)
    if path.rstrip("/") == ROOT:
        return ROOT
    if not path.startswith(ROOT + "/"):
        raise MemoryRefused(f"Path must start with /memories, got: {path}")
    segments = path[len(ROOT) + 1:].removesuffix("/").split("/")
    if len(segments) > MAX_DEPTH:
        raise MemoryRefused(f"The path is deeper than {MAX_DEPTH} directories.")
    for segment in segments:
        folded = unicodedata.normalize("NFKC", segment).strip()
        if folded in ("", ".", ".."):
            raise MemoryRefused(f"Path {path} would escape /memories directory or names an empty segment.")
    return "/".join([ROOT, *segments])


def memory_relative(path: str) -> str:
    """`/memories/a/b.md` as `a/b.md`: how the settings page names a file."""
    return path[len(ROOT) + 1:]
