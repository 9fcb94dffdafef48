"""The full-text indexes behind search/selectors.py, one shape per database, created by migration 0001.

What is indexed is what is final: a message's text blocks (never thinking or tool blocks) once it is no longer
`streaming`, and conversation titles. Nothing in the reply path writes to them, so a streaming checkpoint costs
no index work on either database.

- PostgreSQL: GIN expression indexes, so there is nothing to keep in step. Messages: `to_tsvector` over the
  strings of the text blocks (`jsonb_path_query_array`, taken from the JSON itself: a cast of the JSON to text
  would glue escapes like `\\n` to the next word), partial on `status <> 'streaming'` so checkpoints of a
  streaming reply never touch it; titles: `to_tsvector` of the title. The queries build the same expressions
  from the same objects (`message_vector`, `title_vector`), which is what lets the planner use the indexes.
- SQLite: FTS5 tables whose rowid is the message's (conversation's) id. Triggers on chat_message and
  chat_conversation only queue ids in plain tables (`search_*_pending`) when a message's text becomes final,
  changes or goes (a checkpoint of a streaming reply matches no trigger's WHEN), and when a title changes;
  deletes fire them too, cascades included (Django deletes the rows). A search first catches the index up
  (`sqlite_index_caught_up`: explicit statements, in bounded batches), then reads it. Prefix indexes of 2 and 3
  characters (migration 0002). Characters 2 and 3 are removed from the indexed text, since the snippets use
  them to mark matches.

SQLite drops a table's triggers with the table, and Django's schema editor rebuilds a table (create, copy,
drop, rename) for many changes: a later chat migration that alters Message or Conversation on SQLite leaves
the FTS tables without triggers. `sqlite_triggers_restored` (post_migrate, sent for chat) puts back the missing
ones, and does nothing at all when every trigger is there, which is every time but that one: a flush emits
post_migrate too, and changing the schema of a database that other connections have open breaks them. No
trigger may sit on another table and name chat_message or chat_conversation: it survives the drop, and the
rename of new__chat_message then fails on it ("error in trigger …: no such table: main.chat_message").
"""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db.models import F, Func, Q, TextField

CONFIG = "english"  # PostgreSQL's stemming; SQLite's FTS5 tables use the porter stemmer to match it
STREAMING = "streaming"  # chat.Message.Status.STREAMING, spelled out: migrations must not import models


class MessageTextVector(Func):
    """`to_tsvector` of the strings of a message's text blocks (the `content` JSON)."""

    template = (
        f"to_tsvector('{CONFIG}'::regconfig, "
        """jsonb_path_query_array(%(expressions)s, '$[*] ? (@.type == "text").text'))"""
    )
    output_field = SearchVectorField()


class MessageText(Func):
    """A message's text blocks joined by newlines, as SQL: what PostgreSQL's headline is cut from."""

    template = (
        "(SELECT string_agg(block #>> '{}', E'\\n') FROM "
        """jsonb_path_query(%(expressions)s, '$[*] ? (@.type == "text").text') AS block)"""
    )
    output_field = TextField()


# ts_headline drops what PostgreSQL's parser takes for HTML tags and entities (`<b>`, `&amp;`): a snippet must
# show the text as written, so `<`, `>` and `&` go into the headline as these private-use characters and come
# back after it (search/selectors.py), and the text's own copies of them, like the marks, are removed first.
HEADLINE_STANDINS = {"<": "\ue000", ">": "\ue001", "&": "\ue002"}


class HeadlineText(Func):
    """The text a headline is cut from: without the marks' characters and the stand-ins, `<>&` stood in for."""

    template = "translate(%(expressions)s, E'<>&\\x02\\x03\\ue000\\ue001\\ue002', E'\\ue000\\ue001\\ue002')"
    output_field = TextField()


def message_vector():
    return MessageTextVector(F("content"))


def title_vector():
    return SearchVector("title", config=CONFIG)


def postgres_indexes() -> list[tuple[str, GinIndex]]:
    """(model name in chat, index) for migration 0001 on PostgreSQL."""
    return [
        # search.selectors: a user's finished messages matching a query, newest first.
        (
            "message",
            GinIndex(message_vector(), condition=~Q(status=STREAMING), name="search_message_text"),
        ),
        # search.selectors: a user's conversations whose title matches.
        ("conversation", GinIndex(title_vector(), name="search_conversation_title")),
    ]


TOKENIZE = "porter unicode61 remove_diacritics 2"
# Prefix indexes for the 2- and 3-character prefixes of every term: a short last word (`"ga"*`) reads one entry
# instead of walking every term that starts with it. (A 1-character last word is not a prefix at all:
# search/selectors.py.) Longer prefixes read a range of the main index.
PREFIX = "2 3"
FTS_TABLES = {
    "search_message_fts": (
        f"CREATE VIRTUAL TABLE search_message_fts USING fts5(text, tokenize = '{TOKENIZE}', prefix = '{PREFIX}')"
    ),
    "search_conversation_fts": (
        "CREATE VIRTUAL TABLE search_conversation_fts "
        f"USING fts5(title, tokenize = '{TOKENIZE}', prefix = '{PREFIX}')"
    ),
}
SQLITE_TABLES = {
    **FTS_TABLES,
    # The ids whose index entry is out of date: what the triggers on the app's tables write.
    "search_message_pending": "CREATE TABLE search_message_pending (message_id integer NOT NULL PRIMARY KEY)",
    "search_conversation_pending": (
        "CREATE TABLE search_conversation_pending (conversation_id integer NOT NULL PRIMARY KEY)"
    ),
}


def _clean(sql: str) -> str:
    """`sql` without the characters that mark matches in snippets (and PostgreSQL's stand-ins, so that both
    databases show the same snippet)."""
    for character in (2, 3, 0xE000, 0xE001, 0xE002):
        sql = f"replace({sql}, char({character}), '')"
    return sql


def _message_text(row: str) -> str:
    """The SQL for the text blocks of `row`'s content, joined by newlines (cf. chat.Message.text)."""
    return _clean(
        "coalesce((SELECT group_concat(json_extract(block.value, '$.text'), char(10)) "
        f"FROM json_each({row}.content) AS block WHERE json_extract(block.value, '$.type') = 'text'), '')"
    )


def _message_pending(row: str) -> str:
    return f"INSERT OR IGNORE INTO search_message_pending (message_id) VALUES ({row}.id);"


def _conversation_pending(row: str) -> str:
    return f"INSERT OR IGNORE INTO search_conversation_pending (conversation_id) VALUES ({row}.id);"


SQLITE_TRIGGERS = {
    # On the app's tables, each only notes an id in a plain table: a statement of the app never touches an FTS5
    # table. (An FTS5 table runs SQL of its own while a statement using it is prepared; on a connection whose
    # copy of the schema another connection made stale, that resets the schema under the statement being
    # prepared, which then fails with "no such table" for a table that is there, once per connection.)
    #
    # A message written finished (a user message, an imported one); a streaming reply waits for its end.
    "search_message_inserted": f"""
        CREATE TRIGGER search_message_inserted AFTER INSERT ON chat_message
        WHEN NEW.status != '{STREAMING}'
        BEGIN {_message_pending("NEW")} END""",
    # Its text became final (a reply settled, stopped, failed or was swept), went back to streaming (Continue),
    # or a finished message changed. Not a checkpoint: streaming before and after.
    "search_message_updated": f"""
        CREATE TRIGGER search_message_updated AFTER UPDATE OF content, status ON chat_message
        WHEN (OLD.status = '{STREAMING}') != (NEW.status = '{STREAMING}')
            OR (NEW.status != '{STREAMING}' AND OLD.content IS NOT NEW.content)
        BEGIN {_message_pending("NEW")} END""",
    "search_message_deleted": f"""
        CREATE TRIGGER search_message_deleted AFTER DELETE ON chat_message
        BEGIN {_message_pending("OLD")} END""",
    "search_conversation_inserted": f"""
        CREATE TRIGGER search_conversation_inserted AFTER INSERT ON chat_conversation
        WHEN NEW.title != ''
        BEGIN {_conversation_pending("NEW")} END""",
    "search_conversation_updated": f"""
        CREATE TRIGGER search_conversation_updated AFTER UPDATE OF title ON chat_conversation
        WHEN OLD.title IS NOT NEW.title
        BEGIN {_conversation_pending("NEW")} END""",
    "search_conversation_deleted": f"""
        CREATE TRIGGER search_conversation_deleted AFTER DELETE ON chat_conversation
        BEGIN {_conversation_pending("OLD")} END""",
}

# Catching up (and filling from scratch) is explicit statements in the caller's transaction, never triggers on
# the queues: a trigger body naming chat_message or chat_conversation sits on another table, survives a remake of
# theirs, and makes SQLite's rename of new__chat_message fail ("error in trigger …: no such table").
CATCH_UP_BATCH = 500  # ids per statement
CATCH_UP_BATCHES = 10  # batches per search: at most 5,000 rows re-indexed in one search's request


def _message_indexed(where: str) -> str:
    """INSERT into the message index the finished messages `m` matching `where`."""
    return f"""INSERT INTO search_message_fts (rowid, text)
        SELECT m.id, {_message_text("m")} FROM chat_message AS m
        WHERE ({where}) AND m.status != '{STREAMING}' AND json_valid(m.content)"""


def _conversation_indexed(where: str) -> str:
    """INSERT into the title index the titled conversations `c` matching `where`."""
    return f"""INSERT INTO search_conversation_fts (rowid, title)
        SELECT c.id, {_clean("c.title")} FROM chat_conversation AS c WHERE ({where}) AND c.title != ''"""


# (queue, its id column, FTS table, the row's alias and the INSERT of a row set): one per index.
SQLITE_QUEUES = (
    ("search_message_pending", "message_id", "search_message_fts", "m", _message_indexed),
    ("search_conversation_pending", "conversation_id", "search_conversation_fts", "c", _conversation_indexed),
)

SQLITE_FILL = [
    "DELETE FROM search_message_pending",
    "DELETE FROM search_conversation_pending",
    "DELETE FROM search_message_fts",
    "DELETE FROM search_conversation_fts",
    _message_indexed("1"),
    _conversation_indexed("1"),
]

# Whether there is anything to catch up on. The first statement of every search, and it reads only plain
# tables: a schema that another connection changed is reloaded by it, before any statement that uses an FTS5
# table is prepared (see SQLITE_TRIGGERS).
SQLITE_PENDING = "SELECT EXISTS (SELECT 1 FROM search_message_pending) OR EXISTS (SELECT 1 FROM search_conversation_pending)"


def sqlite_schema_names(cursor, kind: str) -> set[str]:
    cursor.execute("SELECT name FROM sqlite_master WHERE type = %s", [kind])
    return {name for (name,) in cursor.fetchall()}


def sqlite_index_fill(cursor) -> None:
    """Index every finished message and every title from scratch (migration 0001, `manage.py search_rebuild`)."""
    for statement in SQLITE_FILL:
        cursor.execute(statement)


def sqlite_index_caught_up(cursor, *, batches: int | None = None) -> bool:
    """Bring the index up to date with the rows changed since the last time, oldest ids first, in batches of
    CATCH_UP_BATCH ids per queue, each batch its own transaction (the write lock is held for one batch, not for
    the whole backlog), at most `batches` (CATCH_UP_BATCHES) of them. Per batch and queue: the ids are read off the queue, their
    index entries deleted, the rows as they are now indexed again (none for a row that is gone, or streaming),
    and the ids taken off the queue. Returns whether the queues are empty now; what is left waits for the next
    search. The caller has run SQLITE_PENDING on this connection just before (see there)."""
    from django.db import transaction

    for _ in range(CATCH_UP_BATCHES if batches is None else batches):
        full = False
        with transaction.atomic(using=cursor.db.alias):
            for queue, column, fts, alias, indexed in SQLITE_QUEUES:
                cursor.execute(f"SELECT {column} FROM {queue} ORDER BY {column} LIMIT %s", [CATCH_UP_BATCH])
                ids = [row_id for (row_id,) in cursor.fetchall()]
                if not ids:
                    continue
                full = full or len(ids) == CATCH_UP_BATCH
                marks = ", ".join(["%s"] * len(ids))
                cursor.execute(f"DELETE FROM {fts} WHERE rowid IN ({marks})", ids)
                cursor.execute(indexed(f"{alias}.id IN ({marks})"), ids)
                cursor.execute(f"DELETE FROM {queue} WHERE {column} IN ({marks})", ids)
        if not full:
            return True
    cursor.execute(SQLITE_PENDING)
    return not cursor.fetchone()[0]


# The first shape's catch-up triggers, on the queues, whose bodies named chat_message and chat_conversation.
FIRST_SHAPE_TRIGGERS = ("search_message_caught_up", "search_conversation_caught_up")


def sqlite_first_shape_dropped(*, using="default", **kwargs) -> None:
    """pre_migrate: drop the first shape's catch-up triggers, before any migration of the plan runs. Migration
    0002 drops them too, but `migrate` runs chat's migrations before search's: a chat migration that remakes
    chat_message would meet them first. Reads sqlite_master only, once they are gone."""
    from django.db import connections

    database = connections[using]
    if database.vendor != "sqlite":
        return
    with database.cursor() as cursor:
        for name in sorted(set(FIRST_SHAPE_TRIGGERS) & sqlite_schema_names(cursor, "trigger")):
            cursor.execute(f"DROP TRIGGER {name}")


def sqlite_triggers_restored(*, using="default", **kwargs) -> None:
    """post_migrate: create the SQLite triggers a table rebuild dropped, and refill the index they missed while
    they were gone. A no-op (two reads of sqlite_master) when they are all there, and off SQLite, and before
    migration 0001 made the tables."""
    from django.db import connections

    database = connections[using]
    if database.vendor != "sqlite":
        return
    with database.cursor() as cursor:
        if set(SQLITE_TABLES) - sqlite_schema_names(cursor, "table"):
            return
        missing = set(SQLITE_TRIGGERS) - sqlite_schema_names(cursor, "trigger")
        for name in sorted(missing):
            cursor.execute(SQLITE_TRIGGERS[name])
        if missing:
            sqlite_index_fill(cursor)
