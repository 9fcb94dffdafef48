from django.contrib import admin, messages

from chat.admin import SystemRecordAdmin
from filesapi.models import UpstreamFile


@admin.register(UpstreamFile)
class UpstreamFileAdmin(SystemRecordAdmin):
    """Uploads the Files API holds for attachments; only turns write them. Forgetting one makes the next turn
    that sends its attachment upload it again (the upstream copy is left to expire or be deleted there)."""

    list_display = ("file_id", "owner", "kind", "size", "uploaded_at")
    list_filter = ("kind",)
    search_fields = ("file_id", "owner__username", "sha256")
    list_select_related = ("owner",)
    actions = ("forget",)

    @admin.action(description="Forget the selected uploads (the next turn uploads again)")
    def forget(self, request, queryset):
        count, _ = queryset.delete()
        self.message_user(
            request,
            f"{count} uploads forgotten: their attachments are uploaded again when sent.",
            messages.SUCCESS,
        )
