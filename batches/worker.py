"""The batch worker: sends pending batches, watches the sent ones, and settles their results as they end.

One pass (`batches_work_once`) goes over every open batch; `batches_work_forever` makes a pass every
BATCH_POLL_SECONDS (`manage.py batches_work`; `--once` for tests and cron). Upstream failures are logged and
left for the next pass: a submission is tried BATCH_SUBMIT_TRIES times before its items fail. Every database
step is its own transaction (batches/services.py), so a worker stopped anywhere resumes where it was: a batch
it was sending is sent again, results it had not settled are read again, and none is billed twice.

A settled reply is told to its conversation's sockets through the channel layer when the layer is shared
(Redis); with the in-process layer the worker has no way to the server's sockets, and the page asks for a
queued reply itself every BATCH_PAGE_CHECK_SECONDS (static/chat/frames.js, docs/batches.md).
"""

import asyncio
import logging

import anthropic
import httpx2
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import send_mail
from django.urls import reverse

from batches import services
from batches.models import Batch, BatchItem
from billing import ledger
from billing import services as billing_services
from chat import frames
from chat.db import db_async
from chat.llm import context
from chat.llm.client import anthropic_client
from chat.replies.fanout import fanout
from chat.replies.generation import conversation_group, upstream_error_reason
from lifecycle import services as lifecycle_services
from lifecycle.models import ModelLifecycle

log = logging.getLogger(__name__)

RESULT_STATUS = {
    "succeeded": BatchItem.Status.SUCCEEDED,
    "errored": BatchItem.Status.ERRORED,
    "canceled": BatchItem.Status.CANCELED,
    "expired": BatchItem.Status.EXPIRED,
}
UPSTREAM_FAILURES = (anthropic.APIError, httpx2.HTTPError)


async def batches_work_forever() -> None:
    await db_async(services.batches_unclaim)()
    while True:
        await batches_work_once()
        await asyncio.sleep(settings.BATCH_POLL_SECONDS)


async def batches_work_once() -> None:
    """One pass over the open batches; a batch whose step fails is logged and tried again next pass. The first
    pass of each day also sends the admins' retirement notices."""
    await db_async(_retirements_notify_daily)()
    client = anthropic_client()
    for batch_id in await db_async(services.batches_open)():
        try:
            await batch_advance(client, batch_id)
        except UPSTREAM_FAILURES as error:
            log.warning("batch %s: upstream failed, trying again next pass: %r", batch_id, error)
            await db_async(services.batch_poll_failed)(batch_id=batch_id, reason=upstream_error_reason(error))
        except Exception:
            log.exception("batch %s could not be advanced; trying again next pass", batch_id)


async def batch_advance(client: anthropic.AsyncAnthropic, batch_id: int) -> None:
    batch = await db_async(Batch.objects.get)(pk=batch_id)
    if batch.status == Batch.Status.PENDING:
        await _submit(client, batch_id)
        return
    if batch.status != Batch.Status.SUBMITTED:
        return  # SUBMITTING: another pass of this worker is sending it
    if batch.cancel_requested_at and not batch.cancel_sent_at:
        await client.messages.batches.cancel(batch.upstream_id)
        await db_async(services.batch_cancel_sent)(batch_id=batch_id)
    upstream = await client.messages.batches.retrieve(batch.upstream_id)
    if upstream.processing_status != "ended":
        return
    async for response in await client.messages.batches.results(batch.upstream_id):
        result = response.result
        settled = await db_async(services.item_settle)(
            batch_id=batch_id, custom_id=response.custom_id, status=RESULT_STATUS[result.type],
            message=getattr(result, "message", None),
            reason=result.error.error.message if result.type == "errored" else "",
        )
        await settled_tell(settled)
    for settled in await db_async(services.batch_end)(batch_id=batch_id):
        await settled_tell(settled)


async def _submit(client: anthropic.AsyncAnthropic, batch_id: int) -> None:
    for settled in await db_async(services.batch_retired_fail)(batch_id=batch_id):
        await settled_tell(settled)
    await _replies_fit(client, batch_id)
    requests = await db_async(services.batch_claim)(batch_id=batch_id)
    if requests is None:
        return
    try:
        upstream = await client.messages.batches.create(requests=requests)
    except UPSTREAM_FAILURES as error:
        log.warning("batch %s: submission failed: %r", batch_id, error)
        failed = await db_async(services.batch_submit_failed)(
            batch_id=batch_id, reason=upstream_error_reason(error), tries=settings.BATCH_SUBMIT_TRIES,
        )
        for settled in failed:
            await settled_tell(settled)
        return
    await db_async(services.batch_submitted)(batch_id=batch_id, upstream_id=upstream.id)


async def _replies_fit(client: anthropic.AsyncAnthropic, batch_id: int) -> None:
    """Each queued reply's request fitted to its model's context window, as a normal reply's is; one that
    cannot fit even alone fails with the same words. An upstream failure (count_tokens) is the pass's."""
    too_long = {}
    for reply in await db_async(services.batch_replies_to_fit)(batch_id=batch_id):
        def assemble(left_out: int, reply=reply) -> dict:
            return services.turn_params(reply.parts, spec=reply.spec, max_tokens=reply.max_tokens, left_out=left_out)

        try:
            fitted = await context.request_fit(client, reply.parts, reply.spec, assemble)
        except context.ContextTooLong as refused:
            too_long[reply.item_id] = str(refused)
            continue
        await db_async(services.item_fitted)(item_id=reply.item_id, params=fitted.request, notice=fitted.notice())
    if too_long:
        for settled in await db_async(services.items_fail)(batch_id=batch_id, reasons=too_long):
            await settled_tell(settled)


async def settled_tell(settled: services.Settled | None) -> None:
    """After an item's transaction committed: its ledger log lines, the user's rate window and budget alerts,
    the reply's frame to its conversation's sockets, and the email the user asked for. None of these may undo
    or repeat the settling, so each failure is logged only."""
    if settled is None:
        return
    for call in settled.calls:
        ledger.ledger_log(call)
    try:
        await db_async(billing_services.usage_settle)(user_id=settled.user_id, usage=settled.usage)
    except Exception:
        log.exception("settling usage of a batch item failed")
    if settled.payload is None:
        return
    try:
        await fanout().publish(conversation_group(settled.conversation_id), frames.message_frame(settled.payload))
    except Exception:
        log.exception("telling conversation %s its batch reply failed", settled.conversation_id)
    try:
        await db_async(_email_if_asked)(settled)
    except Exception:
        log.exception("emailing about batch reply %s failed", settled.payload["id"])


def _retirements_notify_daily() -> None:
    """lifecycle's notices from the worker, at most once a (UTC) day: the cache key is taken first, so the
    other passes of the day, and the other workers sharing the cache, skip it. A failed run is logged and
    tried again the next day; `manage.py lifecycle_notify` serves installs without the worker."""
    today = ModelLifecycle.today()
    if not cache.add(f"batches:retirements-notified:{today.isoformat()}", True, timeout=2 * 24 * 3600):
        return
    try:
        lifecycle_services.retirements_notify(today=today)
    except Exception:
        log.exception("sending the retirement notices failed; the worker tries again tomorrow")


def _email_if_asked(settled: services.Settled) -> None:
    user = get_user_model().objects.filter(pk=settled.user_id, batch_email=True).exclude(email="").first()
    if user is None:
        return
    link = reverse("conversation_detail", args=[settled.conversation_id])
    status = settled.payload["status"]
    words = "is ready" if status == "complete" else f"ended: {settled.payload['error'] or status}"
    send_mail(
        settings.EMAIL_SUBJECT_PREFIX + "Your half-price reply " + ("is ready" if status == "complete" else "ended"),
        f"The reply you asked for at half price {words}.\n\nOpen the conversation: {link}\n",
        None, [user.email],
    )
