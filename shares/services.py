"""Writes about shares: creating and revoking one (both audited here, so the page and the admin leave the same
record), and a viewer continuing a shared conversation in their own chats."""

import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from chat.forks import conversation_fork, path_settled
from chat.models import Conversation, Message
from shares.models import Share

# The fields of a reply that `continue` changes in place (chat/services.py `message_continue_start` and the
# generation that extends it).
LEAF_FIELDS = ("content", "status", "stop_reason", "error")


def share_create(
    *, conversation: Conversation, by, audience: str, mode: str, recipients: list, request=None,
) -> Share:
    """A new share of the conversation (the caller checked that `by` owns it and may offer `audience`).

    A snapshot fixes the path as it is now: its current leaf, and that leaf's state (`continue` may extend it
    later, in place). Raises ValidationError when there is nothing to fix yet, or while a reply is being
    written (its text would not be the one shown later).
    """
    leaf = None
    if mode == Share.Mode.SNAPSHOT:
        leaf = conversation.current_leaf
        if leaf is None:
            raise ValidationError("There is nothing to share yet: send a message first.")
        if leaf.status == Message.Status.STREAMING:
            raise ValidationError("A reply is being written. Share it as it is now once it is finished.")
    with transaction.atomic():
        share = Share.objects.create(
            conversation=conversation, created_by=by, token=secrets.token_urlsafe(32), audience=audience,
            mode=mode, leaf=leaf, leaf_state=leaf_state(leaf) if leaf else {},
        )
        share.recipients.set(recipients)
        audit_record(
            actor=by, action="share.created", subject=f"conversation {conversation.pk}", request=request,
            detail={
                "share": share.pk, "conversation": conversation.pk, "audience": audience, "mode": mode,
                "leaf": leaf.pk if leaf else None, "recipients": [user.pk for user in recipients],
            },
        )
    return share


def leaf_state(leaf: Message) -> dict:
    """What of a snapshot's leaf can change after it is shared, as it is now (shares.selectors.share_messages
    shows it)."""
    return {field: getattr(leaf, field) for field in LEAF_FIELDS}


def share_revoke(*, share: Share, by, request=None) -> bool:
    """Close the link now: every view reads `revoked_at`. False (and nothing recorded) when it was closed
    already; the conditional update makes two revokes at once record one."""
    with transaction.atomic():
        now = timezone.now()
        revoked = Share.objects.filter(pk=share.pk, revoked_at__isnull=True).update(revoked_at=now)
        if not revoked:
            return False
        share.revoked_at = now
        audit_record(
            actor=by, action="share.revoked", subject=f"conversation {share.conversation_id}", request=request,
            detail={"share": share.pk, "conversation": share.conversation_id},
        )
    return True


def share_continue(*, share: Share, messages: list[Message], viewer) -> Conversation:
    """The shared path (less a reply still being written) as a new conversation of `viewer`, who pays for
    whatever is sent in it from now on; none of the owner's cost comes with it."""
    return conversation_fork(
        messages=path_settled(messages), owner=viewer, title=share.conversation.title or "Shared chat",
    )
