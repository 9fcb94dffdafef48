"""The conversation websocket (protocol in docs/protocol.md).

A consumer handles one frame at a time, so nothing here awaits a reply: `send` starts a generation task that
the process owns, and this socket (like every other on the conversation) relays the group's frames.
"""

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404

from chat import frames, selectors, services
from chat.llm.catalog import MODELS_BY_ID
from chat.llm.generation import conversation_group, generation_for_conversation, generation_start

MAX_TEXT_LENGTH = 100_000


class BadFrame(Exception):
    def __init__(self, code: str, detail: str):
        self.code, self.detail = code, detail


class ConversationConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close()
            return
        try:
            self.conversation = await database_sync_to_async(selectors.conversation_for_user)(
                user, self.scope["url_route"]["kwargs"]["conversation_id"]
            )
        except Http404:
            await self.close()
            return
        self.group = conversation_group(self.conversation.pk)
        # Join the live feed before taking the snapshot, so no frame falls between the two.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        snapshot = await self._streaming_snapshot()
        if snapshot:
            await self.send_json(frames.message_frame(snapshot))

    async def disconnect(self, code):
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
        await self.send_json(event["frame"])

    # --- frames from the client -----------------------------------------------------------------------

    async def on_send(self, frame):
        text, model = frame.get("text"), frame.get("model")
        if not isinstance(text, str):
            raise BadFrame("bad_frame", "`text` must be a string.")
        text = text.strip()
        if not text:
            raise BadFrame("empty", "Write a message first.")
        if len(text) > MAX_TEXT_LENGTH:
            raise BadFrame("too_long", f"Messages are limited to {MAX_TEXT_LENGTH:,} characters.")
        if model is not None and model not in MODELS_BY_ID:
            raise BadFrame("bad_model", "That model is not offered here.")
        try:
            turn = await database_sync_to_async(services.turn_start)(
                conversation=self.conversation, text=text, model=model
            )
        except services.ConversationBusy:
            raise BadFrame("busy", "A reply is still being written. Wait for it or press Stop.") from None
        await self._publish(frames.message_frame(frames.message_payload(turn.user_message)))
        await self._publish(frames.message_frame(frames.message_payload(turn.assistant_message)))
        if turn.conversation_changed:
            await self._publish(frames.conversation_frame(self.conversation))
        await generation_start(message=turn.assistant_message, user_id=self.scope["user"].pk)

    async def on_stop(self, frame):
        generation = generation_for_conversation(self.conversation.pk)
        if generation is None:
            raise BadFrame("not_streaming", "Nothing is being written right now.")
        generation.stop_requested.set()

    async def on_resume(self, frame):
        message_id = frame.get("message")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise BadFrame("bad_frame", "`message` must be a message id.")
        generation = generation_for_conversation(self.conversation.pk)
        if generation is not None and generation.message_id == message_id:
            await self.send_json(frames.message_frame(await generation.snapshot()))
            return
        payload = await database_sync_to_async(self._stored_message_payload)(message_id)
        if payload is None:
            raise BadFrame("not_found", "No such message in this conversation.")
        await self.send_json(frames.message_frame(payload))

    HANDLERS = {"send": on_send, "stop": on_stop, "resume": on_resume}

    # --- helpers --------------------------------------------------------------------------------------

    async def _publish(self, frame: dict) -> None:
        await self.channel_layer.group_send(self.group, {"type": "chat.frame", "frame": frame})

    async def _streaming_snapshot(self) -> dict | None:
        generation = generation_for_conversation(self.conversation.pk)
        if generation is not None:
            return await generation.snapshot()
        return await database_sync_to_async(self._stored_streaming_payload)()

    def _stored_streaming_payload(self) -> dict | None:
        services.messages_interrupt_stale(conversation_id=self.conversation.pk)
        message = selectors.streaming_message(self.conversation.pk)
        return frames.message_payload(message) if message else None

    def _stored_message_payload(self, message_id: int) -> dict | None:
        services.messages_interrupt_stale(conversation_id=self.conversation.pk)
        message = selectors.message_in_conversation(self.conversation, message_id)
        return frames.message_payload(message) if message else None
