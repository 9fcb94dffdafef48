from django.contrib import admin, messages

from apikeys import services
from apikeys.models import ApiKey, ApiPolicy


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are made by their owners on the settings page, where the secret is shown once; admins see them and
    can revoke them, never read or change a secret."""

    list_display = ("name", "user", "prefix", "monthly_cap", "expires_at", "revoked_at", "last_used_at", "created_at")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    readonly_fields = ("user", "prefix", "last_used_at", "created_at", "revoked_at")
    exclude = ("secret_sha256",)
    actions = ("revoke",)

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        keys = list(queryset.filter(revoked_at__isnull=True))
        for api_key in keys:
            services.api_key_revoke(api_key=api_key)
        self.message_user(request, f"{len(keys)} keys revoked: calls made with them are refused.", messages.SUCCESS)


@admin.register(ApiPolicy)
class ApiPolicyAdmin(admin.ModelAdmin):
    """The one row: whether the API is served, and to which groups (none chosen: everyone)."""

    list_display = ("__str__", "enabled")
    filter_horizontal = ("groups",)

    def has_add_permission(self, request):
        return False  # the row is made by migration 0002 (and by `api_policy()` should it be gone)

    def has_delete_permission(self, request, obj=None):
        return False
