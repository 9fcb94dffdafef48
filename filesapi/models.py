"""Which attachments the Files API holds already: one row per owner, API key and content."""

from django.conf import settings
from django.db import models


class UpstreamFile(models.Model):
    """A stored attachment file uploaded to the Files API, referenced by `file_id` instead of sent inline.

    Keyed by the owner of the attachment, the sha256 of the bytes uploaded and the backend (a hash of the API's
    base URL and key: file ids belong to one key's workspace, so another key never gets an id it cannot read).
    Two conversations of the owner, or two attachments with the same bytes, share one upload. A row the API
    says is gone (expired, deleted upstream) is deleted, and the next turn uploads again.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upstream_files"
    )
    backend = models.CharField(max_length=64, help_text="sha256 of the API's base URL and key.")
    sha256 = models.CharField(max_length=64, help_text="Of the bytes uploaded (the stored attachment file).")
    file_id = models.CharField(max_length=255, help_text="The Files API's id.")
    kind = models.CharField(max_length=8, help_text="The attachment's kind: image, pdf or text.")
    size = models.PositiveBigIntegerField(help_text="Bytes uploaded.")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        constraints = [
            # A turn's get-or-upload: the owner's file for these bytes on this backend (filesapi.services).
            models.UniqueConstraint(
                fields=["owner", "backend", "sha256"], name="upstream_file_owner_backend_sha256"
            ),
        ]
        indexes = [
            # upstream_files_forget: the rows of the ids the API refused.
            models.Index(fields=["file_id"], name="upstream_file_file_id"),
        ]

    def __str__(self):
        return f"{self.file_id} ({self.kind}, {self.size} bytes)"
