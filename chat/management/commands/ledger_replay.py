import sys

from django.core.management.base import BaseCommand
from django.db import transaction

from billing.ledger import ledger_replay


class Command(BaseCommand):
    help = (
        "Write the ledger rows of replies that could not be settled (the database stayed unreachable), from "
        "the `api_call_unsaved {json}` lines of the server's log, read from the given file or standard input. "
        "Other lines are skipped; replay each line once."
    )

    def add_arguments(self, parser):
        parser.add_argument("log_file", nargs="?", help="A log file; standard input without one.")

    def handle(self, *args, log_file=None, **options):
        lines = open(log_file, encoding="utf-8") if log_file else sys.stdin
        written = 0
        with transaction.atomic():
            for line in lines:
                if "api_call_unsaved {" in line:
                    written += len(ledger_replay(line[line.index("api_call_unsaved"):]))
        self.stdout.write(f"{written} ledger row{'' if written == 1 else 's'} written.")
