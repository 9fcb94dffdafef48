import secrets

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone

from teams.models import Membership


class Theme(models.TextChoices):
    SYSTEM = "", "Same as the system"
    LIGHT = "light", "Light"
    DARK = "dark", "Dark"


class User(AbstractUser):
    """The site's user, custom from the first migration so per-user settings can live here."""

    default_model = models.CharField(max_length=100, blank=True, help_text="Model for new conversations.")
    system_prompt = models.TextField(blank=True, help_text="Default system prompt for new conversations.")
    time_zone = models.CharField(
        max_length=64, default="UTC", help_text="An IANA time zone such as Europe/Paris: the current_time tool's."
    )
    # Whether the user chose `time_zone` (settings page, or the chat page's "Use your browser's time zone?"
    # banner): until then the chat page proposes the browser's zone when it differs, and never after.
    time_zone_confirmed = models.BooleanField(default=False, help_text="The user chose their time zone.")
    # Rendered as <html data-theme> by templates/base.html: the page is drawn in it with no script, no flash.
    theme = models.CharField(
        max_length=8, blank=True, choices=Theme.choices, default=Theme.SYSTEM,
        help_text="Light, dark, or empty to follow the system.",
    )
    # Budget and limits: empty means the site default from settings (CHAT_DEFAULT_MONTHLY_BUDGET,
    # CHAT_RATE_LIMIT_*), so a change of default reaches everyone who was not given their own value.
    monthly_budget = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True,
        help_text="Dollars per calendar month (UTC). Empty: the site default. 0: nothing may be spent.",
    )
    # The user's own, set on their settings page: it can only lower what the budgets above allow.
    monthly_cap = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True,
        help_text="The user's own lower monthly cap in dollars. Empty: none of their own. 0: nothing may be spent.",
    )
    rate_limit_requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests to the model per minute. Empty: the site default. 0: no limit."
    )
    rate_limit_tokens_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens (input and output) per minute. Empty: the site default. 0: no limit."
    )
    batch_email = models.BooleanField(
        "Email me when a half-price reply is ready", default=False,
        help_text="Replies sent \u201cNot urgent: half price\u201d can take up to a day (batches/).",
    )
    # Thinking for new conversations: one of chat.models.ThinkingLevel's values (chat depends on accounts, so
    # the choices are checked by the settings form, not here).
    default_thinking = models.CharField(
        max_length=8, default="off", help_text="How much new conversations think before they answer."
    )
    # The approximate location the web search tool is told (the API's `user_location`), with `time_zone`.
    location_city = models.CharField("city", max_length=100, blank=True)
    location_region = models.CharField("region", max_length=100, blank=True)
    location_country = models.CharField(
        "country", max_length=2, blank=True, help_text="Two-letter ISO 3166-1 code, such as NZ or DE."
    )
    memory_enabled = models.BooleanField(
        "Let Claude keep memories", default=True,
        help_text="Claude may save notes between conversations with the memory tool, when an admin has enabled it.",
    )

    class Meta(AbstractUser.Meta):
        constraints = [
            # Password reset and sign-up look addresses up case-insensitively; two accounts sharing one would
            # let a reset reach the wrong person. Empty means "no address" and may repeat.
            models.UniqueConstraint(
                Lower("email"), condition=~models.Q(email=""), name="user_email_unique_when_set",
                violation_error_message="An account with this email address already exists.",
            ),
        ]

    def __str__(self):
        return self.username


class RegistrationPolicy(models.Model):
    """Who may create an account: one row, edited by superusers in the admin. It is created on first use from
    REGISTRATION_MODE and REGISTRATION_DOMAINS (accounts/registration.py), so the environment only sets the
    first value and an admin's later choice survives restarts."""

    class Mode(models.TextChoices):
        CLOSED = "closed", "Closed: admins create users or send invites"
        INVITE = "invite", "Invite links only"
        DOMAINS = "domains", "Open to email addresses of the listed domains"
        OPEN = "open", "Open to anyone"

    mode = models.CharField(max_length=16, choices=Mode.choices)
    domains = models.TextField(
        blank=True, help_text="For the domains mode: one domain per line (or comma-separated), e.g. example.com.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "registration policy"
        verbose_name_plural = "registration policy"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="registration_policy_one_row")]

    def __str__(self):
        return self.get_mode_display()

    @property
    def domain_list(self) -> list[str]:
        return sorted({part.strip().lower().lstrip("@") for part in self.domains.replace(",", "\n").split()
                       if part.strip()})


def invite_token() -> str:
    return secrets.token_urlsafe(32)


class Invite(models.Model):
    """A single-use sign-up link. It works in every registration mode, but only once, before it expires and
    unless it was revoked. With a team, the new account joins it with `role`."""

    token = models.CharField(max_length=64, unique=True, default=invite_token, editable=False)
    email = models.EmailField(blank=True, help_text="Optional: the address the invite was sent to.")
    team = models.ForeignKey(
        "teams.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="invites",
        help_text="Optional: the group the new account joins.",
    )
    role = models.CharField(max_length=16, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    created_by = models.ForeignKey(
        "accounts.User", null=True, on_delete=models.SET_NULL, related_name="invites_created",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="invites_used",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Invite {self.pk} by {self.created_by} ({self.status})"

    @property
    def url(self) -> str:
        return reverse("sign_up_invite", args=[self.token])

    @property
    def status(self) -> str:
        if self.used_at:
            return "used"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "open"

    @property
    def is_usable(self) -> bool:
        return self.status == "open"
