from django.contrib import admin, messages

from batches import services
from batches.models import Batch, BatchItem
from chat.admin import SystemRecordAdmin, money_column


class BatchItemInline(admin.TabularInline):
    model = BatchItem
    fields = ("custom_id", "name", "status", "cost", "error", "settled_at", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(Batch)
class BatchAdmin(SystemRecordAdmin):
    """Rows the worker writes: read-only, with one action, cancel (as the owner's Cancel would)."""

    list_display = ("id", "owner", "kind", "status", "model", "upstream_id", "submit_attempts", "created_at")
    list_filter = ("status", "kind")
    search_fields = ("owner__username", "upstream_id")
    list_select_related = ("owner",)
    inlines = [BatchItemInline]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected batches")
    def cancel(self, request, queryset):
        settled = [entry for batch in queryset for entry in services.batch_cancel(batch=batch)]
        self.message_user(
            request, f"{queryset.count()} batches cancelled or marked for cancelling; {len(settled)} items ended now.",
            messages.SUCCESS,
        )


@admin.register(BatchItem)
class BatchItemAdmin(SystemRecordAdmin):
    list_display = ("custom_id", "batch", "name", "status", "cost_shown", "settled_at")
    list_filter = ("status",)
    list_select_related = ("batch",)
    shown_as = {"cost": "cost_shown"}
    cost_shown = money_column("cost", "cost")
