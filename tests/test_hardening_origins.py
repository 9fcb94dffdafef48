"""A websocket opens only from a page of this site: the same scheme, host and port as the socket, or an origin
the deployment trusts (CSRF_TRUSTED_ORIGINS). Channels' own check compared host names only."""

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from conftest import session_cookie

from config.origins import socket_origin_allowed


def scope(origin: str | None, host: str | None, scheme: str = "ws") -> dict:
    headers = [(name, value.encode()) for name, value in ((b"origin", origin), (b"host", host)) if value is not None]
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize(("origin", "host", "scheme"), [
    ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws"),
    ("http://localhost", "localhost", "ws"),
    ("http://localhost:80", "localhost", "ws"),
    ("https://localhost", "localhost", "wss"),
    ("HTTP://LOCALHOST:8000", "localhost:8000", "ws"),
])
def test_the_pages_own_origin_may_open_a_socket(origin, host, scheme):
    assert socket_origin_allowed(scope(origin, host, scheme))


@pytest.mark.parametrize(("origin", "host", "scheme"), [
    ("http://evil:8000", "127.0.0.1:8000", "ws"),  # another host
    ("http://127.0.0.1:9000", "127.0.0.1:8000", "ws"),  # another port of the same host
    ("http://127.0.0.1", "127.0.0.1:8000", "ws"),  # the default port is another port
    ("http://localhost", "localhost", "wss"),  # a plain-http page on a secure socket
    ("https://localhost", "localhost", "ws"),
    ("null", "localhost", "ws"),  # a sandboxed frame or a file
    ("http://localhost:99999", "localhost:99999", "ws"),
    (None, "localhost", "ws"),  # not a browser's handshake
    ("http://localhost", None, "ws"),
    ("http://evil.example", "evil.example", "ws"),  # a host this site does not serve, pointed at it
])
def test_any_other_origin_is_refused(origin, host, scheme):
    assert not socket_origin_allowed(scope(origin, host, scheme))


def test_two_origin_headers_are_refused():
    both = {"type": "websocket", "scheme": "ws",
            "headers": [(b"origin", b"http://localhost"), (b"origin", b"http://evil"), (b"host", b"localhost")]}

    assert not socket_origin_allowed(both)


def test_a_trusted_origin_may_open_a_socket_through_a_proxy_that_hides_the_scheme(settings):
    """Behind TLS terminated by a proxy whose headers are not trusted, the socket looks like ws://: the
    deployment names its public origin in CSRF_TRUSTED_ORIGINS, as Django's CSRF check needs too."""
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.example.org"]

    assert socket_origin_allowed(scope("https://chat.example.com", "chat.example.com", "ws"))
    assert socket_origin_allowed(scope("https://chat.example.com:443", "chat.example.com", "ws"))
    assert socket_origin_allowed(scope("https://eu.example.org", "chat.example.com", "ws"))
    assert not socket_origin_allowed(scope("http://eu.example.org", "chat.example.com", "ws"))
    assert not socket_origin_allowed(scope("https://chat.example.com.evil", "chat.example.com", "ws"))


# --- through the real ASGI stack ------------------------------------------------------------------------------

async def handshake(user, conversation_id: int, origin: bytes, host: bytes) -> bool:
    from config.asgi import application

    cookie = await asyncio.to_thread(session_cookie, user)
    communicator = WebsocketCommunicator(
        application, f"/ws/conversations/{conversation_id}/",
        headers=[(b"origin", origin), (b"host", host), (b"cookie", cookie)],
    )
    accepted, _ = await communicator.connect()
    await communicator.disconnect()
    return accepted


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("generations_drained")
async def test_the_owner_opens_the_socket_from_the_pages_origin_only(owner, conversation):
    assert await handshake(owner, conversation.pk, b"http://127.0.0.1:8000", b"127.0.0.1:8000")
    assert not await handshake(owner, conversation.pk, b"http://127.0.0.1:9000", b"127.0.0.1:8000")
    assert not await handshake(owner, conversation.pk, b"http://evil:8000", b"127.0.0.1:8000")
