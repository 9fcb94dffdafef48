"""Projects: a named place for conversations, with instructions and files that every conversation in it sends
first (cached, so the conversations of a project share one cached prefix while it is warm)."""

from django.conf import settings
from django.db import models


class Project(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=120)
    instructions = models.TextField(
        blank=True, help_text="Sent as the start of the system prompt of every conversation in the project."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            # The projects page and the sidebar: a user's own projects.
            models.Index(fields=["owner", "name"], name="project_owner_name"),
        ]

    def __str__(self):
        return self.name


class ProjectMember(models.Model):
    """A user the owner shared the project with. Read: see its instructions and files and start conversations
    in it; write: also change them."""

    class Access(models.TextChoices):
        READ = "read"
        WRITE = "write", "Read and write"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships")
    access = models.CharField(max_length=8, choices=Access.choices, default=Access.READ)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "user"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="project_member_once"),
        ]

    def __str__(self):
        return f"{self.user} in {self.project} ({self.access})"
