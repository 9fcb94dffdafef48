"""The frames of the conversation websocket (docs/protocol.md), built in one place for server and tests."""

from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from chat.models import INTERRUPTED_REASON, Attachment, Conversation, Message

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def timestamp(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def status_shown(message: Message) -> tuple[str, str]:
    """A message's status and error as every frame, page and export shows them. A reply whose process died (its
    heartbeat is stale) shows as interrupted already, before a sweep writes it so: reads never write."""
    if message.status == Message.Status.STREAMING and _heartbeat_stale(message):
        return Message.Status.INTERRUPTED, INTERRUPTED_REASON
    return message.status, message.error


def message_payload(message: Message, *, cache: dict | None = None) -> dict:
    """A message as every frame and page shows it (its status as status_shown says). `cache`: a settled
    reply's cache numbers (chat/cache_stats.py), which the page and the reply's final frame read from the
    ledger; other frames leave them out."""
    status, error = status_shown(message)
    payload = {
        "id": message.pk,
        "parent": message.parent_id,
        "role": message.role,
        "status": status,
        "content": message.content,
        "seq": message.seq,
        "model": message.model,
        "stop_reason": message.stop_reason,
        "error": error,
        "usage": {name: getattr(message, name) for name in USAGE_FIELDS},
        "cost": f"{message.cost:.6f}",
        "first_token_ms": message.first_token_ms,
        "duration_ms": message.duration_ms,
        "created_at": timestamp(message.created_at),
    }
    if message.role == Message.Role.ASSISTANT:
        payload.update(
            reply_fields(message.route_reason, message.notices, message.context_tokens, message.context_window)
        )
        if cache:
            payload["cache"] = cache
    if message.role == Message.Role.USER:
        position = {block.get("attachment_id"): index for index, block in enumerate(message.content)}
        attachments = sorted(message.attachments.all(), key=lambda attachment: position.get(attachment.pk, 0))
        payload["attachments"] = [attachment_payload(attachment) for attachment in attachments]
    return payload


def _heartbeat_stale(message: Message) -> bool:
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_STREAM_STALE_AFTER)
    return message.heartbeat_at is None or message.heartbeat_at < cutoff


def reply_fields(
    route_reason: str, notices: list[str], context_tokens: int | None, context_window: int | None
) -> dict:
    """What only assistant messages carry: why Auto picked the model, notices about how the reply was made,
    and how full the context window was (null until the reply's first request was measured)."""
    context = {"tokens": context_tokens, "window": context_window} if context_window else None
    return {"route_reason": route_reason, "notices": list(notices), "context": context}


def attachment_payload(attachment: Attachment) -> dict:
    """An attachment as the browser shows it: the upload's answer, and each user message's `attachments`."""
    return {
        "id": attachment.pk,
        "kind": attachment.kind,
        "name": attachment.name,
        "media_type": attachment.media_type,
        "size": attachment.size,
        "width": attachment.width,
        "height": attachment.height,
        "page_count": attachment.page_count,
        "tokens": attachment.tokens,
        "note": attachment.note,
        "url": reverse("attachment_file", args=[attachment.pk]),
        "thumbnail_url": (
            reverse("attachment_thumbnail", args=[attachment.pk]) if attachment.thumbnail else None
        ),
    }


def message_frame(payload: dict) -> dict:
    return {"type": "message", "message": payload}


def delta_frame(message_id: int, seq: int, parts: list[dict]) -> dict:
    return {"type": "delta", "message": message_id, "seq": seq, "parts": parts}


def conversation_frame(conversation: Conversation, *, model: bool = False) -> dict:
    """The conversation's title, and its model when `model` (a `send` that may have picked one). The title the
    model writes (chat/titles.py) leaves `model` out: it arrives seconds after the reply, and the page must not
    take it as an answer to the picker, which the user may have changed since (docs/protocol.md)."""
    fields = {"id": conversation.pk, "title": conversation.title}
    if model:
        fields["model"] = conversation.model
    return {"type": "conversation", "conversation": fields}


def tree_frame(
    path: list[int], tree, messages: list[Message], *, version: int, cache: dict[int, dict] | None = None
) -> dict:
    """The active path after it changed (a switch, a regenerate, an edit, a deleted branch), and on page load.

    `path` holds the path's ids root to leaf; each entry gets `versions`: the ids of that message and its
    siblings, oldest first (what "< 2 / 3 >" counts and switches between). `messages` are the path messages
    whose whole state the frame carries: those that were not on the path before the change (every client in
    step has the others; one that lacks one asks for it with `resume`). `version` is the conversation's
    `tree_version` read in the transaction that made this path: a client ignores a frame older than the last
    it applied. `tree` is a chat.selectors.Tree. `cache`: the replies' cache numbers by id, where the caller
    read them (the chat page).
    """
    cache = cache or {}
    return {
        "type": "tree",
        "version": version,
        "path": [{"id": message_id, "versions": tree.siblings(message_id)} for message_id in path],
        "messages": [message_payload(message, cache=cache.get(message.pk)) for message in messages],
    }


def error_frame(code: str, detail: str, message_id: int | None = None) -> dict:
    frame = {"type": "error", "code": code, "detail": detail}
    if message_id is not None:
        frame["message"] = message_id
    return frame
