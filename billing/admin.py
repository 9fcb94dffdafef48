from django.contrib import admin

from billing.models import BudgetAlert, Price, Reservation
from chat.admin import SystemRecordAdmin, money_column


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    """Prices in dollars per million tokens. An edit applies to calls made after it: each call keeps the
    prices it was charged at."""

    list_display = ("model", "input", "output", "cache_write_5m", "cache_write_1h", "cache_read", "updated_at")
    search_fields = ("model",)
    readonly_fields = ("updated_at",)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(SystemRecordAdmin):
    """The alerts emailed to the admins: a record, written by the system."""

    list_display = ("created_at", "user", "team", "month", "threshold", "spent_shown", "budget_shown")
    list_filter = ("threshold", "month")
    search_fields = ("user__username", "team__name")
    list_select_related = ("user", "team")
    shown_as = {"spent": "spent_shown", "budget": "budget_shown"}
    spent_shown = money_column("spent", "spent")
    budget_shown = money_column("budget", "budget", places=2)


@admin.register(Reservation)
class ReservationAdmin(SystemRecordAdmin):
    """What replies being written hold against their users' budgets (billing.models.Reservation): written and
    deleted by the system, read here."""

    list_display = ("created_at", "user", "message", "amount_shown", "max_tokens", "tool_rounds")
    search_fields = ("user__username",)
    list_select_related = ("user",)
    shown_as = {"amount": "amount_shown"}
    amount_shown = money_column("amount", "amount held")
