"""Reads, always scoped to the user who asks. A project is seen by its owner and by the users it is shared with;
everyone else gets the same 404 as for a project that does not exist."""

from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.shortcuts import get_object_or_404

from chat.models import Attachment, Conversation
from projects.models import Project, ProjectMember


def _with_access(user) -> QuerySet[Project]:
    """Projects annotated with `member_access`: the user's access as a member (None for the owner and for
    everyone else)."""
    membership = ProjectMember.objects.filter(project=OuterRef("pk"), user=user).values("access")[:1]
    return Project.objects.annotate(member_access=Subquery(membership))


def project_for_user(user, project_id, *, write=False) -> Project:
    """The project if `user` owns it or is a member (with write access when `write`), else 404: the one door
    to a project and what hangs off it (its files, its conversations, moving a conversation into it).

    The project comes back with `may_write` and `is_owner` set for the page that shows it.
    """
    if write:
        allowed = Q(owner=user) | Q(member_access=ProjectMember.Access.WRITE)
    else:
        allowed = Q(owner=user) | Q(member_access__isnull=False)
    project = get_object_or_404(_with_access(user).filter(allowed).select_related("owner"), pk=project_id)
    project.is_owner = project.owner_id == user.pk
    project.may_write = project.is_owner or project.member_access == ProjectMember.Access.WRITE
    return project


def projects_for_user(user) -> QuerySet[Project]:
    """The projects `user` may start conversations in: their own and those shared with them, by name."""
    return _with_access(user).filter(Q(owner=user) | Q(member_access__isnull=False)).select_related("owner")


def project_members(project: Project) -> QuerySet[ProjectMember]:
    return project.members.select_related("user").order_by("user__username")


def project_files(project: Project) -> QuerySet[Attachment]:
    return project.files.order_by("id")


def project_file(project: Project, attachment_id) -> Attachment:
    """A file of the project, else 404; the caller reached the project through `project_for_user`."""
    return get_object_or_404(project.files, pk=attachment_id)


def project_conversations(project: Project, user) -> QuerySet[Conversation]:
    """The viewer's own conversations in the project: members never see each other's."""
    return Conversation.objects.filter(project=project, owner=user).only("id", "title", "updated_at")


def project_in_reach(conversation: Conversation) -> Project | None:
    """The conversation's project if the conversation's owner may still open it (owns it, or is a member),
    else None: what every request of the conversation, its attachment limits and its estimate read.

    A conversation is checked when it moves into a project, but a member removed in the admin, or a project
    given to another owner, leaves it there: its requests must not go on carrying instructions and files its
    owner can no longer open. No query beyond the project itself for the project's owner; one for a member.
    """
    if conversation.project_id is None:
        return None
    project = conversation.project
    if project.owner_id == conversation.owner_id:
        return project
    if project.members.filter(user_id=conversation.owner_id).exists():
        return project
    return None
