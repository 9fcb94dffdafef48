from django.core.management.base import BaseCommand

from chat.services import messages_interrupt_stale


class Command(BaseCommand):
    help = (
        "Mark replies left 'streaming' by a dead server process as interrupted, keeping their last checkpoint. "
        "Run before starting a single server (every streaming reply is then dead), or with --stale-only "
        "beside running servers."
    )

    def add_arguments(self, parser):
        parser.add_argument("--stale-only", action="store_true", help="Only replies whose heartbeat is stale.")

    def handle(self, *args, stale_only=False, **options):
        count = messages_interrupt_stale(stale_after=None if stale_only else 0)
        self.stdout.write(f"{count} interrupted repl{'y' if count == 1 else 'ies'} recovered.")
