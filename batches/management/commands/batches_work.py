import asyncio

from django.core.management.base import BaseCommand

from batches.services import batches_unclaim
from batches.worker import batches_work_forever, batches_work_once


class Command(BaseCommand):
    help = (
        "Send the half-price replies' Message Batches, watch them, and settle their results (docs/batches.md). "
        "Runs until stopped, one pass every BATCH_POLL_SECONDS; run exactly one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="One pass, then exit (tests, cron).")

    def handle(self, *args, once=False, **options):
        if once:
            batches_unclaim()
            asyncio.run(batches_work_once())
            return
        try:
            asyncio.run(batches_work_forever())
        except KeyboardInterrupt:
            pass
