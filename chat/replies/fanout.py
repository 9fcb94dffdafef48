"""Frames to the sockets of a conversation: straight to this process's sockets, through the channel layer only
to the other processes.

Relaying every frame through the channel layer cost, per socket and frame, a deep copy and queue bookkeeping
in the in-memory layer (~470 us against ~140 us for a direct send) and a Redis round trip with msgpack on the
Redis layer, even when the socket sat in the very process that made the frame. Here a frame is put once on
the inbox of each local socket (the consumer dispatches it in order with everything else it handles, see
ConversationConsumer), and the channel layer carries it only when other processes may have sockets: each
process joins a conversation's group once, with one relay channel, and hands what arrives to its own sockets.
Frames are shared, not copied: nobody changes a frame after it is published.
"""

import asyncio
import logging
import uuid
import weakref
from collections import defaultdict

from channels.layers import InMemoryChannelLayer, get_channel_layer

log = logging.getLogger(__name__)

# Tells this process's own frames apart when the channel layer hands them back to its relay.
PROCESS_ID = uuid.uuid4().hex
# Longest wait for the channel layer to take one frame for other processes; past it the frame is dropped there.
PUBLISH_TIMEOUT = 2.0


class Fanout:
    def __init__(self, layer):
        self.layer = layer
        # Other processes exist only behind a shared layer (Redis); the in-memory one is this process alone.
        self.shared = not isinstance(layer, InMemoryChannelLayer)
        self.sockets: dict[str, set] = defaultdict(set)  # group -> consumers of this process
        self.by_channel: dict[str, object] = {}  # a consumer's channel name -> the consumer
        self.relay_channel: str | None = None
        self.relay_task: asyncio.Task | None = None
        # Joining and leaving a group's relay membership, one at a time per group (they await the layer).
        self.locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def join(self, group: str, consumer) -> None:
        """Add a socket; the first of a group joins the relay to it first, so a join the layer refuses (it
        raises) leaves nothing behind and the next socket tries again."""
        async with self.locks[group]:
            if self.shared and not self.sockets.get(group):
                await self._relay_started()
                await self.layer.group_add(group, self.relay_channel)
            self.sockets[group].add(consumer)
            self.by_channel[consumer.channel_name] = consumer

    async def leave(self, group: str, consumer) -> None:
        """Remove a socket (safe to call for one that never joined, or twice)."""
        self.by_channel.pop(getattr(consumer, "channel_name", None), None)
        async with self.locks[group]:
            members = self.sockets.get(group)
            if not members or consumer not in members:
                return
            members.discard(consumer)
            if members:
                return
            del self.sockets[group]
            if self.shared:
                try:
                    await self.layer.group_discard(group, self.relay_channel)
                except Exception as error:
                    log.warning("leaving %s failed: %r", group, error)

    async def publish(self, group: str, frame: dict, *, here: bool = True, elsewhere: bool = True) -> bool:
        """To every socket on `group`: this process's at once (`here`), other processes' through the layer
        (`elsewhere`, bounded by PUBLISH_TIMEOUT). False when the layer failed; local delivery never waits on it."""
        if here:
            self._deliver_here(group, frame)
        if not (self.shared and elsewhere):
            return True
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that lands as
            # the send completes.
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await self.layer.group_send(
                    group, {"type": "relay.frame", "group": group, "origin": PROCESS_ID, "frame": frame}
                )
            return True
        except Exception as error:
            log.warning("publishing to %s for other processes failed: %r", group, error)
            return False

    async def send_to(self, channel_name: str, frame: dict) -> None:
        """To one socket, wherever it is (a live snapshot for a socket that just connected)."""
        consumer = self.by_channel.get(channel_name)
        if consumer is not None:
            _put(consumer, frame)
        else:
            await self.layer.send(channel_name, {"type": "chat.frame", "frame": frame})

    def _deliver_here(self, group: str, frame: dict) -> None:
        for consumer in self.sockets.get(group, ()):
            _put(consumer, frame)

    async def _relay_started(self) -> None:
        if self.relay_task is None or self.relay_task.done():
            # The default prefix: channels_redis reads every process-local channel from one Redis list, and
            # one of another prefix would wait behind the sockets' reads for its turn.
            self.relay_channel = await self.layer.new_channel()
            self.relay_task = asyncio.create_task(self._relay(), name="fanout-relay")

    async def _relay(self) -> None:
        """Hand other processes' frames to this process's sockets. Survives a layer outage: it waits, joins
        its groups again (a restarted Redis forgets them) and carries on."""
        while True:
            try:
                message = await self.layer.receive(self.relay_channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("the fanout relay lost the channel layer: %r", error)
                await asyncio.sleep(1)
                await self._rejoin()
                continue
            if message.get("origin") != PROCESS_ID and message.get("type") == "relay.frame":
                self._deliver_here(message["group"], message["frame"])

    async def _rejoin(self) -> None:
        for group in list(self.sockets):
            try:
                await self.layer.group_add(group, self.relay_channel)
            except Exception:
                return


def _put(consumer, frame: dict) -> None:
    """A socket too far behind loses frames, as a full channel would drop them; its client sees the gap and
    resumes from a snapshot."""
    try:
        consumer.inbox.put_nowait(frame)
    except asyncio.QueueFull:
        pass


_fanouts: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout]" = weakref.WeakKeyDictionary()


def fanout() -> Fanout:
    """The fanout of the running event loop."""
    loop = asyncio.get_running_loop()
    if loop not in _fanouts:
        _fanouts[loop] = Fanout(get_channel_layer())
    return _fanouts[loop]
