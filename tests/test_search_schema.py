"""SQLite's search index across schema changes (search/indexes.py): a later migration that remakes chat_message
or chat_conversation (create new__…, copy, drop, rename) must succeed and leave search working once
post_migrate ran; search 0002 turns a database that has the first shape of the index (search 0001 before the
prefix indexes, with catch-up triggers on the queues) into the current one. SQLite only: on PostgreSQL the
indexes are expression indexes that Django's schema editor keeps, and 0002 does nothing."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, models
from django.db.migrations.executor import MigrationExecutor

from chat import services
from chat.models import Conversation, Message
from search import indexes
from search.selectors import search_hits

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's FTS5 tables and triggers"),
]

LATEST = ("search", "0002_prefix_indexes")


def said(conversation, text):
    return Message.objects.create(
        conversation=conversation, role="user", content=[{"type": "text", "text": text}]
    )


def found(user, text):
    return [(hit.conversation_id, hit.message_id) for hit in search_hits(user.pk, text)]


def schema(kind: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = %s", [kind])
        return dict(cursor.fetchall())


def probe_field():
    """A NOT NULL column with a database default (so the ORM's inserts, which do not name it, pass): SQLite's schema editor adds it by remaking the whole table."""
    field = models.TextField(db_default="")
    field.set_attributes_from_name("search_probe")
    return field


@pytest.mark.parametrize("model", [Message, Conversation], ids=["chat_message", "chat_conversation"])
def test_a_table_remake_after_search_0001_succeeds_and_search_works_after_post_migrate(owner, model):
    conversation = services.conversation_create(owner=owner)
    services.conversation_rename(conversation=conversation, title="Gardening")
    before = said(conversation, "tomatoes want sun")
    assert found(owner, "tomatoes") == [(conversation.pk, before.pk)]
    said(conversation, "queued, not yet indexed")  # still in the queue when the table is remade

    field = probe_field()
    added = False
    try:
        with connection.schema_editor() as editor:
            editor.add_field(model, field)  # the remake: failed with "no such table: main.chat_message"
        added = True
        assert "search_probe" in schema("table")[model._meta.db_table]
        # The remake dropped the table's queue triggers; rows written now are not queued...
        during = said(conversation, "cucumbers want water")
        services.conversation_rename(conversation=conversation, title="Greenhouse")
    finally:
        if added:
            with connection.schema_editor() as editor:
                editor.remove_field(model, field)
        call_command("migrate", verbosity=0)  # nothing to apply: post_migrate only, as after any migrate

    # ...and post_migrate put the triggers back and indexed what they missed.
    assert set(indexes.SQLITE_TRIGGERS) <= set(schema("trigger"))
    assert found(owner, "tomatoes") == [(conversation.pk, before.pk)]
    assert found(owner, "cucumbers") == [(conversation.pk, during.pk)]
    assert found(owner, "greenhouse") == [(conversation.pk, None)]
    assert found(owner, "gardening") == []
    after = said(conversation, "peppers too")  # the triggers restored queue again
    assert found(owner, "peppers") == [(conversation.pk, after.pk)]
    # No trigger anywhere names a chat table except the chat tables' own (which are dropped with them).
    for name, sql in schema("trigger").items():
        assert ("ON chat_" in sql) or ("chat_message" not in sql and "chat_conversation" not in sql), name


# The index as search 0001 first made it: FTS5 tables without prefix indexes, and triggers on the queues whose
# bodies read chat_message and chat_conversation (what broke a table remake).
OLD_SHAPE = [
    "DROP TABLE search_message_fts",
    "DROP TABLE search_conversation_fts",
    f"CREATE VIRTUAL TABLE search_message_fts USING fts5(text, tokenize = '{indexes.TOKENIZE}')",
    f"CREATE VIRTUAL TABLE search_conversation_fts USING fts5(title, tokenize = '{indexes.TOKENIZE}')",
    """CREATE TRIGGER search_message_caught_up AFTER DELETE ON search_message_pending
        BEGIN
            DELETE FROM search_message_fts WHERE rowid = OLD.message_id;
            INSERT INTO search_message_fts (rowid, text)
                SELECT m.id, '' FROM chat_message AS m WHERE m.id = OLD.message_id;
        END""",
    """CREATE TRIGGER search_conversation_caught_up AFTER DELETE ON search_conversation_pending
        BEGIN
            DELETE FROM search_conversation_fts WHERE rowid = OLD.conversation_id;
            INSERT INTO search_conversation_fts (rowid, title)
                SELECT c.id, c.title FROM chat_conversation AS c WHERE c.id = OLD.conversation_id;
        END""",
]


def test_search_0002_turns_the_first_shape_of_the_index_into_prefix_indexes_and_fills_them(owner):
    conversation = services.conversation_create(owner=owner)
    services.conversation_rename(conversation=conversation, title="Gardening")
    message = said(conversation, "tomatoes want sun")
    executor = MigrationExecutor(connection)
    try:
        executor.migrate([("search", "0001_initial")])
        with connection.cursor() as cursor:
            for statement in OLD_SHAPE:
                cursor.execute(statement)
        assert "prefix" not in schema("table")["search_message_fts"]

        executor.loader.build_graph()
        executor.migrate([LATEST])
    finally:
        MigrationExecutor(connection).migrate([LATEST])  # later tests get the current shape whatever happened

    tables, triggers = schema("table"), schema("trigger")
    for name in ("search_message_fts", "search_conversation_fts"):
        assert "prefix = '2 3'" in tables[name], tables[name]
    assert not {"search_message_caught_up", "search_conversation_caught_up"} & set(triggers)
    assert set(indexes.SQLITE_TRIGGERS) <= set(triggers)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM search_message_pending")
        assert cursor.fetchone() == (0,)
    # Filled by the migration itself: found with nothing in the queue to catch up on.
    assert found(owner, "to") == [(conversation.pk, message.pk)]
    assert found(owner, "ga") == [(conversation.pk, None)]
    # And a remake afterwards works (no trigger of the first shape is left to break it).
    field = probe_field()
    with connection.schema_editor() as editor:
        editor.add_field(Message, field)
    with connection.schema_editor() as editor:
        editor.remove_field(Message, field)
    call_command("migrate", verbosity=0)
    assert found(owner, "tomatoes") == [(conversation.pk, message.pk)]


def test_migrate_drops_the_first_shapes_triggers_before_a_chat_migration_can_remake_a_table(owner):
    """`migrate` runs chat's migrations before search's, so a chat remake could meet 0001's first shape before
    0002 drops it: pre_migrate drops its triggers first."""
    conversation = services.conversation_create(owner=owner)
    message = said(conversation, "tomatoes want sun")
    try:
        with connection.cursor() as cursor:
            for statement in OLD_SHAPE[4:]:  # the triggers only: the tables' shape does not matter here
                cursor.execute(statement)
        assert {"search_message_caught_up", "search_conversation_caught_up"} <= set(schema("trigger"))

        call_command("migrate", "search", verbosity=0)  # nothing to apply: pre_migrate and post_migrate
    finally:
        indexes.sqlite_first_shape_dropped()  # later tests never meet them, whatever happened

    assert not {"search_message_caught_up", "search_conversation_caught_up"} & set(schema("trigger"))
    field = probe_field()
    with connection.schema_editor() as editor:
        editor.add_field(Message, field)
    with connection.schema_editor() as editor:
        editor.remove_field(Message, field)
    call_command("migrate", verbosity=0)
    assert found(owner, "tomatoes") == [(conversation.pk, message.pk)]


def pending(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def test_sqlite_catches_up_in_bounded_batches_oldest_first(owner, monkeypatch):
    """At most CATCH_UP_BATCHES batches of CATCH_UP_BATCH ids per queue in one search; the rest is left for the
    next search."""
    monkeypatch.setattr(indexes, "CATCH_UP_BATCH", 3)
    monkeypatch.setattr(indexes, "CATCH_UP_BATCHES", 2)
    call_command("search_rebuild", stdout=StringIO())  # a flush empties no queue: what earlier tests left
    conversation = services.conversation_create(owner=owner)
    services.conversation_rename(conversation=conversation, title="Notes")
    notes = [said(conversation, f"note {n}") for n in range(10)]
    assert pending("search_message_pending") == 10

    assert found(owner, "note") == [(conversation.pk, m.pk) for m in notes[5::-1]] + [(conversation.pk, None)]
    assert pending("search_message_pending") == 4  # two batches of three, the oldest ids
    assert pending("search_conversation_pending") == 0

    assert found(owner, "note") == [(conversation.pk, m.pk) for m in notes[::-1]] + [(conversation.pk, None)]
    assert pending("search_message_pending") == 0
