"""The offline model over real HTTP, for benchmarks and multi-process tests (`manage.py serve_offline_model`).

It serves the same endpoints as the in-process transport, sending each body chunk as it is produced, plus
two control endpoints that only exist here: `POST /_offline/faults` (JSON: kind, times, after_tokens,
retry_after) and `POST /_offline/reset`.
"""

import asyncio
import json
import logging

import httpx2

from chat.llm.offline import batches
from chat.llm.offline.model import error_response, json_response, offline_model

# ASGI has no message for "drop this connection now", which the `disconnect` fault needs. The server in
# `serve_offline_model` understands this one; any other server fails the send, which drops the connection too.
ABORT_CONNECTION = "offline.connection.abort"

logger = logging.getLogger(__name__)


async def offline_asgi_app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return  # no lifespan work to do
    try:
        body = await _request_body(receive)
    except BodyTooLarge as refused:
        await _respond(error_response(413, "request_too_large", str(refused), None), receive, send)
        return
    if body is None:
        return  # the client left before sending its request
    route = (scope["method"], scope["path"])
    if route == ("POST", "/_offline/faults"):
        response = _inject_fault(body)
    elif route == ("POST", "/_offline/reset"):
        offline_model.reset()
        response = json_response(200, {"reset": True}, None)
    else:
        response = await offline_model.handle(_as_httpx_request(scope, body))
    await _respond(response, receive, send)


def _as_httpx_request(scope, body: bytes) -> httpx2.Request:
    url = httpx2.URL(scheme="http", host="offline.invalid", path=scope["path"], query=scope["query_string"])
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
    return httpx2.Request(scope["method"], url, headers=headers, content=body)


class BodyTooLarge(Exception):
    """A body past the largest the API accepts (a batch's create), refused before it is all held in memory."""


async def _request_body(receive) -> bytes | None:
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > batches.MAX_BODY_BYTES:
            raise BodyTooLarge(f"Request exceeds the maximum size of {batches.MAX_BODY_BYTES} bytes.")
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _inject_fault(body: bytes) -> httpx2.Response:
    try:
        fault = json.loads(body)
        kind, times = fault["kind"], int(fault.get("times", 1))
        offline_model.inject_fault(
            kind,
            times=times,
            after_tokens=int(fault.get("after_tokens", 5)),
            retry_after=float(fault.get("retry_after", 0)),
        )
    except (ValueError, TypeError, KeyError) as exc:
        return error_response(400, "invalid_request_error", f"Bad fault: {exc!r}", None)
    return json_response(200, {"injected": kind, "times": times}, None)


async def _respond(response: httpx2.Response, receive, send) -> None:
    """Sends the response, chunk by chunk, until it ends or the client disconnects, whichever comes first."""
    # The server frames the body itself; a chunked header from httpx would be framed twice.
    headers = [(name, value) for name, value in response.headers.raw if name.lower() != b"transfer-encoding"]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    sending = asyncio.ensure_future(_send_body(response, send))
    client_gone = asyncio.ensure_future(_disconnect(receive))
    try:
        await asyncio.wait((sending, client_gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, client_gone):
            task.cancel()
        await asyncio.gather(sending, client_gone, return_exceptions=True)
        await response.aclose()
    if not sending.cancelled() and sending.exception():
        # Raising here would make the server answer a second time on a response already started.
        logger.error("The offline model failed mid-response", exc_info=sending.exception())


async def _send_body(response: httpx2.Response, send) -> None:
    try:
        async for chunk in response.stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except httpx2.TransportError:  # the `disconnect` fault
        await send({"type": ABORT_CONNECTION})
        return
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
