from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import User
from billing import selectors as billing_selectors


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = BaseUserAdmin.fieldsets + (
        ("Chat", {"fields": ("default_model", "system_prompt")}),
        (
            "Budget and limits",
            {
                "fields": ("spend_this_month", "monthly_budget", "rate_limit_requests_per_minute",
                           "rate_limit_tokens_per_minute"),
                "description": "Empty fields follow the site defaults (CHAT_DEFAULT_MONTHLY_BUDGET, "
                               "CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE, CHAT_RATE_LIMIT_TOKENS_PER_MINUTE).",
            },
        ),
    )
    readonly_fields = ("spend_this_month",)

    @admin.display(description="spend this month")
    def spend_this_month(self, user):
        """The ledger's total since the first of the month (UTC), against the budget in force for this user."""
        status = billing_selectors.budget_status(user)
        if status.budget is None:
            return f"${status.spent:,.4f} (no budget)"
        return f"${status.spent:,.4f} of ${status.budget:,.2f} ({status.percent}%)"
