from django.core.management.base import BaseCommand

from lifecycle.services import retirements_notify


class Command(BaseCommand):
    help = (
        "Email the admins about models that retire within LIFECYCLE_NOTICE_DAYS, 7 or 1 days: once per model and "
        "threshold, however often it runs. Run it daily (cron or a timer)."
    )

    def handle(self, *args, **options):
        for notice in retirements_notify():
            self.stdout.write(f"Sent: {notice}")
