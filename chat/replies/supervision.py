"""Keeping replies honest when their surroundings change: deleted mid-reply, left by a dead process.

- Deleting a streaming reply (its conversation, its user, or the row itself, by any path: the page, the
  admin, a cascade) stops its generation as soon as the deletion commits, in whatever process runs it, so
  the upstream stops generating and billing at once. The ledger still gets its rows when the reply settles.
  (Its next checkpoint would find the row gone and stop it too; this is the prompt path.)
- The stale sweep marks replies whose process died as interrupted and releases what they reserved. Each
  server process runs it every CHAT_STALE_SWEEP_INTERVAL; reads never do it (pages and sockets only show a
  stale reply as interrupted, chat/frames.py).
"""

import asyncio
import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from chat import services
from chat.db import db_async
from chat.models import Message
from chat.replies import generation

log = logging.getLogger(__name__)


@receiver(post_delete, sender=Message, dispatch_uid="stop_deleted_reply")
def _stop_deleted_reply(sender, instance: Message, **kwargs) -> None:
    if instance.status == Message.Status.STREAMING:
        transaction.on_commit(lambda: reply_stop_from_sync(instance.pk))


def reply_stop_from_sync(message_id: int) -> None:
    """Stop a reply from synchronous code (a view, the admin, a management command), wherever it runs."""
    running = generation.running.get(message_id)
    try:
        if running is not None and running.task is not None:
            running.task.get_loop().call_soon_threadsafe(running.request_stop)
            return
        async_to_sync(get_channel_layer().group_send)(
            generation.control_group(message_id), {"type": "generation.stop"}
        )
    except Exception:
        # The checkpoint that finds the row gone stops the reply a moment later.
        log.exception("stopping deleted reply %s failed", message_id)


async def stale_sweep_forever() -> None:
    """Every CHAT_STALE_SWEEP_INTERVAL: interrupt the replies dead processes left, release their reservations.

    Several processes may sweep at once: the sweep is one conditional UPDATE, so they never disagree. After
    the database was unreachable, every live reply's heartbeat is stale too (none could write one), so the
    sweep waits until the database has been back for a whole CHAT_STREAM_STALE_AFTER: live replies heartbeat
    again meanwhile, and only the dead ones are left to sweep.
    """
    back_since: float | None = time.monotonic()
    while True:
        await asyncio.sleep(settings.CHAT_STALE_SWEEP_INTERVAL)
        try:
            if back_since is None:
                await db_async(_database_reachable)()
                back_since = time.monotonic()
            if time.monotonic() - back_since < settings.CHAT_STREAM_STALE_AFTER:
                continue
            swept = await db_async(services.messages_interrupt_stale)()
            if swept:
                log.info("%d stale replies marked interrupted", swept)
        except Exception:
            back_since = None
            log.exception("the stale sweep failed; trying again in %gs", settings.CHAT_STALE_SWEEP_INTERVAL)


def _database_reachable() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
