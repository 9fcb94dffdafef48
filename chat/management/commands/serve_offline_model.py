"""Serves the offline model over loopback HTTP, for benchmarks and multi-process tests.

Point any Anthropic client at it with ANTHROPIC_BASE_URL; the app then takes the "real API" path and speaks to
the emulator over the network. `--port 0` picks a free port; the URL printed is the one actually bound.
"""

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

from chat.llm.offline import offline_asgi_app
from chat.llm.offline.asgi import ABORT_CONNECTION


async def offline_app_that_can_drop_connections(scope, receive, send) -> None:
    """The offline model, with the one thing ASGI cannot say (drop the connection mid-body, the `disconnect`
    fault) said the ASGI way: the app returns without finishing its response, and uvicorn closes the
    connection after what was already written. The client gets every byte sent before the fault and then a
    chunked body that never ends: an incomplete read, as from an upstream that crashed. (uvicorn logs it as
    "ASGI callable returned without completing response".)"""

    async def send_unless_abort(message) -> None:
        if message["type"] != ABORT_CONNECTION:
            await send(message)

    await offline_asgi_app(scope, receive, send_unless_abort)


class AnnouncingServer(uvicorn.Server):
    """Says where it listens once it does: with `--port 0` only the bound socket knows the port."""

    def __init__(self, config: uvicorn.Config, announce):
        super().__init__(config)
        self.announce = announce

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            self.announce(*self.servers[0].sockets[0].getsockname()[:2])


class Command(BaseCommand):
    help = "Serves the offline model (an emulator of the Anthropic Messages API) over loopback HTTP."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--tokens-per-second",
            type=float,
            help="streaming rate; overrides OFFLINE_MODEL_TOKENS_PER_SECOND (0 streams as fast as possible)",
        )

    def handle(self, *args, host, port, tokens_per_second, verbosity, **options):
        if tokens_per_second is not None:
            settings.OFFLINE_MODEL_TOKENS_PER_SECOND = tokens_per_second
        config = uvicorn.Config(
            offline_app_that_can_drop_connections,
            host=host,
            port=port,
            lifespan="off",
            # The banner below is the first line a caller reads; uvicorn's own lines and the access log come
            # with -v 2.
            log_level="info" if verbosity >= 2 else "warning",
            access_log=verbosity >= 2,
        )
        try:
            AnnouncingServer(config, self._announce).run()
        except KeyboardInterrupt:  # uvicorn shut down gracefully, then re-raised the CONTROL-C
            pass

    def _announce(self, bound_host: str, bound_port: int) -> None:
        url = f"http://{bound_host}:{bound_port}"
        rate = settings.OFFLINE_MODEL_TOKENS_PER_SECOND
        self.stdout.write(f"Offline model listening on {url} ({rate:g} tokens/s; 0 = as fast as possible)")
        self.stdout.write(f"Point the app at it with: ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY=offline")
        self.stdout.write("Quit with CONTROL-C.")
        self.stdout.flush()
