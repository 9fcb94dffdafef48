from django.contrib import admin

from billing.models import BudgetAlert, Price
from chat.admin import SystemRecordAdmin


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

    list_display = ("created_at", "user", "team", "month", "threshold", "spent", "budget")
    list_filter = ("threshold", "month")
    search_fields = ("user__username", "team__name")
    list_select_related = ("user", "team")
