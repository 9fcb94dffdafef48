"""Writes for projects: the project itself, who it is shared with, its files, and which conversations are in it.

The caller reached the project through `selectors.project_for_user` with the access the write needs (write
access for the instructions and files; the owner alone manages members and deletes it).
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from chat import services as chat_services
from chat.attachments.limits import AttachmentRefused, request_limits_check
from chat.models import Attachment, Conversation
from chat.selectors import Tree
from projects.models import Project, ProjectMember


def project_create(*, owner, name: str) -> Project:
    return Project.objects.create(owner=owner, name=name.strip())


def project_update(*, project: Project, name: str, instructions: str) -> None:
    """Takes effect from the next request of each conversation in it: a reply streaming keeps what it had."""
    project.name, project.instructions = name.strip(), instructions.strip()
    project.save(update_fields=["name", "instructions", "updated_at"])


def project_delete(*, project: Project) -> None:
    """Its files go with it; its conversations stay, out of any project."""
    project.delete()


def project_member_set(*, project: Project, user, access: str) -> ProjectMember:
    """Share the project with `user`, or change their access."""
    if user.pk == project.owner_id:
        raise ValidationError("The owner already has every access to the project.")
    member, _ = ProjectMember.objects.update_or_create(project=project, user=user, defaults={"access": access})
    return member


def project_member_remove(*, member: ProjectMember) -> None:
    """Stop sharing the project with a member. Their conversations in it leave it, so none of their later
    requests carries instructions or files they may no longer see."""
    with transaction.atomic():
        Conversation.objects.filter(project_id=member.project_id, owner_id=member.user_id).update(project=None)
        member.delete()


def project_files_add(*, project: Project, attachment_ids: list[int], user) -> list[Attachment]:
    """Make `user`'s unclaimed uploads (POST /attachments/, the one upload pipeline) files of the project.

    Raises AttachmentRefused: for an id that is not the user's unclaimed upload (someone else's, unknown and
    already sent look the same), and when every request of the project's conversations would break one of the
    API's limits, since each of them carries all the project's files (chat/attachments/limits.py). The update
    only takes rows still unclaimed, so an upload that a message claims meanwhile is refused here, not shared.
    """
    ids = list(dict.fromkeys(attachment_ids))
    found = list(Attachment.objects.filter(pk__in=ids, owner=user, message__isnull=True, project__isnull=True))
    if not ids or len(found) != len(ids):
        raise AttachmentRefused(
            "bad_attachment", "A file is missing, or was already sent or added. Upload it again."
        )
    request_limits_check(sending=found, sent=list(project.files.only("kind", "size", "page_count")))
    with transaction.atomic():
        claimed = Attachment.objects.filter(pk__in=ids, message__isnull=True, project__isnull=True).update(
            project=project
        )
        if claimed != len(ids):
            raise AttachmentRefused("bad_attachment", "A file was just sent in a message.")
    for attachment in found:
        attachment.project = project
    return found


def project_file_remove(*, attachment: Attachment) -> None:
    """The row goes; the stored file goes with the cleanup once no attachment names it
    (chat/attachments/services.py `attachments_cleanup`)."""
    attachment.delete()


def project_conversation_create(*, project: Project, owner) -> Conversation:
    """A new chat of `owner` in the project, with their usual model and system prompt."""
    conversation = chat_services.conversation_create(owner=owner)
    conversation_move(conversation=conversation, project=project)
    return conversation


def conversation_move(*, conversation: Conversation, project: Project | None) -> None:
    """Into a project, or out of one (None): its next request starts with that project's prefix, or none.

    Raises AttachmentRefused when the conversation's requests would then break one of the API's limits: each
    carries the attachments of its active path and all the project's files (chat/attachments/limits.py).
    """
    if project is not None:
        path = Tree.of(conversation.pk).path_to(conversation.current_leaf_id)
        sent = Attachment.objects.filter(Q(message_id__in=path) | Q(project=project))
        request_limits_check(sending=[], sent=list(sent.only("kind", "size", "page_count")))
    conversation.project = project
    conversation.save(update_fields=["project"])
