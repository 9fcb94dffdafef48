"""Reads about shares. `share_for_viewer` is the one door to a shared conversation: every page, file and action
under /s/<token>/ goes through it, so an unknown link, a revoked one and one the viewer may not open look the
same (404)."""

from django.db.models import QuerySet
from django.http import Http404

from chat import selectors as chat_selectors
from chat.models import Attachment, Message
from shares.models import Share, SharePolicy

NOT_SHARED = "No conversation is shared with you at this link."


class SignInRequired(Exception):
    """The share may open once the viewer signs in: the view sends them to the login page."""


def share_policy() -> SharePolicy:
    """The one row, created on first use with public links off."""
    policy, _ = SharePolicy.objects.get_or_create(id=1)
    return policy


def public_links_allowed() -> bool:
    return share_policy().public_links


def share_for_viewer(request_user, token: str) -> Share:
    """The open share with this token if `request_user` may read it, else 404; SignInRequired for an anonymous
    viewer of a share that a signed-in one might read.

    `users`: its recipients and the conversation's owner. `signed_in`: anyone signed in. `public`: anyone, while
    the site's policy allows public links; otherwise as `signed_in`, so turning the policy off closes every
    public link at once without changing a row.
    """
    share = Share.objects.select_related("conversation", "created_by").filter(
        token=token, revoked_at__isnull=True,
    ).first()
    if share is None:
        raise Http404(NOT_SHARED)
    if not request_user.is_authenticated:
        if share.audience == Share.Audience.PUBLIC and public_links_allowed():
            return share
        raise SignInRequired
    if share.audience == Share.Audience.USERS and not _is_recipient(share, request_user):
        raise Http404(NOT_SHARED)
    return share


def _is_recipient(share: Share, user) -> bool:
    return share.conversation.owner_id == user.pk or share.recipients.filter(pk=user.pk).exists()


def share_messages(share: Share) -> list[Message]:
    """What the share shows, root first, with attachments: a snapshot, the path down to its leaf as it was
    when shared (404 once the leaf was deleted); a live share, the conversation's active path now.

    Of a snapshot's path only the leaf can have changed since (`continue` extends a reply in place; every
    message above it has a child, and an edit or a regenerate adds a sibling): it is shown as the share
    stored it (`Share.leaf_state`), in memory only, never saved."""
    conversation = share.conversation
    if share.mode == Share.Mode.LIVE:
        return chat_selectors.active_path(conversation)
    messages = chat_selectors.path_messages(conversation, share.leaf_id) if share.leaf_id else []
    if not messages:
        raise Http404("The messages of this share were deleted.")
    for field, value in share.leaf_state.items():
        setattr(messages[-1], field, value)
    return messages


def shared_attachment(messages: list[Message], attachment_id: int) -> Attachment:
    """The attachment if a message on the shared path sent it, else 404: a share opens its own files, never
    another of the owner's."""
    for message in messages:
        for attachment in message.attachments.all():
            if attachment.pk == attachment_id:
                return attachment
    raise Http404("No such file in this share.")


def shares_of_conversation(conversation) -> QuerySet[Share]:
    """The conversation's shares that still work, newest first: the share page's list."""
    return conversation.shares.filter(revoked_at__isnull=True).prefetch_related("recipients")


def shares_received(user) -> QuerySet[Share]:
    """The open shares that name `user` as a recipient, newest first."""
    return user.shares_received.filter(revoked_at__isnull=True).select_related("conversation", "created_by")
