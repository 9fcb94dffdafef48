"""Writes, with their side effects. Callers pass objects they already fetched through the selectors."""

import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, prefetch_related_objects
from django.utils import timezone

from billing import selectors as billing_selectors
from billing import services as billing_services
from chat.attachments.blocks import reference_block
from chat.attachments.limits import AttachmentRefused
from chat.attachments.services import attachments_claim, attachments_for_turn
from chat.llm.pricing import TokenUsage, usage_cost
from chat.models import ApiCall, Conversation, Message

log = logging.getLogger(__name__)
# One line per upstream call, for operators who follow spend in their logs (see `_ledger_log`).
ledger_log = logging.getLogger("chat.ledger")

TITLE_LENGTH = 60


class ConversationBusy(Exception):
    """A reply is already streaming in this conversation."""


def conversation_create(*, owner) -> Conversation:
    return Conversation.objects.create(
        owner=owner,
        model=owner.default_model or settings.CHAT_DEFAULT_MODEL,
        system_prompt=owner.system_prompt,
    )


def conversation_rename(*, conversation: Conversation, title: str) -> None:
    conversation.title = title.strip()[:200]
    conversation.save(update_fields=["title", "updated_at"])


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


def _title_from(text: str) -> str:
    first_line = " ".join(text.split())
    return first_line if len(first_line) <= TITLE_LENGTH else first_line[: TITLE_LENGTH - 1].rstrip() + "…"


@dataclass
class Turn:
    user_message: Message
    assistant_message: Message
    conversation_changed: bool


def turn_start(
    *, conversation: Conversation, text: str, model: str | None = None, attachment_ids: list[int] = ()
) -> Turn:
    """Store the user's message and the assistant's `streaming` placeholder, atomically.

    The partial unique index on streaming messages makes this fail with ConversationBusy when another reply is
    streaming in the conversation, in this process or any other; the user's message is then not stored.
    The message claims the owner's uploads `attachment_ids` and refers to them ahead of its text; when one
    cannot be claimed, or the next request would break the API's limits, AttachmentRefused says so, and
    nothing is stored either.
    """
    attachments = []
    if attachment_ids:
        attachments = attachments_for_turn(conversation=conversation, attachment_ids=attachment_ids)
    content = [reference_block(attachment.pk) for attachment in attachments]
    if text:
        content.append({"type": "text", "text": text})
    changed_fields = []
    if model and model != conversation.model:
        conversation.model = model
        changed_fields.append("model")
    if not conversation.title:
        conversation.title = _title_from(text or attachments[0].name)
        changed_fields.append("title")
    try:
        with transaction.atomic():
            user_message = Message.objects.create(conversation=conversation, role=Message.Role.USER, content=content)
            attachments_claim(attachments=attachments, message=user_message)
            assistant_message = Message.objects.create(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING,
                model=conversation.model,
                heartbeat_at=timezone.now(),
            )
            conversation.save(update_fields=[*changed_fields, "updated_at"])
    except IntegrityError as error:
        conversation.refresh_from_db()
        raise ConversationBusy from error
    except AttachmentRefused:
        conversation.refresh_from_db()
        raise
    prefetch_related_objects([user_message], "attachments")  # its frame is built where queries can't run
    return Turn(user_message, assistant_message, conversation_changed=bool(changed_fields))


def message_checkpoint(*, message_id: int, content: list[dict], seq: int) -> None:
    """Save a streaming reply's progress and prove its process is alive. Called at a bounded rate."""
    Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        content=content, seq=seq, heartbeat_at=timezone.now()
    )


@dataclass
class UpstreamAttempt:
    """One HTTP request to the model, as the ledger records it."""

    http_status: int | None
    request_id: str = ""
    error: str = ""
    latency_ms: int | None = None


def message_finish(
    *,
    message_id: int,
    user_id: int,
    conversation_id: int,
    status: str,
    content: list[dict],
    seq: int,
    model: str,
    usage: TokenUsage,
    stop_reason: str = "",
    error: str = "",
    first_token_ms: int | None = None,
    duration_ms: int | None = None,
    attempts: list[UpstreamAttempt] = (),
) -> Message | None:
    """Settle a reply: final content, usage and cost on the message, one ApiCall row per upstream attempt.

    The ledger is written even if the conversation was deleted meanwhile (it is money spent); the message is
    then gone and None is returned. Prices come from the admins' price table and are snapshotted on each row.
    Afterwards the user's rate-limit window and budget alerts are settled with the real usage.
    """
    prices = billing_selectors.price_for_model(model)
    cost = usage_cost(usage, prices)
    calls = []
    with transaction.atomic():
        message = Message.objects.select_for_update().filter(pk=message_id).first()
        if message is not None:
            message.status = status
            message.content = content
            message.seq = seq
            message.stop_reason = stop_reason or ""
            message.error = error
            message.input_tokens = usage.input_tokens
            message.output_tokens = usage.output_tokens
            message.cache_read_input_tokens = usage.cache_read_input_tokens
            message.cache_creation_input_tokens = usage.cache_creation_input_tokens
            message.cost = cost
            message.first_token_ms = first_token_ms
            message.duration_ms = duration_ms
            message.save()
        conversation_exists = Conversation.objects.filter(pk=conversation_id).exists()
        ledger_status = {
            Message.Status.COMPLETE: ApiCall.Status.OK,
            Message.Status.STOPPED: ApiCall.Status.STOPPED,
            Message.Status.INTERRUPTED: ApiCall.Status.STOPPED,
        }
        for number, attempt in enumerate(attempts, start=1):
            is_last = number == len(attempts)
            calls.append(ApiCall.objects.create(
                user_id=user_id,
                conversation_id=conversation_id if conversation_exists else None,
                message=message,
                model=model,
                status=ledger_status.get(status, ApiCall.Status.ERROR) if is_last else ApiCall.Status.ERROR,
                **_usage_fields(usage if is_last else TokenUsage()),
                price_snapshot=prices.as_dict(),
                cost=cost if is_last else 0,
                latency_ms=duration_ms if is_last else attempt.latency_ms,
                first_token_ms=first_token_ms if is_last else None,
                stop_reason=(stop_reason or "") if is_last else "",
                request_id=attempt.request_id,
                http_status=attempt.http_status,
                error=attempt.error or (error if is_last else ""),
                attempt=number,
                is_retry=number > 1,
            ))
    for call in calls:
        _ledger_log(call)
    try:
        billing_services.usage_settle(user_id=user_id, usage=usage)
    except Exception:
        # The ledger is committed; a cache or mail outage must not stop the reply from being delivered.
        log.exception("settling usage of message %s failed", message_id)
    return message


def _ledger_log(call: ApiCall) -> None:
    """`api_call {json}`: who, which model, tokens of each kind, cost, timings and the upstream's request id."""
    fields = {
        "user": call.user_id,
        "conversation": call.conversation_id,
        "message": call.message_id,
        "model": call.model,
        "status": call.status,
        **{name: getattr(call, name) for name in (
            "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_5m_input_tokens",
            "cache_creation_1h_input_tokens",
        )},
        "cost": str(call.cost),
        "latency_ms": call.latency_ms,
        "first_token_ms": call.first_token_ms,
        "stop_reason": call.stop_reason,
        "request_id": call.request_id,
        "http_status": call.http_status,
        "attempt": call.attempt,
        "is_retry": call.is_retry,
        "is_fallback": call.is_fallback,
    }
    ledger_log.info("api_call %s", json.dumps(fields))


def _usage_fields(usage: TokenUsage) -> dict:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_5m_input_tokens": usage.cache_creation_5m_input_tokens,
        "cache_creation_1h_input_tokens": usage.cache_creation_1h_input_tokens,
    }


INTERRUPTED_REASON = "The server stopped while this reply was being written. What was saved is shown; you can retry."
STOP_REASONS = {Message.Status.INTERRUPTED: INTERRUPTED_REASON}


def messages_interrupt_stale(*, conversation_id: int | None = None, stale_after: float | None = None) -> int:
    """Mark replies left `streaming` by a dead process as interrupted, keeping their last checkpoint.

    A live generation refreshes its heartbeat every few seconds, so a stale one has no process behind it.
    `stale_after=0` marks every streaming reply: right for a single server that is just starting.
    """
    stale_after = settings.CHAT_STREAM_STALE_AFTER if stale_after is None else stale_after
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    stale = Message.objects.filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True), status=Message.Status.STREAMING
    )
    if conversation_id is not None:
        stale = stale.filter(conversation_id=conversation_id)
    return stale.update(status=Message.Status.INTERRUPTED, error=INTERRUPTED_REASON)
