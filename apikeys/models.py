"""Personal API keys: what lets other tools call this deployment's Anthropic-compatible API as their owner."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class ApiKey(models.Model):
    """One key of one user. The secret is shown once, when the key is made; only its SHA-256 is kept, with a
    short prefix of it in the clear so that the owner can tell keys apart. Every call made with it is admitted
    by the owner's budgets and the key's own monthly cap, and is a ledger row that names it (`chat.ApiCall`)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The key's first characters, shown to tell keys apart.")
    secret_sha256 = models.CharField(max_length=64, unique=True)
    monthly_cap = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True,
        help_text="Dollars this key may spend per calendar month (UTC), within its owner's budgets. Empty: no cap.",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The settings page: a user's keys that still work.
            models.Index(fields=["user"], condition=Q(revoked_at__isnull=True), name="apikey_user_open"),
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"
