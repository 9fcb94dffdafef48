"""ASGI entry point: HTTP through the body limit and Django, websockets through Channels, and the process's
start and shutdown through the ASGI lifespan protocol (uvicorn runs it with `--lifespan on`).

The Django ASGI app is built before anything imports models (routing imports consumers, which import models).
"""

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousOperation
from django.core.handlers.exception import response_for_exception
from django.http import Http404

from config.body_limit import BodyLimit


class StaticFiles(ASGIStaticFilesHandler):
    """Django's development static handler, answering 404 for a path that leaves the static folders.

    Its finders raise SuspiciousFileOperation for `/static/../../etc/passwd` (or `..%2f`), and the handler
    only turns Http404 into a response: the rest escaped as a 500 with a traceback in the log.
    """

    async def get_response_async(self, request):
        try:
            return await super().get_response_async(request)
        except SuspiciousOperation:
            return await sync_to_async(response_for_exception, thread_sensitive=False)(request, Http404())


# `make run` serves static files itself (as runserver would); in production a proxy serves STATIC_ROOT.
http_app = BodyLimit(StaticFiles(django_asgi_app) if settings.DEBUG else django_asgi_app)

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter

import chat.routing
from apikeys.relay import exchanges_settled
from chat.llm.warmup import process_warm_up
from chat.replies.generation import generations_drain
from chat.replies.supervision import stale_sweep_forever
from config.origins import SameOriginValidator


async def process_lifespan(scope, receive, send) -> None:
    """What a server process does at start and before it exits.

    Startup: database calls from async code get ASGI_THREADS threads when it is set (the pool is sized from it,
    config/settings.py); the sweep of replies that dead processes left streaming starts
    (chat/replies/supervision.py), and so does the warm-up, so the first turn costs what the next ones do
    (chat/llm/warmup.py). Neither holds the server back from serving.

    Shutdown comes after SIGTERM has closed the sockets (with 1012, so pages reconnect, to another process where
    there is one) and the HTTP requests in flight have ended: running replies are given CHAT_DRAIN_TIMEOUT to
    finish, the rest are saved as interrupted with what they generated, and the process exits only then.
    """
    background: list[asyncio.Task] = []
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if "ASGI_THREADS" in os.environ:
                threads = ThreadPoolExecutor(max_workers=int(os.environ["ASGI_THREADS"]))
                asyncio.get_running_loop().set_default_executor(threads)
            background = [asyncio.create_task(stale_sweep_forever()), asyncio.create_task(process_warm_up())]
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await generations_drain(settings.CHAT_DRAIN_TIMEOUT)
            await exchanges_settled(settings.CHAT_SETTLE_TIMEOUT)  # the API's calls' ledger rows (apikeys/)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(chat.routing.websocket_urlpatterns))),
        "lifespan": process_lifespan,
    }
)
