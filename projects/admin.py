from django.contrib import admin
from django.db.models import Count

from projects.models import Project, ProjectMember


class ProjectMemberInline(admin.TabularInline):
    model = ProjectMember
    extra = 0
    autocomplete_fields = ("user",)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    """Owners run their projects from the app's pages (/projects/); here staff see them all. Files are
    attachments (chat's admin lists them, filtered by project)."""

    list_display = ("name", "owner", "file_count", "updated_at")
    list_select_related = ("owner",)
    search_fields = ("name", "owner__username", "owner__email")
    autocomplete_fields = ("owner",)
    inlines = (ProjectMemberInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(file_count=Count("files"))

    @admin.display(description="Files", ordering="file_count")
    def file_count(self, project):
        return project.file_count
