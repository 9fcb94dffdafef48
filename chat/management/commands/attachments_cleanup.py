from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from chat.attachments.services import attachments_cleanup


class Command(BaseCommand):
    help = (
        "Delete uploads that no message claimed within ATTACHMENT_UNCLAIMED_HOURS (a day by default), and "
        "stored files that no attachment uses any more. Safe to run at any time, e.g. hourly from cron."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--hours", type=float, default=settings.ATTACHMENT_UNCLAIMED_HOURS,
            help="Age in hours after which an unclaimed upload is deleted.",
        )

    def handle(self, *args, hours, **options):
        attachments, files = attachments_cleanup(older_than=timedelta(hours=hours))
        self.stdout.write(f"Deleted {attachments} unclaimed attachment(s) and {files} unused file(s).")
