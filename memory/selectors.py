"""Reads of a user's memory files. Every one is keyed by the user: no read here can reach another user's rows."""

from django.shortcuts import get_object_or_404

from memory.models import MemoryFile


def memory_files(user_id: int) -> list[MemoryFile]:
    return list(MemoryFile.objects.filter(user_id=user_id).order_by("path"))


def memory_file_for_user(user, file_id: int) -> MemoryFile:
    """The file, if it is `user`'s; 404 otherwise (another user's file does not exist for them)."""
    return get_object_or_404(MemoryFile, pk=file_id, user=user)


def memory_file_at(user_id: int, path: str) -> MemoryFile | None:
    """The file at `path` (normalised), or None."""
    return MemoryFile.objects.filter(user_id=user_id, path=path).first()


def memory_files_under(user_id: int, path: str) -> list[MemoryFile]:
    """The files inside the directory `path` (normalised), at any depth."""
    prefix = path.rstrip("/") + "/"
    return list(MemoryFile.objects.filter(user_id=user_id, path__startswith=prefix).order_by("path"))
