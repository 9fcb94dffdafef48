from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The site's user, custom from the first migration so per-user settings can live here."""

    default_model = models.CharField(max_length=100, blank=True, help_text="Model for new conversations.")
    system_prompt = models.TextField(blank=True, help_text="Default system prompt for new conversations.")
    time_zone = models.CharField(
        max_length=64, default="UTC", help_text="An IANA time zone such as Europe/Paris: the current_time tool's."
    )
    # Budget and limits: empty means the site default from settings (CHAT_DEFAULT_MONTHLY_BUDGET,
    # CHAT_RATE_LIMIT_*), so a change of default reaches everyone who was not given their own value.
    monthly_budget = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True,
        help_text="Dollars per calendar month (UTC). Empty: the site default. 0: nothing may be spent.",
    )
    rate_limit_requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests to the model per minute. Empty: the site default. 0: no limit."
    )
    rate_limit_tokens_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens (input and output) per minute. Empty: the site default. 0: no limit."
    )

    def __str__(self):
        return self.username
