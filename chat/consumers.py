"""The conversation websocket (protocol in docs/protocol.md).

A consumer handles one frame at a time, so nothing here awaits a reply: `send` starts a generation task that
the process owns, and this socket (like every other on the conversation) relays the group's frames.
"""

import asyncio
import json
import logging

from chat.db import db_async
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http import Http404

from billing import services as billing_services
from chat import frames, selectors, services
from chat.attachments.limits import MAX_ATTACHMENTS_PER_MESSAGE, AttachmentRefused
from chat.models import Message
from chat.llm import registry, routing
from chat.replies import generation
from chat.replies.generation import control_group, conversation_group, generation_start

log = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 100_000
BUSY_DETAIL = "A reply is still being written. Wait for it or press Stop."
# Application close codes must be 1000 or 3000-4999 (autobahn refuses others); 4503 reads as "unavailable".
LAYER_DOWN_CLOSE_CODE = 4503
LAYER_DOWN_DETAIL = "Live updates are unavailable right now. Reconnecting; nothing written so far is lost."
# How long a socket holds back a reply's deltas while waiting for the generation's live snapshot.
SNAPSHOT_WAIT_SECONDS = 2.0


class BadFrame(Exception):
    def __init__(self, code: str, detail: str):
        self.code, self.detail = code, detail


def _attachment_ids(frame: dict) -> list[int]:
    """The `attachments` of a send frame: ids of the user's uploads, checked for shape here, for ownership when
    the message claims them."""
    ids = frame.get("attachments", [])
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise BadFrame("bad_frame", "`attachments` must be a list of attachment ids.")
    if len(ids) > MAX_ATTACHMENTS_PER_MESSAGE:
        raise BadFrame(
            "too_many_attachments", f"A message can carry at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments."
        )
    return ids


def _message_id(frame: dict) -> int:
    message_id = frame.get("message")
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise BadFrame("bad_frame", "`message` must be a message id.")
    return message_id


def _check_length(text: str) -> None:
    if len(text) > MAX_TEXT_LENGTH:
        raise BadFrame("too_long", f"Messages are limited to {MAX_TEXT_LENGTH:,} characters.")


def _check_not_draining() -> None:
    if generation.draining:
        raise BadFrame("draining", "The server is restarting. Your message was not sent; try again in a moment.")


def _attachment_count(message: Message) -> int:
    return sum(block.get("type") == "attachment" for block in message.content)


class ConversationConsumer(AsyncJsonWebsocketConsumer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.held_deltas: dict[int, list[dict]] = {}
        # Per reply, the seq this socket's client already has: later copies of those frames are dropped here.
        self.delivered_seq: dict[int, int] = {}
        self.accepted = False

    async def __call__(self, scope, receive, send):
        """If the live feed fails (Redis down), tell the client plainly and close, so it reconnects later and
        catches up from the database; replies keep being generated and saved meanwhile."""
        try:
            await super().__call__(scope, receive, send)
        except Exception:
            log.exception("conversation socket failed")
            frame = frames.error_frame("unavailable", LAYER_DOWN_DETAIL)
            try:
                if self.accepted:
                    await send({"type": "websocket.send", "text": json.dumps(frame)})
                await send({"type": "websocket.close", "code": LAYER_DOWN_CLOSE_CODE})
            except Exception:
                pass

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
        self.group = conversation_group(self.conversation.pk)
        # Join the live feed before taking the snapshot, so no frame falls between the two.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.accepted = True
        self.probe_task = asyncio.create_task(self._probe_layer())
        await self._send_current_state(message_id=None)

    async def disconnect(self, code):
        if hasattr(self, "probe_task"):
            self.probe_task.cancel()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        """Every frame is untrusted: anything malformed gets an error frame and the socket stays usable."""
        try:
            frame = json.loads(text_data) if text_data is not None else None
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                raise BadFrame("bad_frame", "Frames must be JSON objects with a string `type`.")
            handler = self.HANDLERS.get(frame["type"])
            if handler is None:
                raise BadFrame("bad_frame", f"Unknown frame type {frame['type'][:40]!r}.")
            await handler(self, frame)
        except json.JSONDecodeError:
            await self.send_json(frames.error_frame("bad_frame", "Frames must be valid JSON."))
        except BadFrame as error:
            await self.send_json(frames.error_frame(error.code, error.detail))

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
        text = frame.get("text")
        if not isinstance(text, str):
            raise BadFrame("bad_frame", "`text` must be a string.")
        text, attachment_ids = text.strip(), _attachment_ids(frame)
        if not text and not attachment_ids:
            raise BadFrame("empty", "Write a message first.")
        _check_length(text)
        choice = await self._model_choice(frame)
        route = await self._route(choice, text=text, attachment_count=len(attachment_ids))
        if not await self._admitted(text=text, model=route.model, attachment_ids=attachment_ids):
            return
        try:
            turn = await db_async(services.turn_start)(
                conversation=self.conversation, text=text, model=choice, attachment_ids=attachment_ids,
                reply_model=route.model, route_reason=route.reason,
            )
        except services.ConversationBusy:
            raise BadFrame("busy", BUSY_DETAIL) from None
        except AttachmentRefused as refusal:
            raise BadFrame(refusal.code, refusal.detail) from None
        await self._reply_start(turn)

    async def on_regenerate(self, frame):
        """Write the last reply again (optionally with another `model`)."""
        choice = await self._model_choice(frame)
        question = await db_async(selectors.last_user_message)(self.conversation)
        if question is None:
            raise BadFrame("nothing_to_regenerate", "There is no reply to write again.")
        route = await self._route(choice, text=question.text, attachment_count=_attachment_count(question))
        if not await self._admitted(text="", model=route.model):
            return
        await self._reply_start(await self._redo(
            services.turn_regenerate, conversation=self.conversation, model=choice, reply_model=route.model,
            route_reason=route.reason,
        ))

    async def on_edit(self, frame):
        """Replace the text of the last user message and write its reply again."""
        message_id, text = _message_id(frame), frame.get("text")
        if not isinstance(text, str):
            raise BadFrame("bad_frame", "`text` must be a string.")
        text = text.strip()
        _check_length(text)
        choice = await self._model_choice(frame)
        message = await db_async(selectors.message_in_conversation)(self.conversation, message_id)
        if message is None:
            raise BadFrame("not_found", "No such message in this conversation.")
        route = await self._route(choice, text=text, attachment_count=_attachment_count(message))
        if not await self._admitted(text=text, model=route.model):
            return
        await self._reply_start(await self._redo(
            services.turn_edit, conversation=self.conversation, message=message, text=text, model=choice,
            reply_model=route.model, route_reason=route.reason,
        ))

    async def on_continue(self, frame):
        """Extend a reply that max_tokens cut short: the same message grows, its `seq` carries on."""
        message = await db_async(selectors.message_in_conversation)(self.conversation, _message_id(frame))
        if message is None:
            raise BadFrame("not_found", "No such message in this conversation.")
        _check_not_draining()
        if not await self._admitted(text="", model=message.model):
            return
        message = await self._redo(services.message_continue_start, message=message)
        await self._publish(frames.message_frame(frames.message_payload(message)))
        await generation_start(message=message, user_id=self.scope["user"].pk, continuing=True)

    async def on_stop(self, frame):
        streaming = await db_async(selectors.streaming_message)(self.conversation.pk)
        if streaming is None:
            raise BadFrame("not_streaming", "Nothing is being written right now.")
        await self.channel_layer.group_send(control_group(self.conversation.pk), {"type": "generation.stop"})

    async def on_resume(self, frame):
        if not await self._send_current_state(message_id=_message_id(frame)):
            raise BadFrame("not_found", "No such message in this conversation.")

    HANDLERS = {
        "send": on_send, "stop": on_stop, "resume": on_resume, "regenerate": on_regenerate, "edit": on_edit,
        "continue": on_continue,
    }

    # --- helpers --------------------------------------------------------------------------------------

    async def _model_choice(self, frame: dict) -> str | None:
        """The frame's `model`: an offered model id, "auto", or absent (the conversation's)."""
        model = frame.get("model")
        if model is None:
            return None
        if not isinstance(model, str):
            raise BadFrame("bad_frame", "`model` must be a model id.")
        await registry.models_refresh()
        if model != registry.AUTO and not await db_async(registry.model_offered)(model):
            raise BadFrame("bad_model", "That model is not offered here.")
        return model

    async def _route(self, choice: str | None, *, text: str, attachment_count: int) -> routing.Route:
        """The model that answers, refusing first if the process is shutting down."""
        _check_not_draining()
        return await db_async(routing.route)(
            choice or self.conversation.model, text=text, attachment_count=attachment_count
        )

    async def _admitted(self, *, text: str, model: str, attachment_ids: list[int] = ()) -> bool:
        """Budget and rate limits, before anything is stored or sent upstream; a refusal is answered here."""
        try:
            await db_async(billing_services.request_admit)(
                user_id=self.scope["user"].pk, conversation=self.conversation, text=text, model=model,
                attachment_ids=attachment_ids,
            )
            return True
        except billing_services.RequestRefused as refusal:
            error = frames.error_frame(refusal.code, refusal.detail)
            if refusal.retry_after is not None:
                error["retry_after"] = refusal.retry_after
            await self.send_json(error)
            return False

    async def _redo(self, service, **arguments):
        """Call a service that reopens the conversation for a reply; its refusals become error frames."""
        try:
            return await db_async(service)(**arguments)
        except services.ConversationBusy:
            raise BadFrame("busy", BUSY_DETAIL) from None
        except services.TurnRefused as refusal:
            raise BadFrame(refusal.code, refusal.detail) from None

    async def _reply_start(self, turn: services.Turn) -> None:
        for message_id in turn.removed_message_ids:
            await self._publish(frames.removed_frame(message_id))
        await self._publish(frames.message_frame(frames.message_payload(turn.user_message)))
        await self._publish(frames.message_frame(frames.message_payload(turn.assistant_message)))
        if turn.conversation_changed:
            await self._publish(frames.conversation_frame(self.conversation))
        await generation_start(message=turn.assistant_message, user_id=self.scope["user"].pk)

    async def _publish(self, frame: dict) -> None:
        await self.channel_layer.group_send(self.group, {"type": "chat.frame", "frame": frame})

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
            await self.channel_layer.group_send(
                control_group(self.conversation.pk), {"type": "generation.snapshot", "reply_to": self.channel_name}
            )
            asyncio.get_running_loop().call_later(
                SNAPSHOT_WAIT_SECONDS, self._send_to_self, {"type": "snapshot.timeout", "message": payload["id"]}
            )
        return True

    def _send_to_self(self, event: dict) -> None:
        """Queue an event behind the frames already waiting, so it is handled in order with them."""
        asyncio.ensure_future(self.channel_layer.send(self.channel_name, event))

    def _stored_payload(self, message_id: int | None) -> dict | None:
        services.messages_interrupt_stale(conversation_id=self.conversation.pk)
        if message_id is None:
            message = selectors.streaming_message(self.conversation.pk)
        else:
            message = selectors.message_in_conversation(self.conversation, message_id)
        return frames.message_payload(message) if message else None
