"""Serves the offline model over loopback HTTP, for benchmarks and multi-process tests.

Point any Anthropic client at it with ANTHROPIC_BASE_URL; the app then takes the "real API" path and speaks to
the emulator over the network. `--port 0` picks a free port; the URL printed is the one actually bound.
"""

from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand

from chat.llm.offline import offline_asgi_app
from chat.llm.offline.asgi import ABORT_CONNECTION


class OfflineModelServer(Server):
    """Daphne, taught the one thing ASGI cannot say: drop the connection mid-body (the `disconnect` fault)."""

    async def handle_reply(self, protocol, message):
        if message["type"] == ABORT_CONNECTION:
            # Closes after what was already written, so the client gets every byte sent before the fault and
            # then a chunked body that never ends: an incomplete read, as from an upstream that crashed.
            protocol.transport.loseConnection()
            return
        await super().handle_reply(protocol, message)


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
        server = OfflineModelServer(
            application=offline_asgi_app,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            ready_callable=lambda: self._announce(server),
            verbosity=verbosity,
        )
        server.run()

    def _announce(self, server: Server) -> None:
        bound_host, bound_port = server.listening_addresses[0]
        url = f"http://{bound_host}:{bound_port}"
        rate = settings.OFFLINE_MODEL_TOKENS_PER_SECOND
        self.stdout.write(f"Offline model listening on {url} ({rate:g} tokens/s; 0 = as fast as possible)")
        self.stdout.write(f"Point the app at it with: ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY=offline")
        self.stdout.write("Quit with CONTROL-C.")
        self.stdout.flush()
