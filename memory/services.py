"""Writes to a user's memory files, for the memory tool (chat/llm/memory_tool.py) and the settings page alike.

Bounded per user: MEMORY_MAX_FILES files of at most MEMORY_MAX_FILE_BYTES each, so what the model keeps, and
what every later `view` sends back to it, stays small. A refusal is a MemoryRefused with a sentence the model or
the user can act on. Paths are normalised by the caller (memory/paths.py `memory_path`).
"""

from django.conf import settings
from django.db import IntegrityError, transaction

from memory import selectors
from memory.models import MemoryFile
from memory.paths import ROOT, MemoryRefused, memory_path


def memory_file_create(*, user_id: int, path: str, content: str) -> MemoryFile:
    if path == ROOT:
        raise MemoryRefused("Cannot create a file at /memories itself; name a file such as /memories/notes.md.")
    _check_size(content)
    if selectors.memory_files_under(user_id, path):
        raise MemoryRefused(f"The path {path} is a directory.")
    _check_no_file_above(user_id, path)
    # Counted before the insert: two creates racing past the last free place may leave one file over the cap,
    # which the next create still refuses.
    if MemoryFile.objects.filter(user_id=user_id).count() >= settings.MEMORY_MAX_FILES:
        raise MemoryRefused(
            f"The memory holds {settings.MEMORY_MAX_FILES} files, the most it may; delete or merge some first."
        )
    try:
        with transaction.atomic():
            return MemoryFile.objects.create(user_id=user_id, path=path, content=content)
    except IntegrityError:  # the unique (user, path): it exists, or a concurrent create made it a moment ago
        raise MemoryRefused(f"File {path} already exists") from None


def memory_file_write(*, memory_file: MemoryFile, content: str) -> MemoryFile:
    """Replace a file's content (an edit in settings, a str_replace or insert of the tool)."""
    _check_size(content)
    memory_file.content = content
    memory_file.save(update_fields=["content", "updated_at"])
    return memory_file


def memory_file_delete(*, memory_file: MemoryFile) -> None:
    memory_file.delete()


def memory_path_delete(*, user_id: int, path: str) -> int:
    """Delete the file at `path`, or the directory `path` with everything in it; how many files went."""
    if path == ROOT:
        raise MemoryRefused("Cannot delete the /memories directory itself")
    prefix = path + "/"
    deleted, _ = MemoryFile.objects.filter(user_id=user_id, path=path).delete()
    if not deleted:
        deleted, _ = MemoryFile.objects.filter(user_id=user_id, path__startswith=prefix).delete()
    if not deleted:
        raise MemoryRefused(f"The path {path} does not exist")
    return deleted


@transaction.atomic
def memory_path_rename(*, user_id: int, old_path: str, new_path: str) -> int:
    """Move the file or directory `old_path` to `new_path`; how many files moved."""
    if ROOT in (old_path, new_path):
        raise MemoryRefused("Cannot rename the /memories directory itself")
    if new_path.startswith(old_path + "/"):
        raise MemoryRefused(f"Cannot move {old_path} into itself")
    if selectors.memory_file_at(user_id, new_path) or selectors.memory_files_under(user_id, new_path):
        raise MemoryRefused(f"The destination {new_path} already exists")
    _check_no_file_above(user_id, new_path)
    single = selectors.memory_file_at(user_id, old_path)
    moving = [single] if single else selectors.memory_files_under(user_id, old_path)
    if not moving:
        raise MemoryRefused(f"The path {old_path} does not exist")
    for memory_file in moving:
        # Each new path is checked whole: a directory moved deeper may push a file past the length or depth.
        memory_file.path = memory_path(new_path + memory_file.path[len(old_path):])
        memory_file.save(update_fields=["path", "updated_at"])
    return len(moving)


def _check_size(content: str) -> None:
    if len(content.encode()) > settings.MEMORY_MAX_FILE_BYTES:
        raise MemoryRefused(
            f"A memory file may hold at most {settings.MEMORY_MAX_FILE_BYTES:,} bytes; keep it shorter."
        )


def _check_no_file_above(user_id: int, path: str) -> None:
    """A file cannot sit inside another file: `/memories/a.md/b` is refused while `/memories/a.md` is a file."""
    parents = ["/".join(path.split("/")[:end]) for end in range(3, path.count("/") + 1)]
    if parents and (above := MemoryFile.objects.filter(user_id=user_id, path__in=parents).first()):
        raise MemoryRefused(f"The path {above.path} is a file, not a directory.")
