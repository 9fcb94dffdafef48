"""What happened, who did it, to what: the audit log. Rows are only ever added (see AuditEvent.save)."""

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One event. Append-only for everyone, admins included: the model refuses updates and deletes, the admin
    is read-only, and the database refuses them too (audit/triggers.py, installed by migration 0002), so not
    even a bug or a shell session rewrites history.

    On SQLite, a migration that alters this table rebuilds it, and the rebuild drops its triggers: such a
    migration must install them again (audit/triggers.py); tests/test_audit_append_only.py notices if not.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The user's id as it was, with no constraint in the database: deleting a user leaves their events as they
    # are (SET_NULL would be an UPDATE, which the triggers refuse), named by actor_name. `event.actor` of a
    # deleted user raises DoesNotExist; pages show actor_name.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=64, db_index=True)
    subject = models.CharField(max_length=300, blank=True, help_text="What it was done to, in words.")
    detail = models.JSONField(default=dict, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name or '-'} {self.action} {self.subject}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit events are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are never deleted.")
