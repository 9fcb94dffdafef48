"""One reply being generated: streamed from the SDK, relayed to every socket, checkpointed, settled.

A generation is an asyncio task owned by the process, not by the websocket that asked for it: closing the
tab does not stop it, and the full reply is in the database afterwards. It publishes coalesced frames to the
conversation's sockets: this process's directly, other processes' through the channel layer (fanout.py).
Its life (admission, ownership token, checkpoints, settling, sweep, drain) is in docs/replies.md.

One reply may take several requests to the model, each measured against the context window first
(chat/llm/context.py): when the model asks for tools, they run concurrently and their results go back in the
next request, up to CHAT_TOOL_MAX_ROUNDS rounds; when a model stays overloaded after the SDK's retries, the
next one down the chain answers (chat/llm/routing.py). The reply's message holds it all, tool calls and results
included (chat/llm/request.py expands them into the API's turns), and every request is one entry of the ledger.

The loop is our own rather than the SDK's tool runner (`client.beta.messages.tool_runner`): that runner owns
the requests, while here every event must reach the sockets as it arrives, the reply must be checkpointed and
stoppable between and inside requests, each request needs its context measured, its fallback and its ledger
rows, and the thinking blocks must be kept exactly as sent. The tools themselves are the SDK's function tools.
"""

import asyncio
import collections
import dataclasses
import itertools
import json
import logging
import time

import anthropic
import httpx2
from channels.layers import get_channel_layer
from django.conf import settings

from billing.ledger import UpstreamAttempt, UpstreamRequest, ledger_log_unsaved
from chat import cache_stats, citations, frames, services
from chat.db import db_async
from chat.llm import context, registry, routing
from chat.llm import tools as tools_module
from chat.llm.client import anthropic_client, attempt_recorder
from chat.llm.pricing import TokenUsage
from chat.llm.request import RequestParts, request_assemble
from chat.llm.server_tools import (
    container_reuse,
    container_uploads_add,
    server_tool_use_added,
    server_tool_use_counts,
)
from chat.llm.tokens import estimate_tokens
from chat.models import ApiCall, Message
from chat.replies.checkpoints import checkpointer
from chat.replies.fanout import fanout
from filesapi.services import backend_key, request_files_reference, upstream_files_forget, upstream_files_gone

log = logging.getLogger(__name__)

FINAL_FRAME_TRIES = 3
# The Messages endpoint, whose every HTTP attempt is a ledger row; count_tokens and the Models API cost nothing.
MESSAGES_PATH = "/v1/messages"
# Calls whose input streams as JSON (input_json_delta): the app's own tools', and the ones the API runs itself.
STREAMED_CALLS = ("tool_use", "server_tool_use", "mcp_tool_use")
# Settling is retried with backoff from the first delay up to the longest, for CHAT_SETTLE_TIMEOUT seconds.
SETTLE_FIRST_DELAY = 0.25
SETTLE_LONGEST_DELAY = 5.0

# Generations running in this process, by message id (one reply, one entry: a finishing reply removes only
# itself, never the next reply of its conversation). Tasks are kept here so they are not collected.
running: dict[int, "Generation"] = {}


def conversation_group(conversation_id: int) -> str:
    """Every socket on the conversation, in every process: where frames are published."""
    return f"conversation-{conversation_id}"


def control_group(message_id: int) -> str:
    """The generation of one reply, wherever it runs: where sockets send `stop` and snapshot requests. Keyed
    by reply, so a Stop meant for one reply never stops the next one of the conversation."""
    return f"generation-{message_id}"


# Set when the process is shutting down: no new turns start, running ones finish or are checkpointed.
draining = False


@dataclasses.dataclass(frozen=True)
class ReplyLimits:
    """What the reply's reservation paid for (billing.Reservation): None is no cap."""

    reservation_id: int | None = None
    max_tokens: int | None = None
    tool_rounds: int | None = None
    notice: str = ""


class StreamCutShort(Exception):
    """The response ended without `message_stop`: the connection closed cleanly mid-reply."""


class Generation:
    def __init__(
        self, *, message: Message, user_id: int, parts: RequestParts, continuing: bool = False,
        limits: ReplyLimits = ReplyLimits(),
    ):
        self.message_id = message.pk
        self.parts = parts  # read by admission, in its transaction: the reply needs no query to start
        self.token = message.owner_token
        self.limits = limits
        self.conversation_id = message.conversation_id
        self.user_id = user_id
        self.model = message.model
        self.route_reason = message.route_reason
        self.created_at = message.created_at
        self.parent_id = message.parent_id
        self.group = conversation_group(self.conversation_id)
        self.channel_layer = get_channel_layer()
        # A continued reply (Continue after max_tokens) starts from what it said, its frames from its seq.
        self.continuing = continuing
        self.blocks: list[dict] = [dict(block) for block in message.content] if continuing else []
        self.seq = message.seq if continuing else 0
        self.notices: list[str] = list(message.notices) if continuing else []
        if limits.notice:
            self.notices.append(limits.notice)
        # Checkpoint bookkeeping (chat/replies/checkpoints.py): the seq last saved and when.
        self.saved_seq, self.saved_at = self.seq, time.monotonic()
        self.owned = True
        self.settled = False  # saved for good: no snapshot may follow the final frame
        self.pending_parts: list[dict] = []
        self.outbox: collections.deque[dict] = collections.deque()
        self.has_pending = asyncio.Event()
        self.stop_requested = asyncio.Event()
        self.stop_status = Message.Status.STOPPED
        self.requests: list[UpstreamRequest] = []
        self.is_fallback = False
        # The response streaming now: where each of its content blocks sits in `blocks`, what it said (billed by
        # estimate if it breaks off), when it started, and the block it extends when it continues a reply.
        self.positions: list[int] = []
        self.generated: list[str] = []
        self.request_started = time.monotonic()
        self.extending: tuple[int, str] | None = None  # (block position, its text before the continuation)
        self.context: tuple[int, int] | None = None  # (input tokens measured, window) of the latest request
        # The code execution container the reply's requests ran in (chat/llm/server_tools.py): the next request
        # of the reply goes on in it, with the files its code made.
        self.container: str | None = None
        self.documents: list[int] = []  # the attachments the latest request's citations count (chat/citations.py)
        self.first_token_ms: int | None = None
        self.started = time.monotonic()
        self.task: asyncio.Task | None = None

    @property
    def stop_reason(self) -> str:
        return self.requests[-1].stop_reason if self.requests else ""

    # --- what sockets see -----------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """The reply so far, as a `message` payload whose `seq` matches its content exactly.

        Pending parts become the next frame first (queued for every socket), so the copy taken here is
        exactly "everything up to seq" and nobody sees a gap.
        """
        self._queue_pending_frame()
        return {
            "id": self.message_id,
            "parent": self.parent_id,
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
            **frames.reply_fields(self.route_reason, self.notices, *(self.context or (None, None))),
        }

    def _announce(self) -> None:
        """Queue the whole reply as a `message` frame, behind the deltas before it: a notice, the model or the
        context gauge changed, which deltas do not carry."""
        self.outbox.append(frames.message_frame(self.snapshot()))
        self.has_pending.set()

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

    def _add_part(self, block_index: int, block_type: str, text: str, **opening) -> None:
        """Queue `text` for block `block_index`. `opening` fields describe a block the client creates from this
        part: a tool_use's `id` and `name`, a tool_result's `tool_use_id` and `is_error`."""
        if self.first_token_ms is None:
            self.first_token_ms = int((time.monotonic() - self.started) * 1000)
        last = self.pending_parts[-1] if self.pending_parts else None
        if last and last["block"] == block_index and last["type"] == block_type:
            last["text"] += text
        else:
            self.pending_parts.append({"block": block_index, "type": block_type, "text": text, **opening})
        self.has_pending.set()

    async def _publish(self, frame: dict, *, here: bool = True, elsewhere: bool = True) -> bool:
        """To this process's sockets always, to other processes' best effort (chat/replies/fanout.py); False
        when those could not be reached. The reply goes on and is checkpointed; sockets recover what they
        missed with `resume`."""
        return await fanout().publish(self.group, frame, here=here, elsewhere=elsewhere)

    async def _publish_loop(self) -> None:
        """Deltas at most every CHAT_FRAME_INTERVAL, the first one at once: only a delta starts the interval (a
        `message` frame such as the context gauge, sent just before the first token, does not hold it up)."""
        while True:
            await self.has_pending.wait()
            self.has_pending.clear()
            if await self._publish_outbox():
                await asyncio.sleep(settings.CHAT_FRAME_INTERVAL)

    async def _publish_outbox(self) -> bool:
        """Send what is queued, in order; True if a delta was among it."""
        self._queue_pending_frame()
        sent_delta, elsewhere = False, True
        while self.outbox:
            frame = self.outbox.popleft()
            sent_delta = sent_delta or frame["type"] == "delta"
            # Once other processes cannot be reached, the rest of this batch goes to this process only (they
            # catch up from a snapshot), so a slow channel layer never holds up local sockets frame by frame.
            elsewhere = await self._publish(frame, elsewhere=elsewhere) and elsewhere
        return sent_delta

    def checkpoint_due(self, now: float) -> tuple[list[dict] | None, int] | None:
        """What the checkpointer should write now: (content, seq) when the reply changed since it was last
        saved, (None, seq) for a heartbeat alone when it has been quiet, None when nothing is due."""
        if self.pending_parts or self.seq != self.saved_seq:
            # A snapshot, so the saved content matches its seq exactly (a socket resumes from it).
            snapshot = self.snapshot()
            return snapshot["content"], snapshot["seq"]
        if now - self.saved_at >= settings.CHAT_HEARTBEAT_INTERVAL:
            return None, self.seq
        return None

    def checkpointed(self, seq: int, at: float) -> None:
        self.saved_seq, self.saved_at = seq, at

    def ownership_lost(self) -> None:
        """The reply is no longer ours (stopped elsewhere, swept as stale, deleted): stop spending on it. Its
        ledger rows are still written when it settles; its row keeps what the other writer left."""
        if self.owned and not self.settled:
            log.warning("reply %s is no longer owned by its generation; stopping it", self.message_id)
            self.owned = False
            self.request_stop(Message.Status.STOPPED)

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
                    await self.channel_layer.group_add(control_group(self.message_id), channel)
                except Exception:
                    pass

    async def _answer_control_request(self, channel: str) -> None:
        request = await self.channel_layer.receive(channel)
        if request.get("type") == "generation.stop":
            self.request_stop()
        elif request.get("type") == "generation.snapshot" and isinstance(request.get("reply_to"), str):
            if not self.settled:  # the final frame is on its way and supersedes any snapshot
                await fanout().send_to(request["reply_to"], frames.message_frame(self.snapshot()))

    def request_stop(self, status: str = Message.Status.STOPPED) -> None:
        """Stop streaming; the reply is saved with `status` (stopped by the user, or interrupted by shutdown)."""
        self.stop_status = status
        self.stop_requested.set()

    # --- the upstream requests -----------------------------------------------------------------------------

    async def _record_attempt(self, response: httpx2.Response) -> None:
        """Every HTTP attempt at the Messages endpoint, retries included, belongs to the request being made."""
        attempt = await upstream_attempt(response, self.request_started)
        if attempt is not None:
            self.requests[-1].attempts.append(attempt)

    def _apply_event(self, upstream: UpstreamRequest, event) -> bool:
        """Apply one raw stream event to the reply; True at `message_stop`.

        Raw events, not the SDK's accumulating MessageStream: that helper rebuilds a snapshot of the whole
        message on every event (its text grows by concatenation), which was the largest part of a stream's CPU
        here, while the reply's blocks are built below anyway.
        """
        if event.type == "content_block_delta":
            if upstream.first_token_ms is None:
                upstream.first_token_ms = int((time.monotonic() - self.request_started) * 1000)
            self._apply_delta(self.positions[event.index], event.delta)
        elif event.type == "content_block_start":
            self._start_block(event.content_block.model_dump(mode="json", exclude_none=True))
        elif event.type == "content_block_stop":
            self._finish_block(self.positions[event.index])
        elif event.type == "message_start":
            upstream.usage = TokenUsage.from_sdk(event.message.usage)
            upstream.server_tool_use = server_tool_use_counts(event.message.usage)
            self.container = event.message.container.id if event.message.container else self.container
        elif event.type == "message_delta":
            upstream.stop_reason = event.delta.stop_reason or ""
            upstream.usage = _usage_updated(upstream.usage, event.usage)
            upstream.server_tool_use = server_tool_use_counts(event.usage) or upstream.server_tool_use
            self.container = event.delta.container.id if event.delta.container else self.container
        return event.type == "message_stop"

    def _start_block(self, block: dict) -> None:
        """A new content block: appended to the reply, except the first text of a continuation, which goes on
        the end of the text it continues."""
        if self.extending and not self.positions and block["type"] == "text":
            self.positions.append(self.extending[0])
            self.blocks[self.extending[0]]["text"] += block.get("text", "")
            return
        if block["type"] in STREAMED_CALLS:
            block["input"], block["partial_json"] = {}, ""
        self.blocks.append(block)
        self.positions.append(len(self.blocks) - 1)
        if block["type"] in STREAMED_CALLS:
            opening = {key: block[key] for key in ("id", "name", "server_name") if key in block}
            self._add_part(len(self.blocks) - 1, block["type"], "", **opening)
        elif block["type"].endswith("_tool_result"):
            # A server tool's result comes whole (web_search_tool_result, ...): one part opens it on the client.
            self._add_part(len(self.blocks) - 1, block["type"], "", **{
                key: value for key, value in block.items() if key != "type"
            })

    def _apply_delta(self, index: int, delta) -> None:
        block = self.blocks[index]
        if delta.type == "text_delta":
            block["text"] = block.get("text", "") + delta.text
            self._add_part(index, "text", delta.text)
            self.generated.append(delta.text)
        elif delta.type == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.thinking
            self._add_part(index, "thinking", delta.thinking)
            self.generated.append(delta.thinking)
        elif delta.type == "signature_delta":
            block["signature"] = delta.signature
        elif delta.type == "citations_delta":
            # Kept on the text block it cites for; the page's part carries it beside the block's text.
            # A new list, not an append: a snapshot (`snapshot`) shares the block's lists, and must keep
            # exactly what its seq covers.
            citation = citations.citation_stored(delta.citation, self.documents)
            block["citations"] = [*(block.get("citations") or ()), citation]
            self._add_part(index, "text", "")
            self.pending_parts[-1].setdefault("citations", []).append(citation)
        elif delta.type == "input_json_delta":
            block["partial_json"] = block.get("partial_json", "") + delta.partial_json
            self._add_part(index, block["type"], delta.partial_json)
            self.generated.append(delta.partial_json)

    def _finish_block(self, index: int) -> None:
        """A block is complete: a tool call's streamed JSON becomes its input, as the API sent it."""
        block = self.blocks[index]
        if block["type"] in STREAMED_CALLS and "partial_json" in block:
            block["input"] = json.loads(block.pop("partial_json") or "{}")

    async def _request(self, client: anthropic.AsyncAnthropic, request: dict) -> None:
        """Stream one response into the reply. Its ledger entry is `self.requests[-1]`, whatever happens: a
        request that never got an HTTP response (connection refused, DNS, TLS) is a row with its error too."""
        upstream = UpstreamRequest(model=request["model"], status=ApiCall.Status.ERROR)
        upstream.is_fallback = self.is_fallback
        self.requests.append(upstream)
        self.positions, self.generated, self.request_started = [], [], time.monotonic()
        try:
            # A request with `betas` (the MCP connector's, chat/llm/mcp.py) goes to the beta Messages API.
            messages = client.beta.messages if "betas" in request else client.messages
            stream = await messages.create(**request, stream=True)
            async with stream:
                finished = False
                async for event in stream:
                    finished = self._apply_event(upstream, event)
            if not finished:
                raise StreamCutShort
            upstream.status = ApiCall.Status.OK
        except asyncio.CancelledError:
            upstream.status = ApiCall.Status.STOPPED
            raise
        except (anthropic.APIError, httpx2.HTTPError, StreamCutShort) as exc:
            upstream.error = upstream_error_reason(exc)
            raise
        finally:
            upstream.latency_ms = int((time.monotonic() - self.request_started) * 1000)
            if upstream.status != ApiCall.Status.OK:
                # The final usage never arrived: bill what was generated by estimate, as the API would have.
                generated = estimate_tokens("".join(self.generated))
                upstream.usage = dataclasses.replace(
                    upstream.usage, output_tokens=max(upstream.usage.output_tokens, generated)
                )

    async def _request_with_files(self, client: anthropic.AsyncAnthropic, request: dict, attachments) -> None:
        """`_request`, with the attachments sent by file_id where the Files API serves (filesapi/services.py).
        A request refused because a file expired or was deleted upstream forgets it and is sent once more,
        uploading it again: the user sees a reply, not the API's 404."""
        sent, file_ids = await request_files_reference(client, request, attachments)
        try:
            await self._request(client, container_uploads_add(sent))
        except anthropic.APIStatusError as error:
            gone = upstream_files_gone(error, file_ids)
            if not gone or self.positions:
                raise
            log.info("files %s are gone upstream; uploading them again", ", ".join(sorted(gone)))
            await db_async(upstream_files_forget)(file_ids=gone, backend=backend_key(client))
            sent, _ = await request_files_reference(client, request, attachments)
            await self._request(client, container_uploads_add(sent))

    async def _respond(
        self, client: anthropic.AsyncAnthropic, parts: RequestParts, *, continuing: bool, resuming: bool = False
    ) -> None:
        """One response to the conversation as it stands, measured to fit first, from the reply's model or,
        while that one stays overloaded (529 after the SDK's retries), from the next one down the chain."""
        while True:
            await registry.models_refresh()
            model = registry.model_for(self.model)  # memory only: no thread hop
            # The admin's max_uses is per reply: a later request offers only what the earlier ones left.
            used = server_tool_use_added(upstream.server_tool_use for upstream in self.requests)

            def assemble(left_out: int) -> dict:
                request = request_assemble(
                    parts, model=model, reply_blocks=self.blocks, left_out=left_out, continuing=continuing,
                    resuming=resuming, server_tools_used=used,
                )
                container_reuse(request, self.container)
                return self._within_limits(request)

            fitted = await context.request_fit(client, parts, model, assemble)
            self._measured(fitted)
            self.documents = citations.documents_sent(parts, fitted.request)
            try:
                await self._request_with_files(client, fitted.request, parts.attachments)
                return
            except anthropic.OverloadedError:
                fallback = routing.fallback_model(self.model)
                if fallback is None or self.positions:
                    raise
                self.notices.append(
                    f"{model.display_name} was overloaded, so {fallback.display_name} wrote this reply instead."
                )
                self.model, self.is_fallback = fallback.id, True
                self._announce()

    def _within_limits(self, request: dict) -> dict:
        """The request cut to what the reservation paid for, when the budget could not cover a full reply: no
        tool calls, fewer output tokens and no thinking (whose budget would not fit beside an answer)."""
        if self.limits.tool_rounds == 0 and "tools" in request:
            request["tool_choice"] = {"type": "none"}  # the budget has no room for a tool round
        cap = self.limits.max_tokens
        if cap is not None and request["max_tokens"] > cap:
            request["max_tokens"] = cap
            request.pop("thinking", None)
            request.pop("output_config", None)
        return request

    def _measured(self, fitted: context.Fitted) -> None:
        self.context = (fitted.tokens, fitted.window)
        notice = fitted.notice()
        if notice and notice not in self.notices:
            self.notices.append(notice)
        self._announce()

    async def _converse(self) -> None:
        """Ask the model, run the tools it asks for, and ask again with their results, until it answers. A turn
        the API paused (`pause_turn`: a long run of server tools) is sent back as it stands so the model carries
        on, within the same limit on rounds."""
        parts = self.parts
        if self.continuing and self.blocks and self.blocks[-1].get("type") == "text":
            self.extending = (len(self.blocks) - 1, self.blocks[-1]["text"])
        attempt_recorder.set(self._record_attempt)
        client = anthropic_client()
        resuming = False
        for rounds in itertools.count():
            await self._respond(client, parts, continuing=self.continuing and rounds == 0, resuming=resuming)
            self.extending = None
            resuming = self.stop_reason == "pause_turn"
            if self.stop_reason not in ("tool_use", "pause_turn"):
                return
            if rounds == self._tool_rounds:
                self.notices.append(
                    "The reply ends here: it asked for a tool, and this reply's budget has no room for tool calls."
                    if self._tool_rounds < settings.CHAT_TOOL_MAX_ROUNDS else
                    f"The reply ends here: it asked for tools again after {rounds} rounds of tool calls, "
                    "the most one reply may make."
                )
                return
            if resuming:
                continue
            calls = [self.blocks[p] for p in self.positions if self.blocks[p]["type"] == "tool_use"]
            await self._run_tools(calls, parts.tools)

    @property
    def _tool_rounds(self) -> int:
        if self.limits.tool_rounds is not None:
            return min(self.limits.tool_rounds, settings.CHAT_TOOL_MAX_ROUNDS)
        return settings.CHAT_TOOL_MAX_ROUNDS

    async def _run_tools(self, calls: list[dict], tools: list) -> None:
        """Run the calls concurrently; each result is streamed as a `tool_result` part and kept in the reply."""
        for result in await tools_module.tool_results(calls, tools):
            self.blocks.append(result)
            opening = {"tool_use_id": result["tool_use_id"]}
            if result.get("is_error"):
                opening["is_error"] = True
            self._add_part(len(self.blocks) - 1, "tool_result", result["content"], **opening)

    # --- the whole turn -------------------------------------------------------------------------------------

    async def run(self) -> None:
        checkpoints = checkpointer()
        checkpoints.register(self)
        helpers = [asyncio.create_task(self._publish_loop())]
        control = await self._join_control_group()
        helpers.append(asyncio.create_task(self._control_loop(control)))
        status, error = Message.Status.FAILED, ""
        try:
            status, error = await self._run_until_stopped()
        except Exception:
            log.exception("generation for message %s failed", self.message_id)
            error = "Something went wrong on our side while writing this reply. What was received is kept."
        finally:
            for helper in helpers:
                helper.cancel()
            # The heartbeat goes on until the reply is settled: a reply being saved (or waiting for the database
            # to come back) must not look dead to a socket or a sweep meanwhile.
            try:
                await self._settle(status, error)
            finally:
                checkpoints.unregister(self)
                await asyncio.wait(helpers, timeout=5)
                await self._leave_control_group(control)
                if running.get(self.message_id) is self:
                    del running[self.message_id]

    async def _join_control_group(self) -> str:
        """The reply's control channel (a name made here); joining its group is retried by the control loop
        when the layer is down now, so Stop and snapshots from other processes arrive once it is back."""
        channel = await self.channel_layer.new_channel()
        try:
            await self.channel_layer.group_add(control_group(self.message_id), channel)
        except Exception as error:
            log.warning("generation %s could not join its control group yet: %r", self.message_id, error)
        return channel

    async def _leave_control_group(self, channel: str) -> None:
        try:
            await self.channel_layer.group_discard(control_group(self.message_id), channel)
        except Exception as error:
            log.warning("leaving the control group failed: %r", error)

    async def _run_until_stopped(self) -> tuple[str, str]:
        """The conversation with the model, until it ends or the user stops it, wherever it is: streaming,
        measuring or running tools."""
        conversing = asyncio.create_task(self._converse())
        stop_wait = asyncio.create_task(self.stop_requested.wait())
        try:
            await asyncio.wait({conversing, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not conversing.done():
                # Cancelling leaves the SDK's `async with`, which closes the HTTP response: the upstream stops
                # generating and billing.
                conversing.cancel()
                await asyncio.gather(conversing, return_exceptions=True)
                return self.stop_status, services.STOP_REASONS.get(self.stop_status, "")
            conversing.result()
            return Message.Status.COMPLETE, ""
        except (anthropic.APIError, httpx2.HTTPError, StreamCutShort) as exc:
            log.warning("upstream failed for message %s: %r", self.message_id, exc)
            return Message.Status.FAILED, upstream_error_reason(exc)
        except context.ContextTooLong as refusal:
            await self._publish(frames.error_frame("context_too_long", str(refusal), self.message_id))
            return Message.Status.FAILED, str(refusal)
        finally:
            stop_wait.cancel()

    async def _settle(self, status: str, error: str) -> None:
        """Save the reply first, then tell the sockets: a dead channel layer must not cost the reply.

        Saving is retried with backoff for CHAT_SETTLE_TIMEOUT seconds (a database restart or failover must
        not lose a reply) while the checkpointer keeps the heartbeat going. If it still fails, the ledger rows
        go to the log as one `api_call_unsaved` line for `manage.py ledger_replay`, and the reply keeps its
        last checkpoint until the stale sweep marks it interrupted.

        A tool_use cut off mid-stream, or never run because the reply stopped, keeps no result; later requests
        leave it out (chat/llm/request.py), so the history stays valid.
        """
        self._queue_pending_frame()
        for block in self.blocks:
            block.pop("partial_json", None)
        gauge = None
        if self.context and self.requests:
            # The API's own count of the last request when it came (the measure before it may be an estimate).
            usage = self.requests[-1].usage
            measured = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
            gauge = ((measured or self.context[0]) + usage.output_tokens, self.context[1])
        finish = dict(
            message_id=self.message_id,
            user_id=self.user_id,
            conversation_id=self.conversation_id,
            token=self.token,
            reservation_id=self.limits.reservation_id,
            status=status,
            content=self.blocks,
            seq=self.seq,
            model=self.model,
            stop_reason=self.stop_reason if status == Message.Status.COMPLETE else "",
            error=error,
            first_token_ms=self.first_token_ms,
            duration_ms=int((time.monotonic() - self.started) * 1000),
            requests=self.requests,
            notices=self.notices,
            context=gauge,
        )
        deadline, delay = time.monotonic() + settings.CHAT_SETTLE_TIMEOUT, SETTLE_FIRST_DELAY
        while True:
            try:
                message = await db_async(services.message_finish)(**finish)
                break
            except Exception:
                if time.monotonic() + delay > deadline:
                    log.exception("settling reply %s failed for good", self.message_id)
                    ledger_log_unsaved(
                        self.requests, user_id=self.user_id, conversation_id=self.conversation_id,
                        message_id=self.message_id, settle_key=f"{self.message_id}:{self.token}",
                    )
                    await self._fail_for_good()
                    return
                log.warning("settling reply %s failed; retrying in %gs", self.message_id, delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, SETTLE_LONGEST_DELAY)
        self.settled = True
        await self._publish_outbox()
        if message is not None:
            # The final state is the frame a client cannot infer from a gap: other processes get it harder
            # than a delta, this one's sockets once.
            try:
                cache = await db_async(cache_stats.reply_cache_payload)(message)
            except Exception:  # the reply is settled: a read failing now only leaves its cache numbers out
                log.exception("reading the cache numbers of reply %s failed", self.message_id)
                cache = None
            final = frames.message_frame(frames.message_payload(message, cache=cache))
            delivered = await self._publish(final)
            for _ in range(FINAL_FRAME_TRIES - 1):
                if delivered:
                    break
                delivered = await self._publish(final, here=False)
            if message.status == Message.Status.COMPLETE:
                from chat import titles  # here, not above: titles builds on this module

                titles.title_start(conversation_id=self.conversation_id, reply_id=self.message_id)


    async def _fail_for_good(self) -> None:
        """Mark the reply failed with what it generated (if the database takes even that); else it keeps its
        last checkpoint until the sweep marks it interrupted."""
        try:
            await db_async(services.message_fail)(
                message_id=self.message_id, token=self.token, content=self.blocks, seq=self.seq,
                error=SETTLE_FAILED_REASON,
            )
        except Exception:
            log.exception("marking reply %s failed also failed", self.message_id)


SETTLE_FAILED_REASON = "This reply could not be saved in full. What it had written is kept."


async def upstream_attempt(response: httpx2.Response, started: float) -> UpstreamAttempt | None:
    """The ledger's account of one HTTP response of the Messages endpoint (None for any other endpoint: they
    cost nothing), `started` being the request's `time.monotonic()`."""
    if not response.request.url.path.endswith(MESSAGES_PATH):
        return None
    error = ""
    if response.status_code >= 400:
        await response.aread()
        error = f"HTTP {response.status_code}: {response.text[:500]}"
    return UpstreamAttempt(
        http_status=response.status_code,
        request_id=response.headers.get("request-id", ""),
        error=error,
        latency_ms=int((time.monotonic() - started) * 1000),
    )


def _usage_updated(usage: TokenUsage, delta_usage) -> TokenUsage:
    """`message_delta` usage is cumulative; the fields it leaves null keep what `message_start` said."""
    changes = {"output_tokens": delta_usage.output_tokens or 0}
    for name in ("input_tokens", "cache_read_input_tokens"):
        if getattr(delta_usage, name, None) is not None:
            changes[name] = getattr(delta_usage, name)
    return dataclasses.replace(usage, **changes)


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
    if isinstance(exc, anthropic.APIConnectionError):
        return "The model could not be reached. Try again in a moment."
    return "The connection to the model was lost mid-reply. The partial reply is kept."


def _api_error_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    return error.get("message") or exc.message


async def generation_start(
    *, message: Message, user_id: int, parts: RequestParts, continuing: bool = False,
    limits: ReplyLimits = ReplyLimits(),
) -> Generation:
    generation = Generation(message=message, user_id=user_id, parts=parts, continuing=continuing, limits=limits)
    running[message.pk] = generation
    generation.task = asyncio.create_task(generation.run(), name=f"generation-{message.pk}")
    generation.task.add_done_callback(_log_if_failed)
    return generation


def _log_if_failed(task: asyncio.Task) -> None:
    """A generation must never die silently: its message would stay `streaming` until it goes stale."""
    if not task.cancelled() and task.exception() is not None:
        log.error("generation task %s died", task.get_name(), exc_info=task.exception())


async def reply_stop(message_id: int, status: str = Message.Status.STOPPED) -> None:
    """Stop one reply wherever it runs: here directly, elsewhere through its control group."""
    generation = running.get(message_id)
    if generation is not None:
        generation.request_stop(status)
        return
    await get_channel_layer().group_send(control_group(message_id), {"type": "generation.stop"})


async def generations_drain(timeout: float) -> None:
    """Shut down gently: refuse new turns, let running replies finish for up to `timeout` seconds, then save
    the rest as interrupted with everything generated so far, and wait until every one is settled."""
    global draining
    draining = True
    from chat import titles  # here, not above: titles builds on this module

    # Titles are stopped at once (their rows still written): a lost title is harmless, a slow shutdown is not.
    stopping_titles = asyncio.create_task(titles.titles_stop())
    tasks = [generation.task for generation in running.values() if generation.task]
    if not tasks:
        await stopping_titles
        return
    log.info("draining %d running replies (up to %gs)", len(tasks), timeout)
    await asyncio.wait(tasks, timeout=timeout)
    # Settling retries for CHAT_SETTLE_TIMEOUT at most; waiting past that would wait on nothing.
    deadline = time.monotonic() + settings.CHAT_SETTLE_TIMEOUT + 10
    # Read again each round: a turn admitted just before `draining` was set starts its reply after it.
    while running and time.monotonic() < deadline:
        for generation in list(running.values()):
            generation.request_stop(Message.Status.INTERRUPTED)
        tasks = [generation.task for generation in running.values() if generation.task]
        await asyncio.wait(tasks, timeout=min(1.0, max(deadline - time.monotonic(), 0.01)))
    await stopping_titles
