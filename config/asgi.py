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
from chat.replies.generation import generations_drain  # noqa: E402


def drain_replies_on_shutdown() -> None:
    """Under daphne, SIGTERM stops the Twisted reactor. A "before shutdown" trigger that returns a Deferred
    holds the shutdown until running replies have finished, or been saved as interrupted after the timeout."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    def drain():
        return defer.Deferred.fromFuture(asyncio.ensure_future(generations_drain(settings.CHAT_DRAIN_TIMEOUT)))

    reactor.addSystemEventTrigger("before", "shutdown", drain)


drain_replies_on_shutdown()

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(chat.routing.websocket_urlpatterns))),
    }
)
