"""SQLite: the FTS5 tables again with prefix indexes (`prefix = '2 3'`, search/indexes.py), filled from the rows;
and the first shape's catch-up triggers on the queues dropped (their bodies named chat_message and
chat_conversation, which broke SQLite's rename when a later migration remakes either table: catching up is
explicit statements now, `indexes.sqlite_index_caught_up`). Idempotent, so it also runs after a 0001 that
already made the current shape. PostgreSQL: nothing (its GIN indexes need neither)."""

from django.db import migrations

from search import indexes


def recreate(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in indexes.FIRST_SHAPE_TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
        for name, create in indexes.FTS_TABLES.items():
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
            cursor.execute(create)
        existing = indexes.sqlite_schema_names(cursor, "trigger")
        for name, create in indexes.SQLITE_TRIGGERS.items():
            if name not in existing:
                cursor.execute(create)
        indexes.sqlite_index_fill(cursor)


class Migration(migrations.Migration):
    dependencies = (("search", "0001_initial"),)

    # Back to 0001: the tables keep their prefix indexes, which 0001's code reads like any FTS5 table.
    operations = (migrations.RunPython(recreate, migrations.RunPython.noop, elidable=False),)
