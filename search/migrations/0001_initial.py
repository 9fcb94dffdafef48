"""The full-text indexes of search/indexes.py: GIN expression indexes on PostgreSQL, FTS5 tables with their
triggers on SQLite, filled with what is already there."""

from django.db import migrations

from search import indexes


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for model_name, index in indexes.postgres_indexes():
            schema_editor.add_index(apps.get_model("chat", model_name), index)
    elif schema_editor.connection.vendor == "sqlite":
        with schema_editor.connection.cursor() as cursor:
            for statement in [*indexes.SQLITE_TABLES.values(), *indexes.SQLITE_TRIGGERS.values()]:
                cursor.execute(statement)
            indexes.sqlite_index_fill(cursor)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for model_name, index in indexes.postgres_indexes():
            schema_editor.remove_index(apps.get_model("chat", model_name), index)
    elif schema_editor.connection.vendor == "sqlite":
        with schema_editor.connection.cursor() as cursor:
            for name in indexes.SQLITE_TRIGGERS:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            for name in indexes.SQLITE_TABLES:
                cursor.execute(f"DROP TABLE IF EXISTS {name}")


class Migration(migrations.Migration):
    # Tuples, not lists: Django copies both into lists of the instance.
    dependencies = (("chat", "0011_apicall_purpose_title_source_model"),)

    operations = (migrations.RunPython(create, drop, elidable=False),)
