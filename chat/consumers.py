"""The conversation websocket (protocol in docs/protocol.md).

A consumer handles one frame at a time, so nothing here awaits a reply: `send` is admitted in one hop
(chat/replies/admission.py) and starts a generation task that the process owns; this socket, like every other
on the conversation, receives its frames through its inbox (chat/replies/fanout.py).
"""

import asyncio
import functools
import logging
import secrets

from channels.exceptions import ChannelFull
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.consumer import get_handler_name
from channels.utils import await_many_dispatch
from django.conf import settings
from django.http import Http404
from redis.exceptions import RedisError

from chat import frames, inbound, selectors, socket_watch
from chat.attachments.limits import MAX_ATTACHMENTS_PER_MESSAGE
from chat.db import db_async
from chat.inbound import BadFrame
from chat.llm import registry
from chat.models import Conversation, Message
from chat.refusals import Refusal
from chat.replies import admission, generation
from chat.replies.fanout import fanout
from chat.replies.generation import control_group, conversation_group, generation_start
from lifecycle.refusals import retired_model_refuse

log = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 100_000
# Application close codes must be 1000 or 3000-4999 (autobahn refuses others); 4503 reads as "unavailable".
LAYER_DOWN_CLOSE_CODE = 4503
LAYER_DOWN_DETAIL = "Live updates are unavailable right now. Reconnecting; nothing written so far is lost."
# What a channel layer raises when its backend (Redis) is unreachable or too slow: only these close a socket
# as unavailable. Any other error in a frame's handler is a bug, answered with `internal_error`.
LAYER_FAILURES = (RedisError, OSError)  # TimeoutError is an OSError
INTERNAL_ERROR_DETAIL = "Something went wrong on our side. Nothing was lost; try again."
SLOW_DOWN_DETAIL = "Too many frames at once: some were dropped. Slow down."
# How long a socket holds back a reply's deltas while waiting for the generation's live snapshot.
SNAPSHOT_WAIT_SECONDS = 2.0
# Frames a socket may have waiting; past that it loses frames (and resumes), as a full channel would.
INBOX_FRAMES = 1000


def _check_length(text: str) -> None:
    if len(text) > MAX_TEXT_LENGTH:
        raise BadFrame("too_long", f"Messages are limited to {MAX_TEXT_LENGTH:,} characters.")


class ConversationConsumer(AsyncJsonWebsocketConsumer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.held_deltas: dict[int, list[dict]] = {}
        # Per reply, the seq this socket's client already has: later copies of those frames are dropped here.
        self.delivered_seq: dict[int, int] = {}
        self.accepted = False
        self.closed = False
        # Frames from this process's generations (chat/replies/fanout.py), dispatched in order with the rest.
        self.inbox: asyncio.Queue[dict] = asyncio.Queue(maxsize=INBOX_FRAMES)
        self.frame_bucket = inbound.FrameBucket(
            rate=settings.CHAT_SOCKET_FRAMES_PER_SECOND, burst=settings.CHAT_SOCKET_FRAME_BURST
        )

    async def __call__(self, scope, receive, send):
        """If the live feed fails (Redis down), tell the client plainly and close, so it reconnects later and
        catches up from the database; replies keep being generated and saved meanwhile.

        Nothing is sent after this socket's close, whoever closed it: the live feed goes on delivering to the
        consumer until the client's disconnect arrives, and a socket closed because its session ended must not
        pass on one more frame."""

        async def send_until_closed(message):
            if self.closed:
                return
            self.closed = message["type"] == "websocket.close"
            await send(message)

        try:
            await self._serve(scope, receive, send_until_closed)
        except LAYER_FAILURES:
            log.exception("conversation socket lost the channel layer")
            try:
                if self.accepted:
                    await self.send_json(frames.error_frame("unavailable", LAYER_DOWN_DETAIL))
                await self.close(code=LAYER_DOWN_CLOSE_CODE)
            except Exception:
                pass
        finally:
            # Also when the socket ended without `disconnect` (a channel-layer failure above).
            socket_watch.socket_unwatch(self)
            if hasattr(self, "probe_task"):
                self.probe_task.cancel()
            if hasattr(self, "group"):
                await fanout().leave(self.group, self)

    async def _serve(self, scope, receive, send):
        """AsyncConsumer.__call__ with one more source of events: this socket's inbox of frames from its own
        process, dispatched one at a time in order with the client's frames and the channel layer's events."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self.base_send = send
        try:
            await await_many_dispatch([receive, self.channel_receive, self._inbox_receive], self.dispatch)
        except StopConsumer:
            pass

    async def dispatch(self, message):
        """AsyncConsumer.dispatch without its `aclose_old_connections()` before every event: that is a hop to
        the sync thread for each frame relayed to each socket (measured: the largest cost of a steady stream
        after parsing it). This consumer never touches the database on its own thread: every query runs
        through chat.db.db_async, whose worker closes stale connections before and after each call."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def _inbox_receive(self) -> dict:
        return {"type": "chat.frame", "frame": await self.inbox.get()}

    async def connect(self):
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close()
            return
        try:
            self.conversation = await db_async(selectors.conversation_for_user)(
                user, self.scope["url_route"]["kwargs"]["conversation_id"]
            )
        except Http404:
            await self.close()
            return
        self.session_ref = socket_watch.session_ref(self.scope)
        if not socket_watch.socket_watch(self, self.session_ref):
            await self.accept()
            await socket_watch.socket_end(self, socket_watch.TOO_MANY_SOCKETS)
            return
        self.group = conversation_group(self.conversation.pk)
        # Join the live feed before taking the snapshot, so no frame falls between the two.
        await fanout().join(self.group, self)
        await self.accept()
        self.accepted = True
        self.probe_task = asyncio.create_task(self._probe_layer())
        await self._send_current_state(message_id=None)

    async def disconnect(self, code):
        if hasattr(self, "probe_task"):
            self.probe_task.cancel()
        if hasattr(self, "group"):
            await fanout().leave(self.group, self)

    async def receive(self, text_data=None, bytes_data=None):
        """Every frame is untrusted: past the socket's frame budget it is dropped unread; anything malformed,
        or a bug in its handler, gets an error frame and the socket stays usable. Only a channel-layer failure
        goes on to `__call__`, which closes the socket."""
        if not self.frame_bucket.take():
            if self.frame_bucket.notice_due():
                await self.send_json(frames.error_frame("slow_down", SLOW_DOWN_DETAIL))
            return
        try:
            frame = inbound.frame_parse(text_data)
            await self.HANDLERS[frame["type"]](self, frame)
        except Refusal as refusal:
            if refusal.code == socket_watch.SESSION_ENDED.code:
                await socket_watch.socket_end(self, socket_watch.SESSION_ENDED)  # its next frame ends it
            else:
                await self.send_json(refusal.as_frame())
        except LAYER_FAILURES:
            raise
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("a frame's handler failed (error_id %s)", error_id)
            error = frames.error_frame("internal_error", INTERNAL_ERROR_DETAIL)
            error["error_id"] = error_id
            await self.send_json(error)

    async def chat_frame(self, event):
        """Relay a frame. While a live snapshot is awaited for a reply, its deltas are held back and only
        those newer than the snapshot are sent after it, so the client sees neither a gap nor a duplicate."""
        frame = event["frame"]
        if frame["type"] == "delta" and frame["message"] in self.held_deltas:
            self.held_deltas[frame["message"]].append(frame)
            return
        await self._deliver(frame)
        if frame["type"] == "message" and frame["message"]["id"] in self.held_deltas:
            await self._release_held(frame["message"]["id"], after_seq=frame["message"]["seq"])

    async def layer_probe(self, event):
        """The probe came back through the channel layer: the live feed works."""

    async def _probe_layer(self) -> None:
        """Send this socket a probe through the channel layer now and then. A layer that cannot take it (Redis
        down) may never raise in `receive`, so this is how the socket learns the feed is dead: it tells the
        client and closes, and the client reconnects and catches up from the database."""
        while True:
            await asyncio.sleep(settings.CHAT_LAYER_PROBE_INTERVAL)
            try:
                async with asyncio.timeout(settings.CHAT_LAYER_PROBE_INTERVAL):
                    await self.channel_layer.send(self.channel_name, {"type": "layer.probe"})
            except ChannelFull:
                continue  # the layer works; this socket is behind, and its client resumes what was dropped
            except Exception as error:
                log.warning("channel layer unavailable for a socket: %r", error)
                await self.send_json(frames.error_frame("unavailable", LAYER_DOWN_DETAIL))
                await self.close(code=LAYER_DOWN_CLOSE_CODE)
                return

    async def snapshot_timeout(self, event):
        """The generation did not answer (its process may be gone): send what was held, gaps and all."""
        if event["message"] in self.held_deltas:
            await self._release_held(event["message"], after_seq=-1)

    async def _release_held(self, message_id: int, *, after_seq: int) -> None:
        for delta in self.held_deltas.pop(message_id):
            if delta["seq"] > after_seq:
                await self._deliver(delta)

    async def _deliver(self, frame: dict) -> None:
        if frame["type"] == "delta":
            if frame["seq"] <= self.delivered_seq.get(frame["message"], 0):
                return
            self.delivered_seq[frame["message"]] = frame["seq"]
        elif frame["type"] == "message":
            self.delivered_seq[frame["message"]["id"]] = frame["message"]["seq"]
        await self.send_json(frame)

    # --- frames from the client -----------------------------------------------------------------------

    async def on_send(self, frame):
        text, attachment_ids = frame["text"].strip(), frame.get("attachments") or []
        if not text and not attachment_ids:
            raise BadFrame("empty", "Write a message first.")
        if len(attachment_ids) > MAX_ATTACHMENTS_PER_MESSAGE:
            raise BadFrame(
                "too_many_attachments", f"A message can carry at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments."
            )
        _check_length(text)
        await self._admit(
            "send", text=text, model=await self._model_choice(frame), attachment_ids=attachment_ids,
            batch=frame["batch"],
        )

    async def on_regenerate(self, frame):
        """Write a reply of the active path again, by default its last (optionally with another `model`): a new
        version beside the old ones."""
        await self._admit("regenerate", model=await self._model_choice(frame), message_id=frame["message"])

    async def on_edit(self, frame):
        """A new version of a user message of the active path, with its reply."""
        text = frame["text"].strip()
        _check_length(text)
        await self._admit(
            "edit", text=text, model=await self._model_choice(frame), message_id=frame["message"]
        )

    async def on_continue(self, frame):
        """Extend a reply that max_tokens cut short: the same message grows, its `seq` carries on."""
        await self._admit("continue", message_id=frame["message"])

    async def on_stop(self, frame):
        """Stop the reply named by `message` (or, from an older client, the one streaming now): a Stop racing a
        new turn from another tab stops only the reply it was meant for."""
        message_id = await db_async(selectors.streaming_message_id)(self.conversation.pk, frame.get("message"))
        if message_id is None:
            raise BadFrame("not_streaming", "Nothing is being written right now.")
        await generation.reply_stop(message_id)

    async def on_cancel(self, frame):
        """Cancel a queued half-price reply (batches/): at once when its batch was not sent yet, else the batch
        worker asks upstream to cancel it and the reply's final frame comes from there."""
        from batches.services import reply_cancel  # here: batches builds on the reply's modules

        settled = await db_async(reply_cancel)(
            user_id=self.scope["user"].pk, conversation_id=self.conversation.pk, message_id=frame["message"]
        )
        for entry in settled:
            if entry.payload is not None:
                await self._publish(frames.message_frame(entry.payload))

    async def on_resume(self, frame):
        if not await self._send_current_state(message_id=frame["message"]):
            raise BadFrame("not_found", "No such message in this conversation.")

    async def on_switch(self, frame):
        """Show another branch: every socket of the conversation gets the new path."""
        await self._branch_change("switch", frame["message"])

    async def on_delete(self, frame):
        """Delete a message and the branch under it: every socket of the conversation gets the path left."""
        await self._branch_change("delete", frame["message"])

    async def on_tree(self, frame):
        """Send this socket the active path as it is now (a `tree` frame without message states): a client that
        reconnects without reloading asks for it, so a switch or a deleted branch it missed is not lost; it
        then resumes any message it lacks."""
        await self.send_json(await db_async(self._tree_now)())

    HANDLERS = {
        "send": on_send, "stop": on_stop, "cancel": on_cancel, "resume": on_resume, "regenerate": on_regenerate,
        "edit": on_edit,
        "continue": on_continue, "switch": on_switch, "delete": on_delete,
        "tree": on_tree,
    }

    # --- helpers --------------------------------------------------------------------------------------

    async def _model_choice(self, frame: dict) -> str | None:
        """The frame's `model`: an offered model id, "auto", or absent (the conversation's). The list is in
        this process's memory once fetched, so checking it needs no thread."""
        model = frame.get("model")
        if model is None:
            return None
        await registry.models_refresh()
        if model != registry.AUTO and not registry.model_offered(model):
            await db_async(retired_model_refuse)(model)  # a retired one: its own refusal, naming the successor
            raise BadFrame("bad_model", "That model is not offered here.")
        return model

    async def _admit(self, action: admission.Action, **arguments) -> None:
        """Admit the turn in one hop and one transaction (chat/replies/admission.py), then tell every socket and
        start the reply. A refusal (raised to `receive`, answered on this socket) stored nothing."""
        if generation.draining:
            raise BadFrame("draining", "The server is restarting. Your message was not sent; try again in a moment.")
        admitted = await db_async(admission.reply_admit)(
            user_id=self.scope["user"].pk, session_key=self.session_ref.session_key,
            auth_hash=self.session_ref.auth_hash, conversation_id=self.conversation.pk, action=action, **arguments,
        )
        self.conversation = admitted.conversation
        try:
            for frame in admitted.frames:
                await self._publish(frame)
        finally:
            # The reply is stored and reserved: it starts even if telling other processes failed. A queued
            # (half-price) reply is the batch worker's.
            if not admitted.queued:
                await generation_start(
                    message=admitted.reply, user_id=self.scope["user"].pk, parts=admitted.parts,
                    continuing=admitted.continuing, limits=admitted.limits,
                )

    async def _branch_change(self, action, message_id: int) -> None:
        """Change the active path in one hop (a refusal is raised to `receive`; `session_ended` ends this socket
        there), then tell every socket."""
        frame = await db_async(admission.branch_change)(
            user_id=self.scope["user"].pk, session_key=self.session_ref.session_key,
            auth_hash=self.session_ref.auth_hash, conversation=self.conversation, action=action,
            message_id=message_id,
        )
        await self._publish(frame)

    async def _publish(self, frame: dict) -> None:
        await fanout().publish(self.group, frame)

    async def _send_current_state(self, *, message_id: int | None) -> bool:
        """Send a message's stored state (by default: the reply streaming now, if any).

        For a reply still streaming, the stored checkpoint goes out at once and the generation, in whatever
        process runs it, is asked for a live snapshot, which it sends straight to this socket.
        """
        payload = await db_async(self._stored_payload)(message_id)
        if payload is None:
            return False
        await self._deliver(frames.message_frame(payload))
        if payload["status"] == Message.Status.STREAMING and payload["id"] not in self.held_deltas:
            self.held_deltas[payload["id"]] = []
            local = generation.running.get(payload["id"])
            if local is not None and local.settled:
                del self.held_deltas[payload["id"]]  # its final frame is on the way, after everything it held
            elif local is not None:
                self.inbox.put_nowait(frames.message_frame(local.snapshot()))
            else:
                await self.channel_layer.group_send(
                    control_group(payload["id"]), {"type": "generation.snapshot", "reply_to": self.channel_name}
                )
            asyncio.get_running_loop().call_later(
                SNAPSHOT_WAIT_SECONDS, self._send_to_self, {"type": "snapshot.timeout", "message": payload["id"]}
            )
        return True

    def _send_to_self(self, event: dict) -> None:
        """Queue an event for this socket's own dispatch (after what the channel layer already holds for it)."""
        asyncio.ensure_future(self.channel_layer.send(self.channel_name, event))

    def _tree_now(self) -> dict:
        """The path as it is now, with the version read in the same row as its leaf (so the pair is one the
        conversation held), and no message rows: the client resumes the ones it lacks."""
        row = Conversation.objects.filter(pk=self.conversation.pk).values("current_leaf_id", "tree_version").first()
        if row is None:
            raise BadFrame("not_found", "This conversation no longer exists.")
        tree = selectors.Tree.of(self.conversation.pk)
        return frames.tree_frame(tree.path_to(row["current_leaf_id"]), tree, [], version=row["tree_version"])

    def _stored_payload(self, message_id: int | None) -> dict | None:
        """Reads only: a reply a dead process left shows as interrupted (chat/frames.py), the sweep writes it."""
        if message_id is None:
            message = selectors.streaming_message(self.conversation.pk)
        else:
            message = selectors.message_in_conversation(self.conversation, message_id)
        return frames.message_payload(message) if message else None
