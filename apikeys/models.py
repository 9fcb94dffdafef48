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
            # A user's keys that still work: how many there are before one more is made (MAX_OPEN_KEYS).
            models.Index(fields=["user"], condition=Q(revoked_at__isnull=True), name="apikey_user_open"),
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"


class ApiPolicy(models.Model):
    """Whether the API is served, and to whom: one row, edited in the admin (`api_policy()` makes it). With no
    groups chosen every user may make keys and call it; with some, only members of those groups or of a group
    below one of them."""

    enabled = models.BooleanField(default=True, help_text="Off: every API call is refused (403).")
    groups = models.ManyToManyField(
        "teams.Team", blank=True, related_name="+",
        help_text="Only members of these groups (or of a group below one) may use the API. Empty: everyone.",
    )

    class Meta:
        verbose_name = "API policy"
        verbose_name_plural = "API policy"

    def __str__(self):
        return "API policy"


class KeyReservation(models.Model):
    """Which key a reservation (billing.Reservation) is held for, so the key's monthly cap counts what its calls
    in flight may still spend. It goes with its reservation: settling, or the stale sweep, deletes both."""

    reservation = models.OneToOneField(
        "billing.Reservation", on_delete=models.CASCADE, primary_key=True, related_name="api_hold"
    )
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="holds")

    def __str__(self):
        return f"reservation {self.reservation_id} for {self.api_key}"
