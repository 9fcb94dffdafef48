"""The offline model: the Messages, count_tokens, Models, Message Batches and Files endpoints, answered in
process for the real SDK.

Responses are real HTTP responses with real SSE bytes, streamed chunk by chunk from an async generator, so the
SDK parses exactly what it would parse from the API. Faults injected by tests and benchmarks are consumed by
the next requests to /v1/messages, in order.
"""

import asyncio
import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx2
from django.conf import settings

from chat.llm.catalog import MODELS, MODELS_BY_ID, ModelSpec
from chat.llm.offline.batches import BATCHES_PATH, BatchRefused, OfflineBatches
from chat.llm.offline.blocks import TOOL_CALLS
from chat.llm.offline.cache import CacheUsage, PromptCache
from chat.llm.offline.features import code_execution, web
from chat.llm.offline.files import FILES_PATH, FileRefused, offline_files
from chat.llm.offline.prompt import InvalidRequest, Prompt, estimate_tokens, read_prompt
from chat.llm.offline.ratelimit import rate_limits
from chat.llm.offline.reply import (
    ReplyBlock,
    compose_reply,
    fit_reply,
    stop_at_sequences,
    thinking_signature,
    token_chunks,
)
from chat.llm.offline.threads import OfflineThreads
from chat.llm.offline.validation import ApiRefusal, check_credentials

# Faults that answer with an HTTP error before any byte of the reply: (status, error type, message).
STATUS_FAULTS = {
    "rate_limit": (429, "rate_limit_error", "This request would exceed your rate limit (offline fault)."),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
}
# Faults that strike in the middle of a streamed reply.
STREAM_FAULTS = ("error_event", "disconnect", "stall")
FAULT_KINDS = (*STATUS_FAULTS, *STREAM_FAULTS)
MAX_MODELS_PAGE = 1000
# How many /v1/messages request bodies `received` keeps, newest last.
RECEIVED_KEPT = 100

# Per content block type: the delta that streams it (type, field), and the empty block that opens it.
DELTA_FIELDS = {
    "text": ("text_delta", "text"),
    "thinking": ("thinking_delta", "thinking"),
    "tool_use": ("input_json_delta", "partial_json"),
}
EMPTY_BLOCKS = {
    "text": {"text": ""},
    "thinking": {"thinking": "", "signature": ""},
    "tool_use": {"input": {}},
}
FINAL_USAGE_FIELDS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
    "server_tool_use",  # only when the reply used a server tool
)
# A call's id prefix, by block type, as the API's ids begin.
CALL_ID_PREFIXES = {"tool_use": "toolu", "server_tool_use": "srvtoolu", "mcp_tool_use": "mcptoolu"}
TOKEN_DELTAS = ("text_delta", "thinking_delta", "input_json_delta")  # those that carry output tokens
SseEvent = tuple[str, dict, bool]  # (SSE event name, data, whether it carries an output token)


@dataclass(frozen=True)
class Fault:
    kind: str
    after_tokens: int
    retry_after: float


class OfflineModel:
    """The emulator's state: prompt cache, fault queue, request counter and the streams still open.

    State changes happen under a lock, so the instance can serve event loops in several threads.
    `clock` returns seconds and drives cache TTLs; tests replace it to expire entries without sleeping.
    `received` holds the latest /v1/messages request bodies as sent, for tests that check what went upstream;
    `requests_by_path` counts every request by path (`/v1/messages/count_tokens`, `/v1/models`, ...), for tests
    that check how many requests of each kind a turn makes.
    """

    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.monotonic
        self.open_streams = 0  # response bodies started and not yet finished, failed or closed
        self._cache = PromptCache()
        self._faults: deque[Fault] = deque()
        self._requests = 0
        self.received: deque[dict] = deque(maxlen=RECEIVED_KEPT)
        self.requests_by_path: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.batches = OfflineBatches(self)  # state on disk, shared by every process on the machine
        self.files = offline_files  # the Files API (files.py), on disk like the batches
        self.threads = OfflineThreads()  # the message-threads beta that the SDK's tool runner uses

    def inject_fault(
        self, kind: str, *, times: int = 1, after_tokens: int = 5, retry_after: float = 0
    ) -> None:
        """Makes the next `times` requests to /v1/messages fail as `kind` (one of FAULT_KINDS).

        `after_tokens`: output tokens a mid-stream fault lets through first. `retry_after`: seconds a
        `rate_limit` fault asks the client to wait (the SDK honours it when it retries).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if times < 1 or after_tokens < 0 or retry_after < 0:
            raise ValueError("times must be positive; after_tokens and retry_after must not be negative")
        with self._lock:
            self._faults.extend([Fault(kind, after_tokens, float(retry_after))] * times)

    def reset(self) -> None:
        """Forgets the prompt cache, pending faults and what was received, and restores the real clocks.

        Batches stay: they are files, shared with other processes."""
        with self._lock:
            self._cache.clear()
            self._faults.clear()
            self.received.clear()
            self.requests_by_path.clear()
            self.threads.clear()
        self.clock = time.monotonic
        self.batches.clock = time.time
        self.files.reset()

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        method, path = request.method, request.url.path
        with self._lock:
            self._requests += 1
            self.requests_by_path[path] += 1
            request_id = f"req_offline_{self._requests}"
        rate_limits.count_request()
        model_id = path.removeprefix("/v1/models/")
        try:
            check_credentials(request.headers)
            if (method, path) == ("POST", "/v1/messages"):
                return self._messages(request, request_id)
            if path == BATCHES_PATH or path.startswith(f"{BATCHES_PATH}/"):
                return await self._batches(request, request_id)
            if path == FILES_PATH or path.startswith(f"{FILES_PATH}/"):
                return await self._files(request, request_id)
            if (method, path) == ("POST", "/v1/messages/count_tokens"):
                prompt = read_prompt(_json_body(request), counting=True)
                return json_response(200, {"input_tokens": prompt.input_tokens}, request_id)
            if (method, path) == ("GET", "/v1/models"):
                return json_response(200, _models_page(request.url.params), request_id)
            if method == "GET" and model_id != path and model_id in MODELS_BY_ID:
                return json_response(200, _model_info(MODELS_BY_ID[model_id]), request_id)
        except FileRefused as exc:  # an InvalidRequest that carries its own status and error code
            return _file_error_response(exc, request_id)
        except InvalidRequest as exc:
            return error_response(400, "invalid_request_error", str(exc), request_id)
        except BatchRefused as exc:
            return error_response(exc.status, exc.error_type, str(exc), request_id)
        except ApiRefusal as exc:
            return error_response(exc.status, exc.error_type, str(exc), request_id, details=exc.details)
        return error_response(404, "not_found_error", f"Not found: {method} {path}", request_id)

    def _messages(self, request: httpx2.Request, request_id: str) -> httpx2.Response:
        body = _json_body(request)
        with self._lock:
            self.received.append(body)
        body, threaded = self.threads.expand(body, request.headers)
        prompt = read_prompt(body)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            if fault and fault.kind in STATUS_FAULTS:
                return _status_fault_response(fault, request_id)
        message, blocks, usage = self.reply(prompt)
        if threaded:
            self.threads.record(body, message)
        if not prompt.stream:
            if fault is None:
                return json_response(200, message, request_id)
            if fault.kind == "error_event":  # without a stream, the same overload is a 529
                return error_response(529, "overloaded_error", "Overloaded", request_id)
            chunks = [(json.dumps(message).encode(), False)]
            return self._streamed(chunks, fault, 0, "application/json", request_id)
        events = _message_events(message, blocks, usage)
        chunks = [(_sse(name, data), is_token) for name, data, is_token in events]
        strike = _strike_index(events, fault.after_tokens) if fault else 0
        return self._streamed(chunks, fault, strike, "text/event-stream", request_id)

    def reply(self, prompt: Prompt) -> tuple[dict, list[ReplyBlock], CacheUsage]:
        """The non-streamed Message for `prompt`, its blocks and its usage; reads and writes the prompt cache.

        /v1/messages streams or sends it; a Message Batch stores it as a request's succeeded result.
        """
        with self._lock:
            usage = self._cache.account(prompt.model, prompt.segments, self.clock())
        composed, stop_reason = compose_reply(prompt)
        composed, stop_sequence = stop_at_sequences(composed, prompt.stop_sequences)
        blocks, stop_reason = fit_reply(composed, "stop_sequence" if stop_sequence else stop_reason, prompt.max_tokens)
        stop_sequence = stop_sequence if stop_reason == "stop_sequence" else None
        message = {
            "id": f"msg_offline_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": prompt.model,
            "content": [_content_block(block) for block in blocks],
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage.as_dict(sum(estimate_tokens(block.text) for block in blocks)),
        }
        if server_tool_use := web.server_tool_usage(blocks):
            message["usage"]["server_tool_use"] = server_tool_use
        if container := code_execution.container(prompt.container, prompt.messages, blocks):
            message["container"] = container
        rate_limits.count_tokens(prompt.input_tokens, message["usage"]["output_tokens"])
        return message, blocks, usage

    async def _batches(self, request: httpx2.Request, request_id: str) -> httpx2.Response:
        # Files, and maybe a whole batch to process: off the event loop.
        answer = await asyncio.to_thread(self.batches.handle, request)
        if isinstance(answer, dict):
            return json_response(200, answer, request_id)
        headers = {"request-id": request_id, "content-type": "application/binary"}  # what the SDK accepts
        return httpx2.Response(200, headers=headers, stream=answer)

    async def _files(self, request: httpx2.Request, request_id: str) -> httpx2.Response:
        answer = await asyncio.to_thread(self.files.handle, request)  # files: off the event loop
        if isinstance(answer, dict):
            return json_response(200, answer, request_id)
        headers = {"request-id": request_id, "content-type": "application/octet-stream"}
        return httpx2.Response(200, headers=headers, content=answer)

    def _streamed(self, chunks, fault, strike, content_type, request_id) -> httpx2.Response:
        rate = float(settings.OFFLINE_MODEL_TOKENS_PER_SECOND)
        headers = {"request-id": request_id, "content-type": content_type, "cache-control": "no-cache"}
        headers.update(rate_limits.headers())
        body = _Body(self, _deliver(chunks, rate, fault, strike))
        return httpx2.Response(200, headers=headers, stream=body)


class _Body(httpx2.AsyncByteStream):
    """A response body that counts itself in `open_streams` until it is exhausted, fails or is closed.

    httpx closes a body it did not finish through `aclose`, which for a plain async-generator body does
    nothing; here it closes the generator, so an abandoned reply stops at once and nothing stays open.
    """

    def __init__(self, model: OfflineModel, chunks: AsyncIterator[bytes]) -> None:
        self._model, self._chunks, self._open = model, chunks, True
        with model._lock:
            model.open_streams += 1

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks:
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._open:
            return
        self._open = False
        with self._model._lock:
            self._model.open_streams -= 1
        if not self._chunks.ag_running:  # a read in flight in another task finishes the generator itself
            await self._chunks.aclose()


async def _deliver(chunks: list[tuple[bytes, bool]], rate: float, fault: Fault | None, strike: int):
    """Yields the chunks, a token chunk every 1/rate seconds (rate 0: as fast as the event loop allows), and
    plays `fault` just before chunk `strike`."""
    for index, (chunk, is_token) in enumerate(chunks):
        if fault is not None and index == strike:
            if fault.kind == "error_event":
                overloaded = {"type": "overloaded_error", "message": "Overloaded"}
                yield _sse("error", {"type": "error", "error": overloaded})
                return
            if fault.kind == "disconnect":
                # What httpx raises when a server drops the connection in the middle of a chunked body.
                raise httpx2.RemoteProtocolError(
                    "peer closed connection without sending complete message body (incomplete chunked read)"
                )
            await asyncio.Event().wait()  # stall: silent, no pings, until the consumer gives up and cancels
        await asyncio.sleep(1 / rate if rate and is_token else 0)
        yield chunk


def _strike_index(events: list[SseEvent], after_tokens: int) -> int:
    """Where a mid-stream fault strikes: after `after_tokens` output tokens, or at the latest just before the
    closing message_delta, so that a short reply fails too."""
    seen = 0
    for index, (name, _, is_token) in enumerate(events):
        if seen >= after_tokens and (is_token or name == "message_delta"):
            return index
        seen += is_token
    raise AssertionError("a message stream always has a message_delta")


def _message_events(message: dict, blocks: list[ReplyBlock], usage: CacheUsage) -> list[SseEvent]:
    """The SSE grammar of one reply, from message_start to message_stop."""
    opening = {**message, "content": [], "stop_reason": None, "usage": usage.as_dict(1)}
    events = [("message_start", {"type": "message_start", "message": opening}, False)]
    events.append(("ping", {"type": "ping"}, False))
    for index, (block, final) in enumerate(zip(blocks, message["content"], strict=True)):
        if block.whole is not None:  # a result block: sent whole, with no delta
            start = {"type": "content_block_start", "index": index, "content_block": final}
            events.append(("content_block_start", start, False))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}, False))
            continue
        kind = "tool_use" if block.type in TOOL_CALLS else block.type
        empty = {**final, **EMPTY_BLOCKS[kind]}
        if block.citations:  # each arrives as a citations_delta just before the text it supports
            empty["citations"] = []
        start = {"type": "content_block_start", "index": index, "content_block": empty}
        events.append(("content_block_start", start, False))
        delta_type, field = DELTA_FIELDS[kind]
        deltas = [{"type": "citations_delta", "citation": citation} for citation in block.citations]
        deltas += [{"type": delta_type, field: piece} for piece in token_chunks(block.text)]
        if block.type == "thinking":
            deltas.append({"type": "signature_delta", "signature": final["signature"]})
        for delta in deltas:
            event = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append(("content_block_delta", event, delta["type"] in TOKEN_DELTAS))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}, False))
    closing = {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
        "usage": {field: message["usage"][field] for field in FINAL_USAGE_FIELDS if field in message["usage"]},
    }
    return [*events, ("message_delta", closing, False), ("message_stop", {"type": "message_stop"}, False)]


def _content_block(block: ReplyBlock) -> dict:
    if block.whole is not None:
        return block.whole
    if block.type == "thinking":
        return {"type": "thinking", "thinking": block.text, "signature": thinking_signature(block.text)}
    if block.type in TOOL_CALLS:
        call_id = block.id or f"{CALL_ID_PREFIXES[block.type]}_offline_{uuid.uuid4().hex[:24]}"
        call = {"type": block.type, "id": call_id, "name": block.tool_name, "input": json.loads(block.text)}
        return {**call, "server_name": block.server_name} if block.type == "mcp_tool_use" else call
    if block.citations:
        return {"type": "text", "text": block.text, "citations": list(block.citations)}
    return {"type": "text", "text": block.text}


def _sse(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def _json_body(request: httpx2.Request) -> object:
    try:
        return json.loads(request.content)
    except ValueError as exc:
        raise InvalidRequest("The request body is not valid JSON.") from exc


def _status_fault_response(fault: Fault, request_id: str) -> httpx2.Response:
    status, error_type, message = STATUS_FAULTS[fault.kind]
    headers = {"retry-after": f"{fault.retry_after:g}"} if fault.kind == "rate_limit" else {}
    return error_response(status, error_type, message, request_id, headers)


def _models_page(params: httpx2.QueryParams) -> dict:
    """A page of the Models API list, in catalogue order, paged by after_id / before_id as the API pages."""
    try:
        limit = int(params.get("limit", 20))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_MODELS_PAGE:
        raise InvalidRequest(f"limit: Input should be between 1 and {MAX_MODELS_PAGE}")
    ids = [spec.id for spec in MODELS]
    for name in ("after_id", "before_id"):
        if params.get(name) is not None and params[name] not in ids:
            raise InvalidRequest(f"{name}: unknown model {params[name]!r}")
    if "before_id" in params:
        before = ids[: ids.index(params["before_id"])]
        page, has_more = before[-limit:], len(before) > limit
    else:
        after = ids[ids.index(params["after_id"]) + 1 :] if "after_id" in params else ids
        page, has_more = after[:limit], len(after) > limit
    return {
        "data": [_model_info(MODELS_BY_ID[model_id]) for model_id in page],
        "has_more": has_more,
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }


def _model_info(spec: ModelSpec) -> dict:
    return {
        "type": "model",
        "id": spec.id,
        "display_name": spec.display_name,
        "created_at": spec.created_at,
        "max_input_tokens": spec.context_window,
        "max_tokens": spec.max_output,
        "lifecycle": "active",
        "line": spec.family,
        "deprecated_at": None,
        "retires_at": None,
    }


def json_response(
    status: int, payload: dict, request_id: str | None, headers: dict | None = None
) -> httpx2.Response:
    all_headers = {"content-type": "application/json", **rate_limits.headers(), **(headers or {})}
    if request_id:
        all_headers["request-id"] = request_id
    return httpx2.Response(status, headers=all_headers, content=json.dumps(payload).encode())


def error_response(
    status: int, error_type: str, message: str, request_id: str | None, headers: dict | None = None,
    details: dict | None = None,
) -> httpx2.Response:
    """An error in the API's shape, which the SDK turns into the matching exception class."""
    error = {"type": error_type, "message": message, **({"details": details} if details else {})}
    payload = {"type": "error", "error": error, "request_id": request_id}
    return json_response(status, payload, request_id, headers)


def _file_error_response(exc: FileRefused, request_id: str) -> httpx2.Response:
    """A Files API error, with `error.details.error_code` when it has one (the SDK's FileExpiredError)."""
    error = {"type": exc.error_type, "message": str(exc)}
    if exc.error_code:
        error["details"] = {"error_code": exc.error_code}
    return json_response(exc.status, {"type": "error", "error": error, "request_id": request_id}, request_id)


offline_model = OfflineModel()


def offline_transport() -> httpx2.MockTransport:
    """An httpx transport that answers every request from `offline_model`, streaming bodies incrementally."""
    return httpx2.MockTransport(offline_model.handle)
