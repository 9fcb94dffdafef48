"""Refuses a request body over its limit before Django reads it, whoever sends it, to any URL.

Django's ASGI handler reads the whole body (into a temporary file once it outgrows memory) before any
middleware, authentication or view runs, so a view cannot refuse a body before it has been read: an
anonymous 150 MB POST to any page would cost the server 150 MB of disk and the time to take it in. This guard
sits in front of Django. Uploads (POST to the `attachment_upload` URL from a signed-in session) may carry
ATTACHMENT_MAX_UPLOAD_BYTES (an import file, POST to `conversation_import`, IMPORT_MAX_BYTES), every other
request REQUEST_MAX_BODY_BYTES (its forms are a few kilobytes): a stranger cannot make the server write 64 MB
to disk only to be sent to the sign-in page, with a session cookie made up or left from signing out any more
than without one. The session is looked up only for an upload whose
body would pass REQUEST_MAX_BODY_BYTES (as declared, or once that much has streamed in), once per request.
A POST to the API (apikeys/, under API_PREFIX) may carry API_MAX_BODY_BYTES when it presents a key that may
call it, looked up the same way; its refusals are in the API's error shape.

- A Content-Length over the limit is answered 413 at once; the body is never read.
- A body without a length (chunked) is counted as it streams in. Past the limit the guard stops reading:
  Django is handed `http.disconnect`, which makes its handler give up the request without answering (it
  answers only once the body is complete), and the guard then sends the 413 itself.

A disk that fills while Django spools the body gets the same 507 as a full disk during an upload, not a 500.

Either refusal closes the connection (`Connection: close`): the server then stops reading what the client
is still sending instead of reading the rest of it to reach the next request.
"""

import json
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.http.cookie import parse_cookie
from django.urls import reverse

from apikeys.errors import error_body, is_api_path
from apikeys.selectors import api_key_may_call, presented_secret
from chat.attachments.limits import megabytes
from chat.attachments.storage import DISK_FULL, is_disk_full
from chat.db import db_async


class Allowance:
    """What one request's body may carry, asked with the size it has (declared, or received so far)."""

    def __init__(self, scope):
        self.scope = scope
        self.upload: bool | None = None  # whether it may carry an upload's size: looked up when first needed
        self.api_call: bool | None = None  # whether it is an API call with a usable key: likewise

    async def refusal(self, size: int) -> str | None:
        """None while a body of `size` bytes is allowed, else the sentence that refuses it."""
        limit = settings.REQUEST_MAX_BODY_BYTES
        if size <= limit:
            return None
        if is_api_path(self.scope["path"]):
            if self.api_call is None:
                self.api_call = await _keyed_api_call(self.scope)
            limit = settings.API_MAX_BODY_BYTES if self.api_call else limit
            return None if size <= limit else f"A request to the API can carry at most {megabytes(limit)}."
        if self.upload is None:
            self.upload = await _signed_in_upload(self.scope)
        if not self.upload:
            return f"A request can carry at most {megabytes(limit)}."
        if self.scope["path"] == reverse("conversation_import"):
            limit = settings.IMPORT_MAX_BYTES
            return None if size <= limit else f"An import file can be at most {megabytes(limit)}."
        limit = settings.ATTACHMENT_MAX_UPLOAD_BYTES
        if size <= limit:
            return None
        return f"An upload can be at most {megabytes(limit)}. Send fewer or smaller files."


async def _signed_in_upload(scope) -> bool:
    uploads = (reverse("attachment_upload"), reverse("conversation_import"))
    if scope["method"] != "POST" or scope["path"] not in uploads:
        return False
    key = session_key(scope)
    # Through db_async, whose thread closes its connection as a request's thread does: Django's async session
    # API would leave one open on a thread that no request cleans up.
    return bool(key) and await db_async(_signed_in)(key)


async def _keyed_api_call(scope) -> bool:
    if scope["method"] != "POST":
        return False
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
    secret = presented_secret(headers)
    return bool(secret) and await db_async(api_key_may_call)(secret)


def session_key(scope) -> str | None:
    """The session cookie's value, from the Cookie headers read as Django reads them."""
    cookies = "; ".join(value.decode("latin-1") for name, value in scope["headers"] if name.lower() == b"cookie")
    return parse_cookie(cookies).get(settings.SESSION_COOKIE_NAME) or None


def _signed_in(key: str) -> bool:
    """Whether a session with this key exists, unexpired, with someone signed in (Django then checks them)."""
    return SESSION_KEY in import_module(settings.SESSION_ENGINE).SessionStore(key)


def declared_length(scope) -> int | None:
    """The Content-Length header as a number; None without one. Raises ValueError when it is not a number."""
    values = [value for name, value in scope["headers"] if name.lower() == b"content-length"]
    if not values:
        return None
    if len(set(values)) > 1 or not values[0].strip().isdigit():
        raise ValueError(values)
    return int(values[0])


# A refusal of an API call as the API refuses (apikeys/errors.py), by status.
API_ERROR_TYPES = {400: "invalid_request_error", 413: "request_too_large", 507: "api_error"}


async def refuse(send, status: int, sentence: str, scope) -> None:
    shape = error_body(API_ERROR_TYPES[status], sentence) if is_api_path(scope["path"]) else {"error": sentence}
    body = json.dumps(shape).encode()
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
        allowance = Allowance(scope)
        try:
            length = declared_length(scope)
        except ValueError:
            return await refuse(send, 400, "The Content-Length header is not a number of bytes.", scope)
        if length is not None and (sentence := await allowance.refusal(length)):
            return await refuse(send, 413, sentence, scope)

        received = 0
        refusal: str | None = None

        async def counted_receive():
            nonlocal received, refusal
            if refusal:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                refusal = await allowance.refusal(received)
                if refusal:
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
            return await refuse(send, 507, DISK_FULL, scope)
        if refusal:
            await refuse(send, 413, refusal, scope)
