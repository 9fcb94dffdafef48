from django.contrib import admin, messages
from django.db.models import Count
from django.shortcuts import redirect

from shares import services
from shares.models import Share, SharePolicy
from shares.selectors import share_policy


@admin.register(SharePolicy)
class SharePolicyAdmin(admin.ModelAdmin):
    """One row: the list opens it. Only superusers change it; the change is audited as every admin change is
    (audit/receivers.py). Turning public links off closes the open ones at once (shares.selectors)."""

    fields = ("public_links",)

    def changelist_view(self, request, extra_context=None):
        return redirect("admin:shares_sharepolicy_change", share_policy().pk)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    """Shares are made by conversation owners on their pages; here they are only looked at and revoked."""

    list_display = ("created_at", "conversation", "created_by", "audience", "mode", "status", "recipient_count")
    list_select_related = ("conversation", "created_by")
    list_filter = ("audience", "mode", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("created_by__username", "conversation__title", "recipients__username")
    fields = ("conversation", "created_by", "audience", "mode", "leaf", "recipients", "created_at", "revoked_at")
    readonly_fields = fields
    actions = ("revoke",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(recipient_count=Count("recipients"))

    @admin.display(description="recipients", ordering="recipient_count")
    def recipient_count(self, share):
        return share.recipient_count

    @admin.display(description="status")
    def status(self, share):
        return "revoked" if share.revoked_at else "open"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request):
        """Rows are never edited here; revoking needs the change permission all the same."""
        return request.user.has_perm("shares.change_share")

    @admin.action(description="Revoke the selected shares", permissions=["revoke"])
    def revoke(self, request, queryset):
        revoked = sum(services.share_revoke(share=share, by=request.user, request=request) for share in queryset)
        self.message_user(request, f"Revoked {revoked} share(s).", messages.SUCCESS)
