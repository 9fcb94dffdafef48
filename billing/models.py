"""Prices in force and the budget alerts already sent. The spend itself is the ledger, `chat.ApiCall`."""

from decimal import Decimal

from django.conf import settings
from django.db import models

from billing.money import money
from chat.llm.catalog import ModelSpec


def _plain(value: Decimal) -> str:
    """The shortest exact form ("3", "3.75", "30"), so snapshots read like the catalog's list prices."""
    return format(value.normalize(), "f")


class Price(models.Model):
    """What one model costs now, in dollars per million tokens, by kind of token.

    Seeded from the built-in catalog and edited by admins. A call stores the prices it was charged at
    (`ApiCall.price_snapshot`), so an edit here only changes the cost of calls made afterwards.
    """

    model = models.CharField(max_length=100, unique=True, help_text="Model id, as sent to the API.")
    input = models.DecimalField(max_digits=10, decimal_places=4)
    output = models.DecimalField(max_digits=10, decimal_places=4, help_text="Thinking tokens included.")
    cache_write_5m = models.DecimalField(max_digits=10, decimal_places=4, verbose_name="cache write (5 min)")
    cache_write_1h = models.DecimalField(max_digits=10, decimal_places=4, verbose_name="cache write (1 hour)")
    cache_read = models.DecimalField(max_digits=10, decimal_places=4)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self):
        return self.model

    @classmethod
    def from_catalog(cls, spec: ModelSpec) -> "Price":
        prices = spec.prices
        return cls(
            model=spec.id,
            input=prices.input,
            output=prices.output,
            cache_write_5m=prices.cache_write_5m,
            cache_write_1h=prices.cache_write_1h,
            cache_read=prices.cache_read,
        )

    def as_dict(self) -> dict[str, str]:
        """The snapshot stored on each ApiCall; same keys as `chat.llm.catalog.Prices.as_dict`."""
        kinds = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
        return {kind: _plain(Decimal(getattr(self, kind))) for kind in kinds}


class BudgetAlert(models.Model):
    """An email that a user, or a group, crossed a share of a monthly budget: a user's alert goes to the
    admins, a group's to its managers. One per user (or group), month and threshold, which the unique
    constraints guarantee even when several processes settle calls at once."""

    class Threshold(models.IntegerChoices):
        WARNING = 80, "80%"
        EXCEEDED = 100, "100%"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
        related_name="budget_alerts",
    )
    team = models.ForeignKey(
        "teams.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="budget_alerts",
        verbose_name="group",
    )
    month = models.DateField(help_text="First day of the month (UTC).")
    threshold = models.PositiveSmallIntegerField(choices=Threshold.choices)
    spent = models.DecimalField(max_digits=12, decimal_places=6)
    budget = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A group's alert has no user, a user's no group: NULLs are distinct, so each constraint only
            # ever compares alerts of its own kind.
            models.UniqueConstraint(fields=["user", "month", "threshold"], name="budgetalert_once_per_month"),
            models.UniqueConstraint(
                fields=["team", "month", "threshold"], name="budgetalert_team_once_per_month",
            ),
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, team__isnull=True)
                | models.Q(user__isnull=True, team__isnull=False),
                name="budgetalert_user_or_team",
            ),
        ]

    def __str__(self):
        return f"{self.user or self.team} crossed {self.threshold}% in {self.month:%B %Y}"


class Reservation(models.Model):
    """The worst-case cost of a reply being written, held against its user's budget until the reply settles.

    Admission creates it in the transaction that stores the user's message, so the budget check ("settled spend
    plus open reservations") and the hold are one step: concurrent sends from several tabs can never together
    spend more than the budget. Settling the reply deletes it in the transaction that writes the ledger rows;
    the stale sweep deletes the reservation of a reply whose process died. `max_tokens` and `tool_rounds` are
    what the reservation paid for when the remaining budget could not cover a full reply (null: no cap).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reservations")
    message = models.OneToOneField(
        "chat.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="reservation"
    )
    amount = models.DecimalField(max_digits=12, decimal_places=6)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    tool_rounds = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Admission: the sum of a user's open reservations.
            models.Index(fields=["user"], name="reservation_user"),
        ]

    def __str__(self):
        return f"{money(self.amount)} held for {self.user} (message {self.message_id})"
