"""Writes of the half-price replies: queuing a turn or a bulk question, cancelling, and settling each item.

Every item settles in one transaction: the reply's content and usage (or its error), the ledger row at the batch
rate with a settle key made of the upstream batch id and the item's custom_id, and the release of its
reservation. An item settles once (`settled_at`, read under its row lock), and its ledger row's settle key is
unique besides, so a worker that dies anywhere and runs again never loses a result nor bills one twice.
"""

import logging
from dataclasses import dataclass, field, replace

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from batches.models import Batch, BatchItem
from billing import ledger
from billing import services as billing_services
from billing.ledger import UpstreamAttempt, UpstreamRequest
from billing.models import Reservation
from chat import citations, frames
from chat import services as chat_services
from chat.attachments.blocks import content_block
from chat.llm.catalog import ModelSpec, model_spec
from chat.llm.pricing import TokenUsage
from chat.llm.request import RequestParts, output_options, request_assemble, request_parts
from chat.llm.tokens import estimate_tokens
from chat.models import ApiCall, Attachment, Message
from chat.refusals import Refusal
from lifecycle.selectors import model_retired, retirement_sentence

log = logging.getLogger(__name__)

TOOLS_NOTICE = "Sent at half price as one request: this reply makes no tool calls."
FAILED_SUBMIT_REASON = "The half-price request could not be sent ({reason}). Nothing was charged; send it again."
OUTCOMES = {
    # item status: (the reply's status, its error)
    BatchItem.Status.SUCCEEDED: (Message.Status.COMPLETE, ""),
    BatchItem.Status.ERRORED: (Message.Status.FAILED, "The half-price request failed: {reason}"),
    BatchItem.Status.CANCELED: (Message.Status.STOPPED, "Cancelled before it was answered. Nothing was charged."),
    BatchItem.Status.EXPIRED: (
        Message.Status.FAILED, "Not answered within 24 hours, so it expired. Nothing was charged.",
    ),
}


class BatchRefused(Refusal):
    """A cancel or a bulk question that cannot be done as asked."""


# --- queuing ---------------------------------------------------------------------------------------------


def turn_params(parts: RequestParts, *, spec: ModelSpec, max_tokens: int | None, left_out: int = 0) -> dict:
    """The Messages request of a queued reply: the first request the normal reply would send (the same
    builder: system, history without its `left_out` oldest exchanges, attachments, cache breakpoints), cut to
    `max_tokens`, what the reservation paid for. A batch reply is one request, so its tools may not be called
    (they stay defined: the history may hold tool calls, which the API accepts only beside their definitions).
    The worker fits it to the context window before sending (`batch_replies_to_fit`)."""
    # No MCP servers (chat/llm/mcp.py): their connector is a beta the batch's params cannot name, and a batch
    # reply calls no tools; the history's MCP blocks are left out with them.
    params = request_assemble(replace(parts, mcp_servers=()), model=spec, left_out=left_out)
    if "tools" in params:
        params["tool_choice"] = {"type": "none"}
    if max_tokens is not None and params["max_tokens"] > max_tokens:
        params["max_tokens"] = max_tokens
        params.pop("thinking", None)
        params.pop("output_config", None)
    return params


def batch_turn_create(
    *, reply: Message, parts: RequestParts, spec: ModelSpec, reservation: Reservation,
    hold: billing_services.Hold, batch: Batch | None = None,
) -> BatchItem:
    """Make the admitted reply (its `streaming` placeholder, just stored) a `queued` one and record its request
    as an item of `batch` (by default a batch of its own). In the caller's admission transaction."""
    params = turn_params(parts, spec=spec, max_tokens=hold.max_tokens)
    notices = [notice for notice in (hold.notice, TOOLS_NOTICE if "tools" in params else "") if notice]
    reply.status, reply.owner_token, reply.heartbeat_at, reply.notices = Message.Status.QUEUED, "", None, notices
    reply.save(update_fields=["status", "owner_token", "heartbeat_at", "notices"])
    if batch is None:
        batch = Batch.objects.create(owner_id=reservation.user_id, kind=Batch.Kind.TURN, model=reply.model)
    return BatchItem.objects.create(
        batch=batch, custom_id=f"{BatchItem.REPLY_PREFIX}{reply.pk}", params=params, message=reply, reservation=reservation
    )


@dataclass
class BulkFile:
    attachment: Attachment
    input_tokens: int


def bulk_create(*, user, question: str, model: str, attachment_ids: list[int], per_file: bool) -> Batch:
    """The same question of each of the user's uploads, as one batch of one request per file, with the whole
    batch's worst case reserved at the batch price first (or BatchRefused / RequestRefused, nothing stored).
    `per_file`: each file becomes a conversation holding the question and, once it lands, the answer; else the
    answers fill the batch's table only. `model` is an offered model id, already checked."""
    from chat.llm import registry  # the registry's memory of the models offered

    question = question.strip()
    if not question:
        raise BatchRefused("empty", "Write the question to ask of each file.")
    spec = registry.model_for(model)
    with transaction.atomic():
        # Locked as every admission locks it, so the budget read below cannot be overtaken (billing/services.py).
        user = get_user_model().objects.select_for_update(no_key=True).get(pk=user.pk)
        attachments = list(Attachment.objects.filter(
            pk__in=attachment_ids, owner=user, message__isnull=True, project__isnull=True
        ).order_by("id"))
        if not attachments or len(attachments) != len(set(attachment_ids)):
            raise BatchRefused("bad_files", "Some of these files are not yours to send, or were sent already.")
        max_tokens = output_options(spec, "off", False)["max_tokens"]
        asked = estimate_tokens(question)
        holds = billing_services.batch_admit(
            user=user, model=spec.id, requests=[(a.tokens + asked, max_tokens) for a in attachments],
        )
        batch = Batch.objects.create(
            owner=user, kind=Batch.Kind.BULK, model=spec.id, question=question, per_file_conversations=per_file,
        )
        for number, (attachment, hold) in enumerate(zip(attachments, holds, strict=True), start=1):
            if per_file:
                _bulk_conversation(user, batch, spec, question, attachment, hold)
                continue
            reservation = billing_services.reservation_create(user=user, message=None, hold=hold)
            params = {
                "model": spec.id, "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": [
                    content_block(attachment), {"type": "text", "text": question},
                ]}],
            }
            BatchItem.objects.create(
                batch=batch, custom_id=f"file-{number}", params=params, attachment=attachment,
                name=attachment.name, reservation=reservation,
            )
    return batch


def _bulk_conversation(user, batch, spec, question, attachment, hold) -> BatchItem:
    """A conversation of its own for one file: the question with the file, and its queued reply."""
    from chat.llm.request import request_parts

    conversation = chat_services.conversation_create(owner=user, model=spec.id)
    conversation.owner = user
    turn = chat_services.turn_start(
        conversation=conversation, text=question, attachment_ids=[attachment.pk], reply_model=spec.id,
    )
    reply = turn.assistant_message
    reservation = billing_services.reservation_create(user=user, message=reply, hold=hold)
    parts = request_parts(conversation, reply=reply)
    item = batch_turn_create(reply=reply, parts=parts, spec=spec, reservation=reservation, hold=hold, batch=batch)
    item.attachment, item.name = attachment, attachment.name
    item.save(update_fields=["attachment", "name"])
    return item


# --- cancelling ------------------------------------------------------------------------------------------


def batch_cancel(*, batch: Batch) -> list["Settled"]:
    """Cancel a batch: one not sent yet ends now (its items cancelled, their reservations released, returned
    for the caller to tell); one sent is marked, and the worker asks upstream to cancel it, then stores and
    bills what was answered anyway and cancels the rest. A batch already over is left alone."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        if batch.status == Batch.Status.PENDING:
            settled = [
                item_settle_locked(item, BatchItem.Status.CANCELED)
                for item in batch.items.select_for_update().filter(settled_at__isnull=True)
            ]
            batch.status, batch.ended_at, batch.cancel_requested_at = Batch.Status.ENDED, timezone.now(), timezone.now()
            batch.save(update_fields=["status", "ended_at", "cancel_requested_at"])
            return [entry for entry in settled if entry is not None]
        if batch.status in (Batch.Status.SUBMITTING, Batch.Status.SUBMITTED) and not batch.cancel_requested_at:
            batch.cancel_requested_at = timezone.now()
            batch.save(update_fields=["cancel_requested_at"])
    return []


def reply_cancel(*, user_id: int, conversation_id: int, message_id: int) -> list["Settled"]:
    """Cancel the queued reply `message_id` of the user's conversation (a `cancel` frame, or the page's POST),
    or BatchRefused `not_queued`."""
    item = BatchItem.objects.filter(
        message_id=message_id, message__conversation_id=conversation_id, message__conversation__owner_id=user_id,
        settled_at__isnull=True,
    ).select_related("batch").first()
    if item is None:
        raise BatchRefused("not_queued", "That reply is not waiting in a batch any more.")
    return batch_cancel(batch=item.batch)


def queued_replies_delete(*, message_ids) -> None:
    """Before the caller deletes messages (a branch, a conversation): the batch items of the
    queued replies among them let go of them. An item not sent yet is cancelled and its reservation released.
    One sent keeps its reservation (its spend may still come: the reservation is the item's, so the stale sweep
    leaves it, and settling releases it), and its batch is cancelled upstream when none of its items is left
    for anyone to see; an answer that comes back anyway is billed and stored nowhere (`reply_deleted`)."""
    batch_ids = set(BatchItem.objects.filter(message_id__in=message_ids, settled_at__isnull=True)
                    .values_list("batch_id", flat=True))
    if not batch_ids:
        return
    with transaction.atomic():
        for batch in Batch.objects.select_for_update().filter(pk__in=batch_ids).order_by("pk"):
            for item in batch.items.select_for_update().filter(message_id__in=message_ids, settled_at__isnull=True):
                item.message = None
                item.save(update_fields=["message"])
                if batch.status == Batch.Status.PENDING:
                    item_settle_locked(item, BatchItem.Status.CANCELED)
            open_items = [item for item in batch.items.filter(settled_at__isnull=True) if not item.reply_deleted]
            if open_items or batch.cancel_requested_at:
                continue
            batch.cancel_requested_at = timezone.now()
            fields = ["cancel_requested_at"]
            if batch.status == Batch.Status.PENDING:
                batch.status, batch.ended_at = Batch.Status.ENDED, timezone.now()
                fields += ["status", "ended_at"]
            batch.save(update_fields=fields)


# --- the worker's writes ---------------------------------------------------------------------------------


def batches_open() -> list[int]:
    return list(Batch.objects.filter(
        status__in=[Batch.Status.PENDING, Batch.Status.SUBMITTING, Batch.Status.SUBMITTED]
    ).order_by("id").values_list("pk", flat=True))


def batches_unclaim() -> int:
    """At the worker's start: batches a dead worker was sending go back to pending, to be sent again. (Had the
    send reached upstream, that batch's results find their items settled already and are ignored.)"""
    return Batch.objects.filter(status=Batch.Status.SUBMITTING).update(status=Batch.Status.PENDING)


def batch_retired_fail(*, batch_id: int) -> list["Settled"]:
    """Before a pending batch is sent: each item for a retired model fails with the retirement sentence (naming
    the successor) and its reservation is released, so no request goes to a retired model."""
    items = BatchItem.objects.filter(batch_id=batch_id, settled_at__isnull=True).values_list("pk", "params__model")
    rows = {model: model_retired(model) for model in {model for _, model in items}}
    reasons = {pk: retirement_sentence(rows[model]) for pk, model in items if rows[model] is not None}
    return items_fail(batch_id=batch_id, reasons=reasons) if reasons else []


def items_fail(*, batch_id: int, reasons: dict[int, str]) -> list["Settled"]:
    """Fail items of a pending batch before it is sent (item id: the reason its reply shows), their
    reservations released; a batch left with no item ends failed, and `batch_claim` then has nothing to send."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.status != Batch.Status.PENDING:
            return []
        items = list(batch.items.select_for_update().filter(settled_at__isnull=True))
        settled = [
            item_settle_locked(item, BatchItem.Status.ERRORED, reason=reasons[item.pk], final_error=True)
            for item in items if item.pk in reasons
        ]
        if settled and len(settled) == len(items):
            batch.status, batch.ended_at, batch.error = Batch.Status.FAILED, timezone.now(), items[0].error
            batch.save(update_fields=["status", "ended_at", "error"])
    return [entry for entry in settled if entry is not None]


@dataclass
class ReplyToFit:
    item_id: int
    parts: RequestParts
    spec: ModelSpec
    max_tokens: int


def batch_replies_to_fit(*, batch_id: int) -> list[ReplyToFit]:
    """The queued replies of a pending batch with what their request is built from, read again from their
    path: the worker fits each to the context window (chat/llm/context.py `request_fit`, which may ask the API
    to count) as a normal reply is, leaving out the oldest exchanges with the same notice."""
    from chat.llm import registry  # the registry's memory of the models offered
    from chat.llm.request import request_parts

    items = BatchItem.objects.filter(
        batch_id=batch_id, batch__status=Batch.Status.PENDING, settled_at__isnull=True, message__isnull=False,
    ).select_related("message__conversation__owner")
    return [
        ReplyToFit(item.pk, request_parts(item.message.conversation, reply=item.message),
                   registry.model_for(item.params["model"]), item.params["max_tokens"])
        for item in items
    ]


def item_fitted(*, item_id: int, params: dict, notice: str | None) -> None:
    """The request the worker fitted replaces the item's; the notice (history left out) goes on the reply."""
    with transaction.atomic():
        item = BatchItem.objects.select_for_update().filter(pk=item_id, settled_at__isnull=True).first()
        if item is None:
            return
        item.params = params
        item.save(update_fields=["params"])
        reply = Message.objects.select_for_update().filter(pk=item.message_id).first()
        if notice and reply is not None and notice not in reply.notices:
            reply.notices = [*reply.notices, notice]
            reply.save(update_fields=["notices"])


def batch_claim(*, batch_id: int) -> list[dict] | None:
    """Take a pending batch for sending: its requests, or None when it is not pending any more (cancelled)."""
    with transaction.atomic():
        if not Batch.objects.filter(pk=batch_id, status=Batch.Status.PENDING).update(
            status=Batch.Status.SUBMITTING, submit_attempts=F("submit_attempts") + 1
        ):
            return None
        return [
            {"custom_id": custom_id, "params": params}
            for custom_id, params in BatchItem.objects.filter(batch_id=batch_id, settled_at__isnull=True)
            .values_list("custom_id", "params")
        ]


def batch_submitted(*, batch_id: int, upstream_id: str) -> None:
    Batch.objects.filter(pk=batch_id, status=Batch.Status.SUBMITTING).update(
        status=Batch.Status.SUBMITTED, upstream_id=upstream_id, submitted_at=timezone.now(), error="",
    )


def batch_submit_failed(*, batch_id: int, reason: str, tries: int) -> list["Settled"]:
    """A submission failed: pending again, to be tried at the next poll, until `tries` attempts have failed;
    then every item fails with the reason and its reservation is released."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        batch.error = reason
        if batch.submit_attempts < tries and not batch.cancel_requested_at:
            batch.status = Batch.Status.PENDING
            batch.save(update_fields=["status", "error"])
            return []
        failing = BatchItem.Status.CANCELED if batch.cancel_requested_at else BatchItem.Status.ERRORED
        settled = [
            item_settle_locked(item, failing, reason=FAILED_SUBMIT_REASON.format(reason=reason), final_error=True)
            for item in batch.items.select_for_update().filter(settled_at__isnull=True)
        ]
        batch.status, batch.ended_at = Batch.Status.FAILED, timezone.now()
        batch.save(update_fields=["status", "error", "ended_at"])
    return [entry for entry in settled if entry is not None]


def batch_cancel_sent(*, batch_id: int) -> None:
    Batch.objects.filter(pk=batch_id).update(cancel_sent_at=timezone.now())


def batch_poll_failed(*, batch_id: int, reason: str) -> None:
    Batch.objects.filter(pk=batch_id).update(error=reason)


def batch_end(*, batch_id: int) -> list["Settled"]:
    """Upstream ended the batch and every result was read: an item without a result (none should be) fails."""
    with transaction.atomic():
        settled = [
            item_settle_locked(item, BatchItem.Status.ERRORED, reason="no result came back")
            for item in BatchItem.objects.select_for_update().filter(batch_id=batch_id, settled_at__isnull=True)
        ]
        Batch.objects.filter(pk=batch_id).update(status=Batch.Status.ENDED, ended_at=timezone.now())
    return [entry for entry in settled if entry is not None]


@dataclass
class Settled:
    """What the worker tells once an item's transaction committed: the reply's frame to its conversation's
    sockets, and the user's email when they asked for one."""

    user_id: int
    conversation_id: int | None = None
    payload: dict | None = None
    calls: list[ApiCall] = field(default_factory=list)
    usage: TokenUsage = TokenUsage()


def item_settle(*, batch_id: int, custom_id: str, status: str, message=None, reason: str = "") -> Settled | None:
    """Settle one result (`status` an item status; `message` the succeeded result's SDK Message; `reason` an
    errored one's error), in one transaction. None when it had settled already (a re-run)."""
    with transaction.atomic():
        item = (BatchItem.objects.select_for_update().select_related("batch")
                .filter(batch_id=batch_id, custom_id=custom_id).first())
        if item is None:
            log.warning("batch %s has no item %r", batch_id, custom_id)
            return None
        return item_settle_locked(item, status, message=message, reason=reason)


def _citations_attached(content: list[dict], reply: Message, params: dict) -> list[dict]:
    """The reply's citations naming the attachments they cite (chat/citations.py), as a streamed reply's do: the
    documents of the request sent (`params`, as fitted) numbered from the reply's parts, read again as the fitting
    read them. Only a reply that cites a document pays for that read."""
    if not any(
        citation.get("type") in citations.DOCUMENT_CITATIONS
        for block in content if block.get("type") == "text" for citation in block.get("citations") or ()
    ):
        return content
    documents = citations.documents_sent(request_parts(reply.conversation, reply=reply), params)
    return citations.content_citations_attached(content, documents)


def item_settle_locked(item: BatchItem, status: str, *, message=None, reason: str = "",
                       final_error: bool = False) -> Settled | None:
    """The caller holds the transaction and the item's row lock."""
    if item.settled_at is not None:
        return None
    batch = item.batch
    reply = (Message.objects.select_for_update().filter(pk=item.message_id, status=Message.Status.QUEUED)
             .select_related("conversation").first() if item.message_id else None)
    conversation_id = reply.conversation_id if reply else None
    settled = Settled(user_id=batch.owner_id, conversation_id=conversation_id)
    if status == BatchItem.Status.SUCCEEDED and message is not None:
        usage = TokenUsage.from_sdk(message.usage)
        request = UpstreamRequest(
            model=message.model or batch.model,
            attempts=[UpstreamAttempt(http_status=200, request_id=batch.upstream_id)],
            usage=usage, status=ApiCall.Status.OK, stop_reason=message.stop_reason or "",
            purpose=ApiCall.Purpose.BATCH,
        )
        settled.calls = ledger.ledger_record(
            [request], user_id=batch.owner_id, conversation_id=conversation_id, message=reply,
            settle_key=f"batch:{batch.upstream_id}:{item.custom_id}",
        )
        settled.usage = usage
        content = chat_services.storable([block.model_dump(mode="json", exclude_none=True)
                                          for block in message.content])
        if reply is not None:
            content = _citations_attached(content, reply, item.params)
        if not item.reply_deleted:
            item.answer = "".join(block.get("text", "") for block in content if block.get("type") == "text")
        item.cost = sum((call.cost for call in settled.calls), item.cost)
        if reply is not None:
            reply.content, reply.stop_reason = content, request.stop_reason
            reply.model = request.model
            reply.input_tokens, reply.output_tokens = usage.input_tokens, usage.output_tokens
            reply.cache_read_input_tokens = usage.cache_read_input_tokens
            reply.cache_creation_input_tokens = usage.cache_creation_input_tokens
            reply.cost = item.cost
            measured = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
            reply.context_tokens = measured + usage.output_tokens
            reply.context_window = model_spec(request.model).context_window
    reply_status, error = OUTCOMES[status]
    if final_error or status == BatchItem.Status.ERRORED:
        error = reason if final_error else error.format(reason=reason or "unknown error")
    item.status, item.error, item.settled_at = status, error, timezone.now()
    item.save(update_fields=["status", "error", "answer", "cost", "settled_at"])
    if item.reservation_id:
        Reservation.objects.filter(pk=item.reservation_id).delete()
    if reply is not None:
        reply.status, reply.error = reply_status, error
        reply.save()
        settled.payload = frames.message_payload(reply)
    return settled
