"""ASGI entry point: HTTP through Django, websockets through Channels.

The Django ASGI app is built before anything imports models (routing imports consumers, which import models).
"""

import asyncio
import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

# `make run` serves static files itself (as runserver would); in production a proxy serves STATIC_ROOT.
http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.DEBUG else django_asgi_app

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

import chat.routing  # noqa: E402
from chat.llm.warmup import process_warm_up_when_serving  # noqa: E402
from chat.replies.generation import generations_drain  # noqa: E402
from chat.replies.supervision import stale_sweep_forever  # noqa: E402


def drain_replies_on_shutdown() -> None:
    """Under daphne, SIGTERM stops the Twisted reactor. A "before shutdown" trigger that returns a Deferred
    holds the shutdown until running replies have finished, or been saved as interrupted after the timeout."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    def drain():
        return defer.Deferred.fromFuture(asyncio.ensure_future(generations_drain(settings.CHAT_DRAIN_TIMEOUT)))

    reactor.addSystemEventTrigger("before", "shutdown", drain)
    # Each server sweeps the replies that dead processes left streaming (chat/replies/supervision.py).
    reactor.callWhenRunning(lambda: asyncio.ensure_future(stale_sweep_forever()))


drain_replies_on_shutdown()
# The first turn of a process costs what the next ones do: the SDK client and its types are built at start.
process_warm_up_when_serving()


def websocket_failures_close_cleanly() -> None:
    """Daphne's websocket library (autobahn) fails a connection that breaks a limit, such as a message over
    --websocket-max-message-size, by dropping it: the client sees 1006, as after a network cut, and learns
    nothing. With failByDrop off it sends a close frame first (1009 and the limit, for a message too big), as
    docs/protocol.md promises. Daphne has no option for it, and builds its factory after importing this
    module."""
    if "daphne.server" not in sys.modules:
        return
    from daphne.ws_protocol import WebSocketFactory

    reset_defaults = WebSocketFactory.resetProtocolOptions

    def reset_to_fail_cleanly(factory):
        reset_defaults(factory)
        factory.failByDrop = False

    WebSocketFactory.resetProtocolOptions = reset_to_fail_cleanly


websocket_failures_close_cleanly()

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(chat.routing.websocket_urlpatterns))),
    }
)
