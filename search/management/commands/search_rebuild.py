from django.core.management.base import BaseCommand
from django.db import connection, transaction

from search import indexes


class Command(BaseCommand):
    help = (
        "Index every finished message and every title again (SQLite's FTS5 tables). PostgreSQL's indexes are "
        "expression indexes, which never fall behind: nothing to do there."
    )

    def handle(self, *args, **options):
        if connection.vendor != "sqlite":
            self.stdout.write("Nothing to rebuild: PostgreSQL's search indexes follow the rows themselves.")
            return
        with transaction.atomic(), connection.cursor() as cursor:
            indexes.sqlite_index_fill(cursor)
            cursor.execute("SELECT count(*) FROM search_message_fts")
            (count,) = cursor.fetchone()
        self.stdout.write(f"Indexed {count} messages.")
