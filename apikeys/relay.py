"""A call of the API forwarded to the model with the one SDK client (the real API, or the offline model), its
answer relayed to the caller as the upstream sent it, and its usage read on the way to bill it.

Every admitted call is an `Exchange`. What it owes is settled by a task of its own (`_settle_when_done`), not
by the request that carries it: a client that disconnects mid-stream cancels the request's task, and Django
may drop a streaming response without ever iterating it, yet the call must still be billed for what the model
generated and its reservation released. The request only says when it is done with the upstream response
(`done`, thread-safe for the response's `close`); the task then closes the response, writes the ledger row and
releases the reservation, with the reply's backoff, and logs the row for `manage.py ledger_replay` if the
database stays out of reach. While the call is in flight the task keeps its reservation fresh (`api_call_keep`).

The SDK does not retry here (`max_retries=0`): the caller's own SDK retries what we relay (429, 529, 5xx), so
retries are not multiplied, and each call is one request upstream and one ledger row.
"""

import asyncio
import dataclasses
import json
import logging
import math
import time

import anthropic
import httpx2
from anthropic.types import Usage
from django.conf import settings

from apikeys import services
from apikeys.errors import ApiError
from apikeys.services import ApiCallAdmitted
from billing.ledger import UpstreamRequest, ledger_log_unsaved
from chat.db import db_async
from chat.llm.client import anthropic_client, attempt_recorder
from chat.llm.pricing import TokenUsage
from chat.llm.tokens import TOKEN_CHARS
from chat.models import ApiCall
from chat.replies import generation

log = logging.getLogger(__name__)

# Request headers passed on to the model: the betas a caller opts into. The version is the SDK's own.
FORWARDED_HEADERS = ("anthropic-beta",)
# Failures to connect (the SDK's APIConnectionError or APITimeoutError is raised from them): the request never
# left, so the model cannot have answered it.
NOT_CONNECTED = (httpx2.ConnectError, httpx2.ConnectTimeout)
# Exchanges whose settling is still to come: held here so their tasks are not collected.
in_flight: set["Exchange"] = set()


async def exchanges_settled(timeout: float) -> None:
    """Shutdown, once the HTTP requests in flight have ended: wait up to `timeout` for their calls to settle."""
    tasks = [exchange._task for exchange in in_flight]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


# What the SDK raises when it will not send a request (it cannot encode the body, say), before any connection;
# a failure of the transport reaches us as an APIError.
UNSENDABLE = (ValueError, TypeError, RecursionError)


def unsendable(exc: Exception) -> ApiError:
    """The refusal of a request that the SDK would not send (it could not encode the body, say): nothing was
    sent, so nothing is billed."""
    if isinstance(exc, RecursionError):
        return ApiError(400, "invalid_request_error", "The request body is nested too deeply.")
    return ApiError(400, "invalid_request_error", f"The request cannot be sent: {str(exc)[:200]}")


def forwarded_headers(headers) -> dict:
    return {name: headers[name] for name in FORWARDED_HEADERS if name in headers}


def upstream_client() -> anthropic.AsyncAnthropic:
    return anthropic_client().with_options(max_retries=0)


class Exchange:
    """One admitted call of the Messages endpoint, from the request sent upstream to its settled ledger row."""

    def __init__(self, admitted: ApiCallAdmitted, *, model: str, stream: bool):
        self.admitted = admitted
        self.stream = stream
        self.upstream = UpstreamRequest(
            model=model, status=ApiCall.Status.ERROR, purpose=ApiCall.Purpose.API, api_key_id=admitted.api_key_id
        )
        self.response = None  # the SDK's AsyncAPIResponse, once the upstream answered
        self.sent = True  # until a failure says the model cannot have seen the request
        self.usage_seen = False
        self._usage_fields: dict = {}
        self.generated_chars = 0  # of the streamed deltas: what is billed when the final usage never comes
        self.started = time.monotonic()
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        self._task = asyncio.create_task(self._settle_when_done(), name=f"api-call-{admitted.reservation_id}")
        in_flight.add(self)
        self._task.add_done_callback(lambda task: in_flight.discard(self))

    def done(self) -> None:
        self._done.set()

    def done_threadsafe(self) -> None:
        self._loop.call_soon_threadsafe(self._done.set)

    # --- the upstream request ------------------------------------------------------------------------

    async def send(self, body: dict, headers: dict):
        """The upstream's response (AsyncAPIResponse, status 2xx), or the SDK's exception for any other, or the
        ApiError of a body the SDK could not encode."""
        attempt_recorder.set(self._record_attempt)
        known = {name: body[name] for name in ("model", "max_tokens", "messages")}
        rest = {name: value for name, value in body.items() if name not in known and name != "stream"}
        try:
            self.response = await upstream_client().messages.with_streaming_response.create(
                **known, stream=self.stream, extra_body=rest, extra_headers=headers,
            ).__aenter__()
        except UNSENDABLE as exc:
            self.sent = False
            self.upstream.error = "The SDK would not send the request."
            raise unsendable(exc) from None
        return self.response

    async def _record_attempt(self, response: httpx2.Response) -> None:
        attempt = await generation.upstream_attempt(response, self.started)
        if attempt is not None:
            self.upstream.attempts.append(attempt)

    def failed(self, exc: Exception) -> None:
        self.upstream.error = generation.upstream_error_reason(exc)
        if isinstance(exc, anthropic.APIConnectionError) and isinstance(exc.__cause__, NOT_CONNECTED):
            self.sent = False

    def read_message(self, content: bytes) -> None:
        """A whole (non-streamed) message: its usage and stop reason."""
        message = json.loads(content)
        self._usage_from(message.get("usage") or {})
        self.upstream.stop_reason = message.get("stop_reason") or ""
        self.upstream.status = ApiCall.Status.OK

    async def relay(self):
        """The upstream's event stream, chunk by chunk as it arrives, read for its usage on the way."""
        events = EventReader()
        try:
            async for chunk in self.response.iter_bytes():
                for name, data in events.feed(chunk):
                    try:
                        self._read_event(name, data)
                    except (ValueError, KeyError, TypeError, AttributeError):
                        log.warning("API call %s: an event of the model's that cannot be read: %.200s",
                                    self.admitted.reservation_id, data)
                yield chunk
            if self.upstream.status != ApiCall.Status.OK and not self.upstream.error:
                self.upstream.error = "The model's stream ended without message_stop."
        except (asyncio.CancelledError, GeneratorExit):
            if self.upstream.status != ApiCall.Status.OK:  # the client left before the end
                self.upstream.status = ApiCall.Status.STOPPED
            raise
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            self.failed(exc)
            message = "The connection to the model was lost mid-stream."
            yield sse("error", {"type": "error", "error": {"type": "api_error", "message": message}})
        finally:
            self.done()

    def _read_event(self, name: str, data: str) -> None:
        if name == "content_block_delta":
            delta = json.loads(data).get("delta") or {}
            self.generated_chars += len(delta.get("text") or delta.get("thinking") or delta.get("partial_json") or "")
            if self.upstream.first_token_ms is None:
                self.upstream.first_token_ms = int((time.monotonic() - self.started) * 1000)
        elif name == "message_start":
            self._usage_from(json.loads(data)["message"].get("usage") or {})
        elif name == "message_delta":
            payload = json.loads(data)
            self.upstream.stop_reason = (payload.get("delta") or {}).get("stop_reason") or ""
            self._usage_from(payload.get("usage") or {})
        elif name == "message_stop":
            self.upstream.status = ApiCall.Status.OK
        elif name == "error":
            self.upstream.error = f"The model stopped with an error mid-stream: {data[:500]}"

    def _usage_from(self, usage: dict) -> None:
        """`message_delta` usage is cumulative and leaves null what `message_start` said: merged field by field."""
        self._usage_fields.update({name: value for name, value in usage.items() if value is not None})
        self.upstream.usage = TokenUsage.from_sdk(Usage.model_validate({
            "input_tokens": 0, "output_tokens": 0, **self._usage_fields,
        }))
        self.usage_seen = True

    # --- settling ------------------------------------------------------------------------------------

    async def _settle_when_done(self) -> None:
        keeping = asyncio.create_task(self._keep_reservation())
        try:
            await self._done.wait()
        finally:
            keeping.cancel()
            if self.response is not None:
                await self.response.close()
            self._bill_what_was_generated()
            await self._settle()

    async def _keep_reservation(self) -> None:
        while True:
            await asyncio.sleep(settings.CHAT_HEARTBEAT_INTERVAL)
            try:
                await db_async(services.api_call_keep)(admitted=self.admitted)
            except Exception:
                log.warning("keeping the reservation of API call %s failed", self.admitted.reservation_id,
                            exc_info=True)

    def _bill_what_was_generated(self) -> None:
        """A call that did not end well is billed as the API would have: what streamed, by estimate, when the
        final usage never came; the estimated input and a full max_tokens when no usage came at all (a message
        may have been generated whole); nothing when the upstream answered with an error or the request never
        left (it could not be encoded, or no connection was made)."""
        upstream = self.upstream
        upstream.latency_ms = int((time.monotonic() - self.started) * 1000)
        if upstream.status == ApiCall.Status.OK:
            return
        refused = upstream.attempts and (upstream.attempts[-1].http_status or 0) >= 400
        if refused or not self.sent:
            return
        generated = math.ceil(self.generated_chars / TOKEN_CHARS)  # the local estimate's rule
        if not self.usage_seen:
            output = generated if self.stream else self.admitted.max_tokens
            upstream.usage = TokenUsage(input_tokens=self.admitted.input_tokens, output_tokens=output)
            return
        upstream.usage = dataclasses.replace(
            upstream.usage, output_tokens=max(upstream.usage.output_tokens, generated)
        )

    async def _settle(self) -> None:
        deadline, delay = time.monotonic() + settings.CHAT_SETTLE_TIMEOUT, generation.SETTLE_FIRST_DELAY
        while True:
            try:
                await db_async(services.api_call_settle)(admitted=self.admitted, upstream=self.upstream)
                return
            except Exception:
                if time.monotonic() + delay > deadline:
                    log.exception("settling API call %s failed for good", self.admitted.reservation_id)
                    ledger_log_unsaved(
                        [self.upstream], user_id=self.admitted.user_id, conversation_id=None, message_id=None,
                        settle_key=services.settle_key(self.admitted),
                    )
                    return
                log.warning("settling API call %s failed; retrying", self.admitted.reservation_id, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, generation.SETTLE_LONGEST_DELAY)


class EventReader:
    """Server-sent events out of a byte stream cut anywhere: (event name, data) for each complete event."""

    def __init__(self):
        self.pending = b""
        self.name, self.data = "", []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        events = []
        for line in lines:
            line = line.rstrip(b"\r").decode(errors="replace")
            if not line:
                if self.name or self.data:
                    events.append((self.name, "\n".join(self.data)))
                self.name, self.data = "", []
            elif line.startswith("event:"):
                self.name = line[6:].strip()
            elif line.startswith("data:"):
                self.data.append(line[5:].lstrip())
        return events


def sse(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
