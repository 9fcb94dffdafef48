"""When each model is deprecated and retired, and what replaces it: the lifecycle table.

A model with no row is active. A model is retired from its `retires_on` date on (UTC): from then on it is never
offered and never sent a request, even if the API would still answer for a while (the API's own date can slip;
this deployment stops on the date it announced). Rows come from this deployment's built-in list (migration
0002), from the Models API's `lifecycle`, `deprecated_at` and `retires_at` when a key is set, and from admins.
"""

from datetime import date

from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class ModelLifecycle(models.Model):
    class Source(models.TextChoices):
        BUILT_IN = "built_in", "This deployment's built-in list"
        MODELS_API = "models_api", "The Models API"
        # An admin's edit: automatic refreshes (the Models API) leave the row alone from then on.
        ADMIN = "admin", "An admin"

    model = models.CharField(max_length=100, unique=True, help_text="The model id, as the API names it.")
    deprecated_on = models.DateField(null=True, blank=True, help_text="When the deprecation was announced.")
    retires_on = models.DateField(
        null=True, blank=True, help_text="From this day (UTC) the model is never offered nor sent a request.",
    )
    successor = models.CharField(
        max_length=100, blank=True, help_text="The model id that conversations and defaults move to.",
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.BUILT_IN)
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["retires_on", "model"]
        constraints = [
            models.CheckConstraint(condition=~Q(successor=F("model")), name="lifecycle_successor_not_itself"),
        ]

    def __str__(self):
        return self.model

    @staticmethod
    def today() -> date:
        """The lifecycle's clock (the UTC day): every "is it retired yet" reads it, so tests pin one day here
        instead of depending on the real date."""
        return timezone.now().date()

    def retired(self, today: date | None = None) -> bool:
        return self.retires_on is not None and self.retires_on <= (today or ModelLifecycle.today())

    def deprecated(self, today: date | None = None) -> bool:
        """Announced and not yet retired: still offered, with a label."""
        today = today or ModelLifecycle.today()
        announced = self.deprecated_on is not None and self.deprecated_on <= today
        return (announced or self.retires_on is not None) and not self.retired(today)


class RetirementNotice(models.Model):
    """One email to the admins about one model's retirement at one threshold (30, 7 or 1 days before). The
    unique constraint is what keeps two concurrent `lifecycle_notify` runs from sending it twice: the row is
    written before the mail, in the same transaction. A rescheduled retirement (another `retires_on`) is a new
    one, so its notices go out again."""

    model = models.CharField(max_length=100)
    retires_on = models.DateField()
    days_before = models.PositiveSmallIntegerField()
    conversations = models.PositiveIntegerField(help_text="Conversations on the model when the mail went out.")
    defaults = models.PositiveIntegerField(help_text="Users whose default model it was.")
    recipients = models.PositiveIntegerField()
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sent_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "retires_on", "days_before"], name="lifecycle_notice_once_per_threshold",
            ),
        ]

    def __str__(self):
        return f"{self.model}: {self.days_before} days before {self.retires_on}"
