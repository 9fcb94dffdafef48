import json

from django.contrib import admin
from django.contrib.admin import actions
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest
from django.urls import path
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from config.spreadsheets import csv_response

CSV_COLUMNS = ("created_at", "actor_id", "actor_name", "action", "subject", "address", "detail")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit log, read-only for everyone, superusers included: no add, change or delete permission can
    be granted here (the database refuses them too, audit/triggers.py). Viewing needs audit.view_auditevent.

    The changelist exports exactly its filtered rows as CSV (audit/templates/admin/audit/auditevent/).
    """

    list_display = ("created_at", "actor_name", "action", "subject", "address")
    list_filter = ("action", "created_at")
    search_fields = ("actor_name", "subject", "address")
    date_hierarchy = "created_at"
    show_full_result_count = False  # one COUNT, not two, on a table that only grows

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        export = path("export.csv", self.admin_site.admin_view(self.export_csv), name="audit_auditevent_export")
        return [export, *super().get_urls()]

    def export_csv(self, request):
        """The rows the changelist shows for the same query string (filters, search, date), all pages."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("Unknown filter.")
        rows = (
            (*row[:-1], json.dumps(row[-1], sort_keys=True))
            for row in changelist.queryset.values_list(*CSV_COLUMNS).iterator()
        )
        return csv_response(f"audit-{timezone.now():%Y%m%d-%H%M%S}.csv", CSV_COLUMNS, rows)


@admin.action(permissions=["delete"], description=actions.delete_selected.short_description)
def delete_selected(modeladmin, request, queryset):
    """Django's "Delete selected" everywhere in the admin, with one audit event for a deletion of several
    objects. The admin logs those with LogEntry.objects.bulk_create, which sends no post_save to
    audit/receivers.py; a single object's LogEntry is saved, and recorded there."""
    confirmed = bool(request.POST.get("post"))
    deleted = [{"id": str(obj.pk), "name": str(obj)} for obj in queryset] if confirmed else []
    response = actions.delete_selected(modeladmin, request, queryset)
    if response is None and len(deleted) > 1:  # None: the deletion went through (else the confirmation page)
        meta = modeladmin.model._meta
        audit_record(
            actor=request.user, action="admin.deleted", subject=f"{len(deleted)} {meta.verbose_name_plural}",
            detail={"model": meta.label_lower, "objects": deleted}, request=request,
        )
    return response


admin.site.add_action(delete_selected, "delete_selected")
