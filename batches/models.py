"""Replies made through the Message Batches API at half price: a queued turn (one request) or a bulk question
(one request per file). The worker (`manage.py batches_work`, batches/worker.py) submits, polls and settles
them; docs/batches.md tells the whole life."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q


class Batch(models.Model):
    class Kind(models.TextChoices):
        TURN = "turn"  # a conversation's next reply, "not urgent: half price"
        BULK = "bulk"  # the same question of each of several files

    class Status(models.TextChoices):
        PENDING = "pending"  # stored, not yet sent
        # The worker is sending it: set (and committed) before the upstream call, so a cancel of a pending batch
        # and a submission never both happen. A worker that dies here finds it again at start (worker.py).
        SUBMITTING = "submitting"
        SUBMITTED = "submitted"  # upstream has it (`upstream_id`); polled until it ends
        ENDED = "ended"  # every item settled
        FAILED = "failed"  # the submission gave up (BATCH_SUBMIT_TRIES); every item failed, nothing billed

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    model = models.CharField(max_length=100)
    question = models.TextField(blank=True, help_text="A bulk batch's question, asked of each file.")
    per_file_conversations = models.BooleanField(
        default=False, help_text="A bulk batch: each file's question and answer become a conversation."
    )
    upstream_id = models.CharField(max_length=100, blank=True, help_text="The Message Batch's id upstream.")
    submit_attempts = models.PositiveSmallIntegerField(default=0)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_sent_at = models.DateTimeField(null=True, blank=True, help_text="When `cancel` was called upstream.")
    error = models.TextField(blank=True, help_text="Why the last submission or poll failed.")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"
        indexes = [
            # The worker's every poll: the batches still to send or to watch.
            models.Index(
                fields=["status"], condition=Q(status__in=["pending", "submitting", "submitted"]),
                name="batch_open",
            ),
            # The bulk page: a user's batches, newest first.
            models.Index(fields=["owner", "-created_at"], name="batch_owner_created"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} batch #{self.pk} ({self.status})"


class BatchItem(models.Model):
    """One request of a batch: its exact Messages params, what it answers for (a queued reply, or a file of a
    bulk question) and the reservation that holds its worst case until it settles."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        ERRORED = "errored"
        CANCELED = "canceled"
        EXPIRED = "expired"

    # A queued reply's item is "reply-<message id>"; a bulk table's row, "file-<n>".
    REPLY_PREFIX = "reply-"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    custom_id = models.CharField(max_length=64)
    params = models.JSONField(help_text="The Messages request, as the normal reply would send it (no stream).")
    message = models.OneToOneField(
        "chat.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="batch_item",
        help_text="The queued reply this request writes.",
    )
    attachment = models.ForeignKey(
        "chat.Attachment", on_delete=models.SET_NULL, null=True, blank=True, related_name="batch_items",
    )
    name = models.CharField(max_length=255, blank=True, help_text="The file's name, for the results table.")
    reservation = models.OneToOneField(
        "billing.Reservation", on_delete=models.SET_NULL, null=True, blank=True, related_name="batch_item",
        help_text="Never released by the stale sweep: only settling the item releases it.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    answer = models.TextField(blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    error = models.TextField(blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "custom_id"], name="batchitem_custom_id_unique"),
        ]

    def __str__(self):
        return f"{self.custom_id} of batch {self.batch_id}"

    @property
    def reply_deleted(self) -> bool:
        """It wrote a queued reply that was deleted since (a branch, a conversation): its answer, should it come,
        is billed and stored nowhere."""
        return self.custom_id.startswith(self.REPLY_PREFIX) and self.message_id is None
