from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "What `make run` does before it starts the server: migrate, recover replies a dead server left streaming, "
        "collect static files. One process instead of three: each `manage.py` start costs about a second of "
        "imports, so a second `make run` serves that much sooner."
    )

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("streams_recover", stdout=self.stdout)
        call_command("collectstatic", interactive=False, verbosity=0)
