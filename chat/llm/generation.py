"""One reply being generated: streamed from the SDK, relayed to every socket, checkpointed, settled.

A generation is an asyncio task owned by the process, not by the websocket that asked for it: closing the
tab does not stop it, and the full reply is in the database afterwards. It publishes coalesced frames to the
conversation's channel-layer group, so every socket on the conversation (in any process) relays them.
"""

import asyncio
import collections
import dataclasses
import logging
import time

import anthropic
import httpx2
from chat.db import db_async
from channels.layers import get_channel_layer
from django.conf import settings

from chat import frames, services
from chat.llm.client import anthropic_client
from chat.llm.offline import estimate_tokens
from chat.llm.pricing import TokenUsage
from chat.llm.request import request_build
from chat.models import Message

log = logging.getLogger(__name__)

# Longest wait for the channel layer to take one frame; past it the frame is dropped, not the reply.
PUBLISH_TIMEOUT = 2.0

# Generations running in this process, by conversation id. Tasks are kept here so they are not collected.
running: dict[int, "Generation"] = {}


def conversation_group(conversation_id: int) -> str:
    """Every socket on the conversation, in every process: where frames are published."""
    return f"conversation-{conversation_id}"


def control_group(conversation_id: int) -> str:
    """The generation of the conversation, wherever it runs: where sockets send `stop` and snapshot requests."""
    return f"generation-{conversation_id}"


# Set when the process is shutting down: no new turns start, running ones finish or are checkpointed.
draining = False


class Generation:
    def __init__(self, *, message: Message, user_id: int):
        self.message_id = message.pk
        self.conversation_id = message.conversation_id
        self.user_id = user_id
        self.model = message.model
        self.created_at = message.created_at
        self.group = conversation_group(self.conversation_id)
        self.channel_layer = get_channel_layer()
        self.blocks: list[dict] = []
        self.seq = 0
        self.pending_parts: list[dict] = []
        self.outbox: collections.deque[dict] = collections.deque()
        self.has_pending = asyncio.Event()
        self.stop_requested = asyncio.Event()
        self.stop_status = Message.Status.STOPPED
        self.attempts: list[services.UpstreamAttempt] = []
        self.usage = TokenUsage()
        self.stop_reason = ""
        self.first_token_ms: int | None = None
        self.started = time.monotonic()
        self.task: asyncio.Task | None = None

    # --- what sockets see -----------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """The reply so far, as a `message` payload whose `seq` matches its content exactly.

        Pending parts become the next frame first (queued for every socket), so the copy taken here is
        exactly "everything up to seq" and nobody sees a gap.
        """
        self._queue_pending_frame()
        return {
            "id": self.message_id,
            "role": Message.Role.ASSISTANT,
            "status": Message.Status.STREAMING,
            "content": [dict(block) for block in self.blocks],
            "seq": self.seq,
            "model": self.model,
            "stop_reason": "",
            "error": "",
            "usage": {name: 0 for name in frames.USAGE_FIELDS},
            "cost": "0.000000",
            "first_token_ms": self.first_token_ms,
            "duration_ms": None,
            "created_at": frames.timestamp(self.created_at),
        }

    def _queue_pending_frame(self) -> None:
        """Turn the pending parts into the next delta frame, in the outbox that only the publisher sends from.

        Blocks are updated as deltas arrive; only the sequence number waits for a frame. One sender keeps
        frames in seq order, and nothing that waits on the channel layer can hold up a checkpoint.
        """
        if not self.pending_parts:
            return
        parts, self.pending_parts = self.pending_parts, []
        self.seq += 1
        self.outbox.append(frames.delta_frame(self.message_id, self.seq, parts))
        self.has_pending.set()

    def _add_part(self, block_index: int, block_type: str, text: str) -> None:
        if self.first_token_ms is None:
            self.first_token_ms = int((time.monotonic() - self.started) * 1000)
        last = self.pending_parts[-1] if self.pending_parts else None
        if last and last["block"] == block_index and last["type"] == block_type:
            last["text"] += text
        else:
            self.pending_parts.append({"block": block_index, "type": block_type, "text": text})
        self.has_pending.set()

    async def _publish(self, frame: dict) -> bool:
        """Best effort, and bounded: the channel layer may be down or drop frames. The reply goes on and is
        checkpointed; sockets recover what they missed with `resume`."""
        try:
            message = {"type": "chat.frame", "frame": frame}
            await asyncio.wait_for(self.channel_layer.group_send(self.group, message), PUBLISH_TIMEOUT)
            return True
        except Exception as error:
            log.warning("publishing to %s failed: %r", self.group, error)
            return False

    async def _publish_loop(self) -> None:
        """Frames at most every CHAT_FRAME_INTERVAL; the first delta goes out at once."""
        while True:
            await self.has_pending.wait()
            self.has_pending.clear()
            await self._publish_outbox()
            await asyncio.sleep(settings.CHAT_FRAME_INTERVAL)

    async def _publish_outbox(self) -> None:
        self._queue_pending_frame()
        while self.outbox:
            if not await self._publish(self.outbox.popleft()):
                # Sockets cannot be reached now; they catch up from a snapshot when they can.
                self.outbox.clear()

    async def _checkpoint_loop(self) -> None:
        """Save progress at a bounded rate, never per token, and keep the heartbeat fresh while quiet."""
        saved_seq, saved_at = 0, time.monotonic()
        while True:
            await asyncio.sleep(settings.CHAT_CHECKPOINT_INTERVAL)
            quiet_for = time.monotonic() - saved_at
            if self.pending_parts or self.seq != saved_seq or quiet_for >= settings.CHAT_HEARTBEAT_INTERVAL:
                # A snapshot, so the saved content matches its seq exactly (a socket resumes from it).
                snapshot = self.snapshot()
                await db_async(services.message_checkpoint)(
                    message_id=self.message_id, content=snapshot["content"], seq=snapshot["seq"]
                )
                saved_seq, saved_at = snapshot["seq"], time.monotonic()

    async def _control_loop(self, channel: str) -> None:
        """Answer sockets in any process: stop this reply, or send one socket the reply so far.

        Survives a channel-layer outage: it waits, joins the group again (a restarted Redis forgets groups)
        and carries on, while the reply itself goes on regardless."""
        while True:
            try:
                await self._answer_control_request(channel)
            except Exception as error:
                log.warning("control channel of generation %s failed: %r", self.message_id, error)
                await asyncio.sleep(1)
                try:
                    await self.channel_layer.group_add(control_group(self.conversation_id), channel)
                except Exception:
                    pass

    async def _answer_control_request(self, channel: str) -> None:
        request = await self.channel_layer.receive(channel)
        if request.get("type") == "generation.stop":
            self.request_stop()
        elif request.get("type") == "generation.snapshot" and isinstance(request.get("reply_to"), str):
            frame = frames.message_frame(self.snapshot())
            await self.channel_layer.send(request["reply_to"], {"type": "chat.frame", "frame": frame})

    def request_stop(self, status: str = Message.Status.STOPPED) -> None:
        """Stop streaming; the reply is saved with `status` (stopped by the user, or interrupted by shutdown)."""
        self.stop_status = status
        self.stop_requested.set()

    # --- the upstream stream --------------------------------------------------------------------------

    async def _record_attempt(self, response: httpx2.Response) -> None:
        error = ""
        if response.status_code >= 400:
            await response.aread()
            error = f"HTTP {response.status_code}: {response.text[:500]}"
        self.attempts.append(
            services.UpstreamAttempt(
                http_status=response.status_code,
                request_id=response.headers.get("request-id", ""),
                error=error,
                latency_ms=int((time.monotonic() - self.started) * 1000),
            )
        )

    def _apply_event(self, event) -> None:
        if event.type == "message_start":
            self.usage = TokenUsage.from_sdk(event.message.usage)
        elif event.type == "content_block_start":
            block = event.content_block.model_dump(mode="json", exclude_none=True)
            if block["type"] == "tool_use":
                block["input"] = {}
            self.blocks.append(block)
        elif event.type == "content_block_delta":
            self._apply_delta(len(self.blocks) - 1, event.delta)
        elif event.type == "message_delta":
            # Kept in case the stream breaks before message_stop; the final message replaces it otherwise.
            self.stop_reason = event.delta.stop_reason or ""
            self.usage = dataclasses.replace(self.usage, output_tokens=event.usage.output_tokens)

    def _apply_delta(self, index: int, delta) -> None:
        block = self.blocks[index]
        if delta.type == "text_delta":
            block["text"] = block.get("text", "") + delta.text
            self._add_part(index, "text", delta.text)
        elif delta.type == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.thinking
            self._add_part(index, "thinking", delta.thinking)
        elif delta.type == "signature_delta":
            block["signature"] = delta.signature
        elif delta.type == "input_json_delta":
            block["partial_json"] = block.get("partial_json", "") + delta.partial_json
            self._add_part(index, "tool_use", delta.partial_json)

    async def _stream(self, client: anthropic.AsyncAnthropic, request: dict) -> None:
        async with client.messages.stream(**request) as stream:
            async for event in stream:
                self._apply_event(event)
            final = await stream.get_final_message()
        self.blocks = [block.model_dump(mode="json", exclude_none=True) for block in final.content]
        self.usage = TokenUsage.from_sdk(final.usage)
        self.stop_reason = final.stop_reason or ""

    # --- the whole turn -------------------------------------------------------------------------------

    async def run(self) -> None:
        helpers = [asyncio.create_task(self._publish_loop()), asyncio.create_task(self._checkpoint_loop())]
        control = await self._join_control_group()
        if control:
            helpers.append(asyncio.create_task(self._control_loop(control)))
        status, error = Message.Status.FAILED, ""
        try:
            status, error = await self._run_stream()
        except Exception:
            log.exception("generation for message %s failed", self.message_id)
            error = "Something went wrong on our side while writing this reply. What was received is kept."
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._settle(status, error)
            await self._leave_control_group(control)
            running.pop(self.conversation_id, None)

    async def _join_control_group(self) -> str | None:
        try:
            channel = await self.channel_layer.new_channel()
            await self.channel_layer.group_add(control_group(self.conversation_id), channel)
            return channel
        except Exception as error:
            log.warning("generation %s has no control channel: %r", self.message_id, error)
            return None

    async def _leave_control_group(self, channel: str | None) -> None:
        if channel:
            try:
                await self.channel_layer.group_discard(control_group(self.conversation_id), channel)
            except Exception as error:
                log.warning("leaving the control group failed: %r", error)

    async def _run_stream(self) -> tuple[str, str]:
        request = await db_async(self._build_request)()
        client = anthropic_client(on_response=self._record_attempt)
        streaming = asyncio.create_task(self._stream(client, request))
        stop_wait = asyncio.create_task(self.stop_requested.wait())
        try:
            await asyncio.wait({streaming, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not streaming.done():
                # Cancelling leaves the SDK's `async with`, which closes the HTTP response: the upstream stops
                # generating and billing.
                streaming.cancel()
                await asyncio.gather(streaming, return_exceptions=True)
                return self.stop_status, services.STOP_REASONS.get(self.stop_status, "")
            streaming.result()
            return Message.Status.COMPLETE, ""
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            log.warning("upstream failed for message %s: %r", self.message_id, exc)
            return Message.Status.FAILED, upstream_error_reason(exc)
        finally:
            stop_wait.cancel()
            await client.close()

    def _build_request(self) -> dict:
        message = Message.objects.select_related("conversation").get(pk=self.message_id)
        return request_build(message.conversation, reply=message)

    async def _settle(self, status: str, error: str) -> None:
        """Save the reply first, then tell the sockets: a dead channel layer must not cost the reply."""
        self._queue_pending_frame()
        for block in self.blocks:
            if block.get("type") == "tool_use" and "partial_json" in block:
                block.pop("partial_json")
        usage = self.usage
        if status != Message.Status.COMPLETE:
            # The final usage never arrived: bill what was generated by estimate, as the API would have.
            generated = "".join(block.get("text", "") + block.get("thinking", "") for block in self.blocks)
            usage = dataclasses.replace(usage, output_tokens=max(usage.output_tokens, estimate_tokens(generated)))
        message = await db_async(services.message_finish)(
            message_id=self.message_id,
            user_id=self.user_id,
            conversation_id=self.conversation_id,
            status=status,
            content=self.blocks,
            seq=self.seq,
            model=self.model,
            usage=usage if self.attempts else TokenUsage(),
            stop_reason=self.stop_reason,
            error=error,
            first_token_ms=self.first_token_ms,
            duration_ms=int((time.monotonic() - self.started) * 1000),
            attempts=self.attempts,
        )
        await self._publish_outbox()
        if message is not None:
            await self._publish(frames.message_frame(frames.message_payload(message)))


def upstream_error_reason(exc: Exception) -> str:
    """A sentence a user can act on, for an upstream failure."""
    if isinstance(exc, anthropic.RateLimitError):
        return "The model is rate-limited right now. Wait a moment and try again."
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code == 529:
        return "The model is overloaded right now. Try again in a moment, or pick another model."
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code == 200:
        return f"The model stopped with an error mid-reply ({_api_error_message(exc)}). The partial reply is kept."
    if isinstance(exc, anthropic.APIStatusError):
        return f"The model answered with an error ({exc.status_code}: {_api_error_message(exc)})."
    if isinstance(exc, httpx2.TimeoutException | anthropic.APITimeoutError):
        return "The model went silent, so the reply was abandoned. The partial reply is kept."
    return "The connection to the model was lost mid-reply. The partial reply is kept."


def _api_error_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    return error.get("message") or exc.message


async def generation_start(*, message: Message, user_id: int) -> Generation:
    generation = Generation(message=message, user_id=user_id)
    running[message.conversation_id] = generation
    generation.task = asyncio.create_task(generation.run(), name=f"generation-{message.pk}")
    return generation


def generation_for_conversation(conversation_id: int) -> Generation | None:
    return running.get(conversation_id)


async def generations_drain(timeout: float) -> None:
    """Shut down gently: refuse new turns, let running replies finish for up to `timeout` seconds, then save
    the rest as interrupted with everything generated so far."""
    global draining
    draining = True
    tasks = [generation.task for generation in running.values() if generation.task]
    if not tasks:
        return
    log.info("draining %d running replies (up to %gs)", len(tasks), timeout)
    _, unfinished = await asyncio.wait(tasks, timeout=timeout)
    for generation in list(running.values()):
        generation.request_stop(Message.Status.INTERRUPTED)
    if unfinished:
        await asyncio.wait(unfinished, timeout=10)

