"""The memory tool's storage (chat/llm/memory_tool.py): the files Claude keeps for one user across conversations.

The API's memory tool is client-side: the model asks for `/memories/...` paths and the application keeps them.
Here a file is a row; a directory is only a prefix of file paths, so there is nothing a path could link to.
"""

from django.conf import settings
from django.db import models


class MemoryFile(models.Model):
    """One memory file of one user. `path` is normalised (memory/paths.py): `/memories/<segment>/...`."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memory_files")
    path = models.CharField(max_length=255)
    content = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path"]
        constraints = [
            # One file per path and user; it also serves every read here: a user's files by path, a file by path,
            # and a directory's files by path prefix (`path__startswith`), in path order.
            models.UniqueConstraint(fields=["user", "path"], name="memory_file_user_path"),
        ]

    def __str__(self):
        return self.path

    @property
    def size(self) -> int:
        """Bytes of the content in UTF-8: what MEMORY_MAX_FILE_BYTES bounds."""
        return len(self.content.encode())
