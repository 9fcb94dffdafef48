"""Refuses a request body over its limit before Django reads it, whoever sends it, to any URL.

Django's ASGI handler reads the whole body (into a temporary file once it outgrows memory) before any
middleware, authentication or view runs, so a view cannot refuse a body before it has been read: an
anonymous 150 MB POST to any page would cost the server 150 MB of disk and the time to take it in. This guard
sits in front of Django. Uploads (POST to the `attachment_upload` URL with a session cookie) may carry
ATTACHMENT_MAX_UPLOAD_BYTES, every other request REQUEST_MAX_BODY_BYTES (its forms are a few kilobytes): a
stranger without a session cannot make the server write 64 MB to disk only to be sent to the sign-in page.

- A Content-Length over the limit is answered 413 at once; the body is never read.
- A body without a length (chunked) is counted as it streams in. Past the limit the guard stops reading:
  Django is handed `http.disconnect`, which makes its handler give up the request without answering (it
  answers only once the body is complete), and the guard then sends the 413 itself.

A disk that fills while Django spools the body gets the same 507 as a full disk during an upload, not a 500.

Either refusal closes the connection (`Connection: close`): the server then stops reading what the client
is still sending instead of reading the rest of it to reach the next request.
"""

import json

from django.conf import settings
from django.urls import reverse

from chat.attachments.limits import megabytes
from chat.attachments.storage import DISK_FULL, is_disk_full


def body_limit(scope) -> tuple[int, str]:
    """The most bytes this request's body may have, and the sentence that refuses one over it."""
    if scope["method"] == "POST" and scope["path"] == reverse("attachment_upload") and has_session(scope):
        limit = settings.ATTACHMENT_MAX_UPLOAD_BYTES
        return limit, f"An upload can be at most {megabytes(limit)}. Send fewer or smaller files."
    limit = settings.REQUEST_MAX_BODY_BYTES
    return limit, f"A request can carry at most {megabytes(limit)}."


def has_session(scope) -> bool:
    """Whether the request carries a session cookie at all (whether it is valid, only Django can tell)."""
    cookie = settings.SESSION_COOKIE_NAME.encode() + b"="
    return any(name.lower() == b"cookie" and cookie in value for name, value in scope["headers"])


def declared_length(scope) -> int | None:
    """The Content-Length header as a number; None without one. Raises ValueError when it is not a number."""
    values = [value for name, value in scope["headers"] if name.lower() == b"content-length"]
    if not values:
        return None
    if len(set(values)) > 1 or not values[0].strip().isdigit():
        raise ValueError(values)
    return int(values[0])


async def refuse(send, status: int, sentence: str) -> None:
    body = json.dumps({"error": sentence}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware for `http` scopes; other scopes pass through untouched."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, sentence = body_limit(scope)
        try:
            length = declared_length(scope)
        except ValueError:
            return await refuse(send, 400, "The Content-Length header is not a number of bytes.")
        if length is not None and length > limit:
            return await refuse(send, 413, sentence)

        received = 0
        over = False

        async def counted_receive():
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        started = False

        async def watched_send(message):
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except OSError as error:
            if not is_disk_full(error) or started:
                raise
            return await refuse(send, 507, DISK_FULL)
        if over:
            await refuse(send, 413, sentence)
