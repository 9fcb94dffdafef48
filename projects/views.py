"""The projects pages: a user's projects, and for each its instructions, files, members and conversations.

Every view reaches its project through `project_for_user`, so an outsider gets the same 404 on every URL here
as for a project that does not exist; a member with read access gets the same 404 for the writes.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import selectors as chat_selectors
from chat.attachments.limits import AttachmentRefused
from chat.attachments.views import file_response, uncached
from chat.llm.context import context_window
from chat.llm.registry import model_for
from projects import selectors, services
from projects.forms import ConversationProjectForm, ProjectCreateForm, ProjectForm, ProjectMemberForm
from projects.prompts import project_prefix_tokens


@login_required
@require_GET
def project_list(request, *, create_form=None, status=200):
    return render(request, "projects/project_list.html", {
        "projects": selectors.projects_for_user(request.user),
        "create_form": create_form or ProjectCreateForm(),
    }, status=status)


@login_required
@require_POST
def project_create_view(request):
    form = ProjectCreateForm(request.POST)
    if not form.is_valid():
        return project_list(request, create_form=form, status=400)
    project = services.project_create(owner=request.user, name=form.cleaned_data["name"])
    return redirect("project_detail", project_id=project.pk)


def _project_page(request, project, *, status=200, **forms):
    """The project's page; a form that failed comes back bound, with its errors, in place of a blank one."""
    tokens = project_prefix_tokens(project)
    window = context_window(model_for(settings.CHAT_DEFAULT_MODEL))
    return render(request, "projects/project_detail.html", {
        "project": project,
        "project_form": (forms.get("project_form") or ProjectForm(instance=project)) if project.may_write else None,
        "files": selectors.project_files(project),
        "conversations": selectors.project_conversations(project, request.user),
        "members": selectors.project_members(project) if project.is_owner else None,
        "member_form": (forms.get("member_form") or ProjectMemberForm()) if project.is_owner else None,
        "prefix_tokens": tokens,
        "prefix_percent": round(100 * tokens / window, 1),
        "attachment_max_file_bytes": settings.ATTACHMENT_MAX_FILE_BYTES,
    }, status=status)


@login_required
@require_GET
def project_detail(request, project_id):
    return _project_page(request, selectors.project_for_user(request.user, project_id))


@login_required
@require_POST
def project_update_view(request, project_id):
    project = selectors.project_for_user(request.user, project_id, write=True)
    form = ProjectForm(request.POST, instance=project)
    if not form.is_valid():
        return _project_page(request, project, status=400, project_form=form)
    services.project_update(project=project, **form.cleaned_data)
    messages.success(request, "Saved. Conversations in the project use it from their next message.")
    return redirect("project_detail", project_id=project.pk)


@login_required
@require_POST
def project_delete_view(request, project_id):
    project = _project_for_owner(request, project_id)
    services.project_delete(project=project)
    return redirect("project_list")


@login_required
@require_POST
def project_files_add_view(request, project_id):
    """The uploads the page's script sent to POST /attachments/ (the one pipeline), as `attachment` ids."""
    project = selectors.project_for_user(request.user, project_id, write=True)
    try:
        attachment_ids = [int(value) for value in request.POST.getlist("attachment")]
    except ValueError:
        return HttpResponseBadRequest("An attachment id is a number.")
    try:
        added = services.project_files_add(project=project, attachment_ids=attachment_ids, user=request.user)
    except AttachmentRefused as refusal:
        messages.error(request, refusal.detail)
    else:
        messages.success(request, f"Added {len(added)} file{'s' if len(added) != 1 else ''}.")
    return redirect("project_detail", project_id=project.pk)


@login_required
@require_GET
def project_file(request, project_id, attachment_id):
    """A project's file, for anyone who may read the project (not only the member who uploaded it); not cached,
    so a member removed from the project cannot keep opening it from the browser's cache."""
    project = selectors.project_for_user(request.user, project_id)
    attachment = selectors.project_file(project, attachment_id)
    return uncached(file_response(attachment.file, attachment.media_type, attachment.name))


@login_required
@require_POST
def project_file_remove_view(request, project_id, attachment_id):
    project = selectors.project_for_user(request.user, project_id, write=True)
    services.project_file_remove(attachment=selectors.project_file(project, attachment_id))
    return redirect("project_detail", project_id=project.pk)


@login_required
@require_POST
def project_member_add(request, project_id):
    project = _project_for_owner(request, project_id)
    form = ProjectMemberForm(request.POST)
    if not form.is_valid():
        return _project_page(request, project, status=400, member_form=form)
    try:
        member = services.project_member_set(
            project=project, user=form.cleaned_data["who"], access=form.cleaned_data["access"]
        )
    except ValidationError as error:
        form.add_error("who", error)
        return _project_page(request, project, status=400, member_form=form)
    messages.success(request, f"Shared with {member.user.username} ({member.get_access_display().lower()}).")
    return redirect("project_detail", project_id=project.pk)


@login_required
@require_POST
def project_member_remove(request, project_id, member_id):
    project = _project_for_owner(request, project_id)
    member = get_object_or_404(project.members.select_related("user"), pk=member_id)
    services.project_member_remove(member=member)
    messages.success(request, f"No longer shared with {member.user.username}.")
    return redirect("project_detail", project_id=project.pk)


@login_required
@require_POST
def project_conversation_create(request, project_id):
    """"New chat in this project": read access is enough, the chat is the viewer's own."""
    project = selectors.project_for_user(request.user, project_id)
    conversation = services.project_conversation_create(project=project, owner=request.user)
    return redirect("conversation_detail", conversation_id=conversation.pk)


@login_required
@require_http_methods(["GET", "POST"])
def conversation_project(request, conversation_id):
    """Move one's own conversation into a project one may start conversations in, or out of any (one POST)."""
    conversation = chat_selectors.conversation_for_user(request.user, conversation_id)
    if request.method == "POST":
        form = ConversationProjectForm(request.POST)
        if not form.is_valid():
            return HttpResponseBadRequest("Choose a project, or none.")
        project_id = form.cleaned_data["project"]
        project = selectors.project_for_user(request.user, project_id) if project_id else None
        try:
            services.conversation_move(conversation=conversation, project=project)
        except AttachmentRefused as refusal:
            return _move_page(request, conversation, refusal=refusal.detail, status=400)
        return redirect("conversation_detail", conversation_id=conversation.pk)
    return _move_page(request, conversation)


def _move_page(request, conversation, *, refusal="", status=200):
    return render(request, "projects/conversation_project.html", {
        "conversation": conversation, "projects": selectors.projects_for_user(request.user), "refusal": refusal,
    }, status=status)


def _project_for_owner(request, project_id):
    """The owner alone shares the project and deletes it; a member with write access is refused (403), an
    outsider gets the 404 of `project_for_user`."""
    project = selectors.project_for_user(request.user, project_id)
    if not project.is_owner:
        raise PermissionDenied("Only the project's owner can do this.")
    return project
