"""Read-only shares of a conversation: with named users of this deployment, or as a link."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class SharePolicy(models.Model):
    """The one row of the site's sharing rules, edited in the admin."""

    public_links = models.BooleanField(
        default=False,
        help_text="Allow links that anyone can open, signed in or not. Off: a link opens only for signed-in users.",
    )

    class Meta:
        verbose_name_plural = "share policy"

    def __str__(self):
        return "Share policy"


class Share(models.Model):
    class Audience(models.TextChoices):
        USERS = "users", "Named users"
        SIGNED_IN = "signed_in", "Anyone signed in with the link"
        PUBLIC = "public", "Anyone with the link"

    class Mode(models.TextChoices):
        SNAPSHOT = "snapshot", "As it is now"
        LIVE = "live", "Live: follows the conversation"

    conversation = models.ForeignKey("chat.Conversation", on_delete=models.CASCADE, related_name="shares")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shares_created")
    # What the link carries: 256 random bits, so a share cannot be guessed from an id.
    token = models.CharField(max_length=64, unique=True)
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.SIGNED_IN)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.SNAPSHOT)
    # A snapshot shows the path from the root down to this message, as it was when shared. An edit or a
    # regenerate adds a sibling, so no message above the leaf ever changes (each has a child, and only the
    # path's last message can be continued); the leaf itself can: `continue` extends a reply cut at
    # max_tokens in place. So the leaf's content as shared is kept here, in `leaf_state`.
    leaf = models.ForeignKey(
        "chat.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="The last message of a snapshot; a live share follows the conversation's active path.",
    )
    leaf_state = models.JSONField(
        default=dict, blank=True,
        help_text="A snapshot's leaf as it was when shared (content, status, stop_reason, error), shown for it.",
    )
    recipients = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="shares_received")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The share dialog: a conversation's shares that still work.
            models.Index(fields=["conversation"], condition=Q(revoked_at__isnull=True), name="share_open"),
        ]

    def __str__(self):
        return f"Share of {self.conversation_id} ({self.get_audience_display()})"
