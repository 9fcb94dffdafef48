"""Full-text search over the user's own conversations: titles, and the text of finished messages.

One entry point, `search_hits`, for the sidebar (search/views.py) and the model's `search_conversations`
tool (chat/llm/tools.py). The query text is untrusted: it is cut into words here and each word is handed to
the database as a quoted term, never as query syntax, so `"`, `*`, `NEAR(`, `OR`, `-` and `:` are only
separators. Every word must match (the last one as a prefix, since people type it); stemming is English on
both databases (PostgreSQL's `english` configuration, SQLite's porter tokenizer), so "tree" finds "trees".

Hits are newest first, not ranked: the two databases rank differently and the sidebar reads like a history.
Archived conversations are searched too (the hit says so): search is how an archived chat is found again.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.postgres.search import SearchHeadline, SearchQuery
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import escape

from chat.models import Conversation, Message
from search import indexes

MAX_QUERY_CHARS = 200
MAX_TERMS = 12
MAX_HITS = 20
SNIPPET_WORDS = 16
# The snippets mark a match between these (removed from the indexed text, so they never come from a message).
MARK_START, MARK_END = "\x02", "\x03"
WORD = re.compile(r"[^\W_]+")
# The last word is a prefix from this many characters on; a shorter one must match a whole word: a prefix of
# one character would read every term of the index that starts with it.
MIN_PREFIX_CHARS = 2
# PostgreSQL: a search that runs longer is cancelled (QueryRefused), so no query, however common its words,
# holds a connection for longer.
STATEMENT_TIMEOUT_MS = 3000
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout


class QueryRefused(ValueError):
    """A query that cannot be run; `detail` says why, in words for the user."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class SearchHit:
    conversation_id: int
    title: str
    archived: bool
    # The matching message; None when only the title matched.
    message_id: int | None
    role: str
    # The matching part of the text with the matches between MARK_START and MARK_END: see `snippet_html`.
    snippet: str
    date: datetime

    def snippet_html(self) -> str:
        """The snippet escaped, each match in <mark>: safe to insert as HTML."""
        return escape(self.snippet).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")

    def snippet_text(self) -> str:
        return self.snippet.replace(MARK_START, "").replace(MARK_END, "")


def search_terms(text: str) -> list[str]:
    """The words of a query, at most MAX_TERMS; QueryRefused for one too long or without a word."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryRefused(f"A search can be at most {MAX_QUERY_CHARS} characters long.")
    terms = WORD.findall(text)
    if not terms:
        raise QueryRefused("Type a word to search for.")
    return terms[:MAX_TERMS]


def search_hits(
    user_id: int,
    text: str,
    *,
    limit: int = MAX_HITS,
    titles: bool = True,
    exclude_conversation_id: int | None = None,
) -> list[SearchHit]:
    """The user's messages (and, with `titles`, conversations by title) matching `text`, newest first, at most
    `limit` (itself at most MAX_HITS). Only `user_id`'s own conversations are read; a streaming reply is not
    searched until it ends. Raises QueryRefused for a query that cannot be run. Whatever the number of matches:
    on PostgreSQL two queries (messages, titles); on SQLite one more before them that reads the queue of rows
    changed since the last search, and, when there are any, a transaction that catches the index up."""
    terms = search_terms(text)
    limit = min(limit, MAX_HITS)
    search = _sqlite_hits if connection.vendor == "sqlite" else _postgres_hits
    hits = search(user_id, terms, limit=limit, titles=titles, exclude_conversation_id=exclude_conversation_id)
    return sorted(hits, key=lambda hit: hit.date, reverse=True)[:limit]


def _last_is_prefix(terms: list[str]) -> bool:
    return len(terms[-1]) >= MIN_PREFIX_CHARS


# --- SQLite: FTS5 -----------------------------------------------------------------------------------------


def fts5_query(terms: list[str]) -> str:
    """Each term a quoted string (`"` doubled inside), the last one a prefix (from MIN_PREFIX_CHARS on);
    juxtaposed terms must all match."""
    quoted = ['"' + term.replace('"', '""') + '"' for term in terms]
    return " ".join(quoted) + ("*" if _last_is_prefix(terms) else "")


def _sqlite_hits(user_id, terms, *, limit, titles, exclude_conversation_id) -> list[SearchHit]:
    match = fts5_query(terms)
    other = "" if exclude_conversation_id is None else "AND c.id != %s"
    excluded = [] if exclude_conversation_id is None else [exclude_conversation_id]
    # The FTS table hands out its rows in descending rowid (message id) order itself, so LIMIT stops the scan
    # and snippets are cut only for the rows returned.
    messages = f"""
        SELECT c.id, c.title, c.archived_at, m.id, m.role,
               snippet(search_message_fts, 0, char(2), char(3), '…', {SNIPPET_WORDS}), m.created_at
        FROM search_message_fts AS f
        JOIN chat_message AS m ON m.id = f.rowid
        JOIN chat_conversation AS c ON c.id = m.conversation_id
        WHERE search_message_fts MATCH %s AND c.owner_id = %s AND m.status != %s {other}
        ORDER BY f.rowid DESC LIMIT %s"""
    conversations = f"""
        SELECT c.id, c.title, c.archived_at, NULL, '',
               highlight(search_conversation_fts, 0, char(2), char(3)), c.updated_at
        FROM search_conversation_fts AS f
        JOIN chat_conversation AS c ON c.id = f.rowid
        WHERE search_conversation_fts MATCH %s AND c.owner_id = %s {other}
        ORDER BY c.updated_at DESC LIMIT %s"""
    rows = []
    with connection.cursor() as cursor:
        cursor.execute(indexes.SQLITE_PENDING)
        if cursor.fetchone()[0]:
            indexes.sqlite_index_caught_up(cursor)
        cursor.execute(messages, [match, user_id, Message.Status.STREAMING, *excluded, limit])
        rows += cursor.fetchall()
        if titles:
            cursor.execute(conversations, [match, user_id, *excluded, limit])
            rows += cursor.fetchall()
    return [
        SearchHit(
            conversation_id=conversation_id,
            title=title,
            archived=archived_at is not None,
            message_id=message_id,
            role=role,
            snippet=_one_line(snippet),
            date=_datetime(date),
        )
        for conversation_id, title, archived_at, message_id, role, snippet, date in rows
    ]


def _datetime(value) -> datetime:
    """A timestamp of a raw SQLite row (text, in UTC) as the ORM would give it: aware."""
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


# --- PostgreSQL: django.contrib.postgres.search -------------------------------------------------------------


def tsquery(terms: list[str]) -> SearchQuery:
    """Each term a quoted lexeme (`'` doubled inside), the last one a prefix (`:*`), all of them required."""
    quoted = ["'" + term.replace("'", "''") + "'" for term in terms]
    if _last_is_prefix(terms):
        quoted[-1] += ":*"
    return SearchQuery(" & ".join(quoted), search_type="raw", config=indexes.CONFIG)


def _postgres_hits(user_id, terms, *, limit, titles, exclude_conversation_id) -> list[SearchHit]:
    query = tsquery(terms)
    headline = {
        "config": indexes.CONFIG,
        "start_sel": MARK_START,
        "stop_sel": MARK_END,
        "max_words": SNIPPET_WORDS,
        "min_words": SNIPPET_WORDS // 2,
    }
    # The filter repeats the GIN indexes' expressions (search/indexes.py), and the message index's condition.
    messages = (
        Message.objects.alias(document=indexes.message_vector())
        .filter(document=query, conversation__owner_id=user_id)
        .exclude(status=Message.Status.STREAMING)
        .annotate(
            snippet=SearchHeadline(indexes.HeadlineText(indexes.MessageText("content")), query, **headline)
        )
        .select_related("conversation")
        .only(
            "id", "role", "created_at", "conversation__id", "conversation__title", "conversation__archived_at"
        )
        .order_by("-id")
    )
    conversations = (
        Conversation.objects.alias(document=indexes.title_vector())
        .filter(document=query, owner_id=user_id)
        .annotate(
            snippet=SearchHeadline(indexes.HeadlineText("title"), query, highlight_all=True, **headline)
        )
        .only("id", "title", "archived_at", "updated_at")
        .order_by("-updated_at", "-id")
    )
    if exclude_conversation_id is not None:
        messages = messages.exclude(conversation_id=exclude_conversation_id)
        conversations = conversations.exclude(pk=exclude_conversation_id)
    try:
        # SET LOCAL lasts until the end of this transaction: the two queries, nothing else of the request.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
            found_messages = list(messages[:limit])
            found_titles = list(conversations[:limit]) if titles else []
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) != QUERY_CANCELED:
            raise
        raise QueryRefused("That search took too long. Add a word or two to narrow it down.") from error
    hits = [
        SearchHit(
            conversation_id=message.conversation.pk,
            title=message.conversation.title,
            archived=message.conversation.archived_at is not None,
            message_id=message.pk,
            role=message.role,
            snippet=_standins_replaced(message.snippet),
            date=message.created_at,
        )
        for message in found_messages
    ]
    if found_titles:
        hits += [
            SearchHit(
                conversation_id=conversation.pk,
                title=conversation.title,
                archived=conversation.archived_at is not None,
                message_id=None,
                role="",
                snippet=_standins_replaced(conversation.snippet),
                date=conversation.updated_at,
            )
            for conversation in found_titles
        ]
    return hits


def _standins_replaced(snippet: str) -> str:
    for character, standin in indexes.HEADLINE_STANDINS.items():
        snippet = snippet.replace(standin, character)
    return _one_line(snippet)


def _one_line(snippet: str | None) -> str:
    return " ".join((snippet or "").split())
