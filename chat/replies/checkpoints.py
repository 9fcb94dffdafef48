"""The process's checkpointer: every streaming reply of this event loop saved in one write per interval.

A reply's progress is written at most once per CHAT_CHECKPOINT_INTERVAL, never per token, and its heartbeat at
least once per CHAT_HEARTBEAT_INTERVAL. Doing it for all replies together is one hop to the database thread
pool and one commit per interval however many replies stream (SQLite has one writer; a commit per reply per
second was the bulk of its write load). A failed write is logged and tried again at the next interval with
the replies' latest state, so a database outage costs checkpoints, never the heartbeat for good or the reply.
"""

import asyncio
import logging
import time
import weakref

from django.conf import settings

from chat import services
from chat.db import db_async

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self):
        self.generations: dict[int, "Generation"] = {}  # noqa: F821 (chat/replies/generation.py)
        self.task: asyncio.Task | None = None

    def register(self, generation) -> None:
        self.generations[generation.message_id] = generation
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="checkpointer")

    def unregister(self, generation) -> None:
        if self.generations.get(generation.message_id) is generation:
            del self.generations[generation.message_id]

    async def _run(self) -> None:
        while self.generations:
            await asyncio.sleep(settings.CHAT_CHECKPOINT_INTERVAL)
            await self.flush()

    async def flush(self) -> None:
        """Write every reply that changed, and the heartbeat of every reply quiet for too long."""
        now = time.monotonic()
        due = [(generation, generation.checkpoint_due(now)) for generation in list(self.generations.values())]
        due = [(generation, state) for generation, state in due if state is not None]
        if not due:
            return
        writes = [(g.message_id, g.token, content, seq) for g, (content, seq) in due]
        try:
            lost = await db_async(services.messages_checkpoint)(writes)
        except Exception:
            log.exception("checkpointing %d replies failed; trying again in %gs", len(writes),
                          settings.CHAT_CHECKPOINT_INTERVAL)
            return
        for generation, (_, seq) in due:
            if generation.message_id in lost:
                generation.ownership_lost()
            else:
                generation.checkpointed(seq, now)


_checkpointers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Checkpointer]" = weakref.WeakKeyDictionary()


def checkpointer() -> Checkpointer:
    """The checkpointer of the running event loop."""
    return _checkpointers.setdefault(asyncio.get_running_loop(), Checkpointer())
