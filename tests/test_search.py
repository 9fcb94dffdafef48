"""Sidebar search and the model's search tool (search/selectors.py), on the database's own full-text search.

Every test here runs on SQLite in the suite's own database, and on PostgreSQL by
tests/test_search_postgres.py, which runs this file in a pytest of its own on a fresh PostgreSQL database.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat import services
from chat.llm import tools
from chat.models import Conversation, Message
from search import indexes, selectors
from search.selectors import QueryRefused, search_hits

pytestmark = pytest.mark.django_db


def said(conversation, role, text, *, parent=None, **fields):
    return Message.objects.create(
        conversation=conversation,
        role=role,
        parent=parent,
        content=[{"type": "text", "text": text}],
        **fields,
    )


def titled(owner, title):
    conversation = services.conversation_create(owner=owner)
    services.conversation_rename(conversation=conversation, title=title)
    return conversation


def found(user, text, **options):
    return [(hit.conversation_id, hit.message_id) for hit in search_hits(user.pk, text, **options)]


@pytest.fixture
def trees(owner):
    """A conversation about B-trees: a question and its answer."""
    conversation = titled(owner, "Indexes")
    question = said(conversation, "user", "How do B-trees stay balanced?")
    answer = said(
        conversation,
        "assistant",
        "Every insert splits a full node, so all leaves keep one depth.",
        parent=question,
    )
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=answer)
    return conversation, question, answer


def test_a_word_finds_the_message_with_the_match_marked(owner, trees):
    conversation, question, _ = trees

    [hit] = search_hits(owner.pk, "balanced")

    assert (hit.conversation_id, hit.title, hit.message_id, hit.role) == (
        conversation.pk,
        "Indexes",
        question.pk,
        "user",
    )
    assert hit.snippet_html() == "How do B-trees stay <mark>balanced</mark>?"
    assert hit.date == question.created_at
    assert not hit.archived


def test_the_last_word_is_a_prefix_and_every_word_must_match(owner, trees):
    _, question, answer = trees

    assert found(owner, "b-trees bal") == [(question.conversation_id, question.pk)]
    assert found(owner, "lea") == [(answer.conversation_id, answer.pk)]  # leaves, as it is being typed
    assert found(owner, "trees purple") == []


def test_words_are_stemmed_so_a_plural_finds_the_singular(owner, trees):
    _, question, answer = trees

    assert found(owner, "tree balance") == [(question.conversation_id, question.pk)]
    assert found(owner, "splitting nodes") == [(answer.conversation_id, answer.pk)]


def test_a_title_matches_without_its_messages(owner, trees):
    conversation, _, _ = trees

    [hit] = search_hits(owner.pk, "indexes")

    assert (hit.conversation_id, hit.message_id, hit.snippet_html()) == (
        conversation.pk,
        None,
        "<mark>Indexes</mark>",
    )


def test_a_rename_is_searched_at_once_and_the_old_title_no_longer(owner, trees):
    conversation, _, _ = trees

    services.conversation_rename(conversation=conversation, title="Storage engines")

    assert found(owner, "storage") == [(conversation.pk, None)]
    assert found(owner, "indexes") == []


@pytest.mark.parametrize(
    "hostile",
    [
        '"',
        '""',
        "*",
        "NEAR(",
        "OR",
        "AND",
        "NOT",
        "-",
        "'",
        ":",
        "&",
        "|",
        "!",
        "(",
        ")",
        "\\",
        "^",
        "{",
        "}",
        "<->",
        "_",
        "…",
        "   ",
    ],
)
def test_query_syntax_alone_is_refused_with_a_reason(owner, trees, hostile):
    """Punctuation is no word. (NEAR, OR, AND and NOT are words, searched as such: they match nothing here.)"""
    if any(character.isalpha() for character in hostile):
        assert found(owner, hostile) == []
        return
    with pytest.raises(QueryRefused, match="Type a word"):
        search_hits(owner.pk, hostile)


@pytest.mark.parametrize(
    "hostile",
    [
        'b-trees" OR "purple',
        "b-trees*",
        "NEAR(b trees, balanced)",
        "b trees -balanced",
        "b:* & trees",
        "trees' | 'b",
        "{b}trees^balanced",
        "(b | trees)",
        "b\\trees",
        'balanced"',
    ],
)
def test_query_syntax_inside_a_query_is_only_a_separator(owner, trees, hostile):
    """None of it reaches the database as syntax: `-balanced` excludes nothing, `OR` and `NEAR` are words that
    must match too."""
    _, question, _ = trees

    expected = [] if "OR" in hostile or "NEAR" in hostile else [(question.conversation_id, question.pk)]

    assert found(owner, hostile) == expected


def test_a_long_query_is_refused_and_200_characters_are_not(owner, trees):
    _, question, _ = trees

    with pytest.raises(QueryRefused, match="at most 200 characters"):
        search_hits(owner.pk, "balanced " * 30)
    assert found(owner, ("balanced " * 23)[:200]) == [(question.conversation_id, question.pk)]


def test_hits_are_newest_first_and_at_most_twenty(owner):
    conversation = titled(owner, "Notes")
    messages = [said(conversation, "user", f"note number {n}") for n in range(25)]

    hits = search_hits(owner.pk, "note")

    assert [hit.message_id for hit in hits] == [m.pk for m in reversed(messages)][:20]
    assert len(search_hits(owner.pk, "note", limit=500)) == 20


def test_the_search_costs_the_same_queries_for_few_hits_or_many(owner, django_assert_num_queries):
    """PostgreSQL: messages and titles, in a transaction (a savepoint inside the test's) that sets their
    statement_timeout. SQLite: the queue of changed rows read first, then (after writes) its catch-up, one
    batch in a transaction (a savepoint): per queue its ids read, their entries deleted and inserted again, the
    ids taken off; then messages and titles."""
    sqlite = connection.vendor == "sqlite"
    after_writes, unchanged = (1 + 2 + 2 * 4 + 2, 3) if sqlite else (5, 5)
    conversation = titled(owner, "Notes")
    said(conversation, "user", "one note")
    with django_assert_num_queries(after_writes):
        assert len(search_hits(owner.pk, "note")) == 2  # the title and the message
    for n in range(30):
        said(conversation, "user", f"note {n}")
    services.conversation_rename(conversation=conversation, title="Notes again")
    with django_assert_num_queries(after_writes):
        assert len(search_hits(owner.pk, "note")) == 20
    with django_assert_num_queries(unchanged):
        assert len(search_hits(owner.pk, "note")) == 20


def test_only_text_blocks_are_searched_not_thinking_or_tools(owner):
    conversation = titled(owner, "Maths")
    reply = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content=[
            {"type": "thinking", "thinking": "secretthought", "signature": "sig"},
            {"type": "tool_use", "id": "t1", "name": "calculator", "input": {"expression": "toolinput"}},
            {"type": "tool_result", "tool_use_id": "t1", "content": "toolresult"},
            {"type": "text", "text": "The answer is 391."},
        ],
    )

    assert found(owner, "391") == [(conversation.pk, reply.pk)]
    for hidden in ("secretthought", "toolinput", "toolresult", "calculator", "sig"):
        assert found(owner, hidden) == [], hidden


def test_an_outsider_finds_nothing_of_anothers_conversations(owner, outsider, trees, client):
    mine = titled(outsider, "My B-trees")
    said(mine, "user", "My own balanced trees")

    assert found(outsider, "balanced") == [(mine.pk, mine.messages.get().pk)]
    assert found(outsider, "indexes") == []
    client.force_login(outsider)
    response = client.get(reverse("search"), {"q": "indexes"})
    assert response.status_code == 200
    assert response.json() == {"results": []}


def test_archived_conversations_are_searched_and_say_so(owner, trees):
    conversation, question, _ = trees
    services.conversation_archive(conversation=conversation, archived=True)

    [hit] = search_hits(owner.pk, "balanced")

    assert (hit.message_id, hit.archived) == (question.pk, True)


def test_deleted_messages_and_conversations_are_gone_from_the_hits(owner, trees):
    conversation, question, answer = trees
    other = titled(owner, "Other balanced things")
    said(other, "user", "balanced budgets")

    services.branch_delete(conversation=conversation, message_id=answer.pk)
    assert found(owner, "leaves") == []
    assert found(owner, "balanced") == [
        (other.pk, other.messages.get().pk),
        (other.pk, None),
        (conversation.pk, question.pk),
    ]

    services.conversation_delete(conversation=other)
    assert found(owner, "balanced") == [(conversation.pk, question.pk)]


def test_a_streaming_reply_is_searched_once_it_is_settled(owner, trees):
    conversation, _, answer = trees
    reply = Message.objects.create(
        conversation=conversation,
        role="assistant",
        parent=answer,
        status=Message.Status.STREAMING,
        owner_token="token",
    )
    content = [{"type": "text", "text": "Rotations keep red-black trees shallow"}]

    assert services.message_checkpoint(message_id=reply.pk, token="token", content=content, seq=3)
    assert found(owner, "rotations") == []

    services.message_finish(
        message_id=reply.pk,
        user_id=owner.pk,
        conversation_id=conversation.pk,
        status=Message.Status.COMPLETE,
        content=content,
        seq=4,
        model="claude-sonnet-4-5",
        token="token",
        stop_reason="max_tokens",
    )
    assert found(owner, "rotations") == [(conversation.pk, reply.pk)]

    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=reply)
    services.message_continue_start(message=Message.objects.get(pk=reply.pk))
    assert found(owner, "rotations") == []  # streaming again: its text is not final


def test_a_message_changed_after_it_was_finished_is_searched_as_it_is_now(owner, trees):
    _, question, _ = trees
    question.content = [{"type": "text", "text": "How do skip lists work?"}]
    question.save()

    assert found(owner, "balanced") == []
    assert found(owner, "skip") == [(question.conversation_id, question.pk)]


def test_marks_in_the_text_itself_are_not_taken_for_matches(owner):
    conversation = titled(owner, "Odd")
    said(conversation, "user", "<b>bold</b> \x02fake\x03 \ue000&amp; real")

    [hit] = search_hits(owner.pk, "real")

    assert hit.snippet_html() == "&lt;b&gt;bold&lt;/b&gt; fake &amp;amp; <mark>real</mark>"


def test_search_rebuild_indexes_everything_again(owner, trees):
    _, question, _ = trees
    out = StringIO()

    call_command("search_rebuild", stdout=out)

    assert found(owner, "balanced") == [(question.conversation_id, question.pk)]
    if connection.vendor == "sqlite":
        assert out.getvalue() == "Indexed 2 messages.\n"
    else:
        assert out.getvalue().startswith("Nothing to rebuild")


def test_the_endpoint_answers_json_never_cached(owner, trees, client):
    conversation, question, _ = trees
    client.force_login(owner)

    response = client.get(reverse("search"), {"q": "balanced"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    [result] = response.json()["results"]
    assert result == {
        "conversation": conversation.pk,
        "title": "Indexes",
        "archived": False,
        "message": question.pk,
        "role": "user",
        "snippet": "How do B-trees stay <mark>balanced</mark>?",
        "date": question.created_at.isoformat(),
        "url": f"/conversations/{conversation.pk}/?message={question.pk}",
    }


@pytest.mark.parametrize(
    ("q", "reason"),
    [
        ("", "Type a word to search for."),
        ('"*"', "Type a word to search for."),
        ("x" * 201, "A search can be at most 200 characters long."),
    ],
)
def test_the_endpoint_refuses_a_bad_query_with_its_reason(owner, client, q, reason):
    client.force_login(owner)

    response = client.get(reverse("search"), {"q": q})

    assert response.status_code == 400
    assert response.json() == {"error": reason}
    assert "no-store" in response["Cache-Control"]


def test_the_endpoint_needs_a_login(client):
    response = client.get(reverse("search"), {"q": "balanced"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_tool_uses_the_same_search_outside_the_current_conversation(owner, outsider, trees):
    _, question, _ = trees
    current = titled(owner, "Now")
    said(current, "user", "Search my conversations for balanced")
    search = tools.tools_for(tools.ToolContext(owner.pk, "UTC", current.pk), ["search_conversations"])[0]

    matches = json.loads(search.call({"query": "balanc"}))

    assert matches == [
        {
            "conversation": "Indexes",
            "date": question.created_at.date().isoformat(),
            "author": "user",
            "excerpt": "How do B-trees stay balanced?",
        }
    ]
    assert search.call({"query": "now"}) == "No message in the user's other conversations contains 'now'."
    with pytest.raises(ValueError, match="Type a word"):
        search.call({"query": '"*"'})


def test_a_hit_on_another_branch_shows_that_branch_and_stores_nothing(owner, outsider, trees, client):
    """The GET renders the branch through the hit read-only (a cross-site link can ask it) and tells the page
    to `switch` once its socket opens: current_leaf and tree_version are as they were."""
    conversation, question, answer = trees
    # An edit of the question, with its own reply, now on the active path.
    edited = said(conversation, "user", "How do skip lists stay fast?")
    edited_answer = said(conversation, "assistant", "Coin flips.", parent=edited)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=edited_answer)
    version = Conversation.objects.get(pk=conversation.pk).tree_version
    [hit] = search_hits(owner.pk, "leaves")
    assert hit.message_id == answer.pk
    client.force_login(owner)

    response = client.get(f"/conversations/{conversation.pk}/", {"message": hit.message_id})

    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.current_leaf_id, conversation.tree_version) == (edited_answer.pk, version)
    assert response.context["tree_data"]["version"] == version
    assert response.context["tree_data"]["path"] == [
        {"id": question.pk, "versions": [question.pk, edited.pk]},
        {"id": answer.pk, "versions": [answer.pk]},
    ]
    assert [m["id"] for m in response.context["tree_data"]["messages"]] == [question.pk, answer.pk]
    assert f'data-switch-message="{answer.pk}"' in response.content.decode()


def test_a_hit_while_a_reply_streams_shows_the_stored_path(owner, trees, client):
    """A switch would be refused `busy`: the page shows the stored path and asks for no switch."""
    conversation, _, answer = trees
    edited = said(conversation, "user", "How do skip lists stay fast?")
    streaming = said(conversation, "assistant", "", parent=edited, status=Message.Status.STREAMING)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=streaming)
    client.force_login(owner)

    response = client.get(f"/conversations/{conversation.pk}/", {"message": answer.pk})

    assert [entry["id"] for entry in response.context["tree_data"]["path"]] == [edited.pk, streaming.pk]
    assert 'data-switch-message=""' in response.content.decode()
    assert Conversation.objects.get(pk=conversation.pk).current_leaf_id == streaming.pk


def test_opening_a_message_already_shown_or_not_there_changes_nothing(owner, trees, client):
    conversation, question, answer = trees
    stranger = said(titled(owner, "Else"), "user", "elsewhere")
    client.force_login(owner)
    version = Conversation.objects.get(pk=conversation.pk).tree_version

    for message in (question.pk, stranger.pk, "x", "99999999999999999999999"):
        response = client.get(f"/conversations/{conversation.pk}/", {"message": message})
        assert response.status_code == 200
        assert [entry["id"] for entry in response.context["tree_data"]["path"]] == [question.pk, answer.pk]
        assert 'data-switch-message=""' in response.content.decode()

    conversation.refresh_from_db()
    assert (conversation.current_leaf_id, conversation.tree_version) == (answer.pk, version)


def test_an_outsider_opening_a_hit_url_gets_404(outsider, trees, client):
    conversation, _, answer = trees
    client.force_login(outsider)

    assert client.get(f"/conversations/{conversation.pk}/", {"message": answer.pk}).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_index_is_the_databases_own(owner, trees):
    """SQLite: FTS5 tables with their triggers, put back after a table rebuild dropped them and left alone
    otherwise. PostgreSQL: the queries' expressions are the GIN indexes' (with sequential scans off, a search
    without the owner's filter, whose own index the planner would rather use on a few rows, can only use them)."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            assert indexes.sqlite_schema_names(cursor, "trigger") >= set(indexes.SQLITE_TRIGGERS)
            cursor.execute("DROP TRIGGER search_message_inserted")
        try:
            conversation = titled(owner, "After")
            message = said(conversation, "user", "written while the trigger was gone")

            indexes.sqlite_triggers_restored()
        finally:
            indexes.sqlite_triggers_restored()  # whatever happened, later tests get their triggers back

        with connection.cursor() as cursor:
            assert indexes.sqlite_schema_names(cursor, "trigger") >= set(indexes.SQLITE_TRIGGERS)
        assert found(owner, "trigger") == [(conversation.pk, message.pk)]  # what it missed was indexed
        with CaptureQueriesContext(connection) as restoring:
            indexes.sqlite_triggers_restored()
        assert [query["sql"].split()[0] for query in restoring] == ["SELECT", "SELECT"]  # reads only

        # A streaming reply's checkpoints queue nothing; its end does.
        reply = Message.objects.create(
            conversation=conversation, role="assistant", parent=message, status="streaming", owner_token="t"
        )
        content = [{"type": "text", "text": "checkpointed"}]
        assert services.message_checkpoint(message_id=reply.pk, token="t", content=content, seq=1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT message_id FROM search_message_pending")
            assert cursor.fetchall() == []
            services.message_fail(message_id=reply.pk, token="t", content=content, seq=2, error="Cut.")
            cursor.execute("SELECT message_id FROM search_message_pending")
            assert cursor.fetchall() == [(reply.pk,)]
        return
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        messages = str(
            Message.objects.annotate(document=indexes.message_vector())
            .filter(document=selectors.tsquery(["balanced"]))
            .exclude(status=Message.Status.STREAMING)
            .explain()
        )
        titles = str(
            Conversation.objects.annotate(document=indexes.title_vector())
            .filter(document=selectors.tsquery(["indexes"]))
            .explain()
        )
        cursor.execute("RESET enable_seqscan")
    assert "search_message_text" in messages, messages
    assert "search_conversation_title" in titles, titles


@pytest.mark.django_db(transaction=True)
def test_a_connection_whose_schema_went_stale_writes_and_searches_at_once(owner):
    """Another connection changes the schema (a migration; in tests, a flush's post_migrate handlers) while this
    one has its copy of the schema loaded: its next statement must not fail. On SQLite, an FTS5 table first
    used on a stale schema runs SQL of its own while the statement is prepared, which resets the schema under
    that statement ("no such table: chat_conversation", for a table that is there). So the app's statements
    never touch an FTS5 table (the triggers only queue ids), and a search reads the queue first, which
    reloads the schema before anything uses one."""
    conversation = titled(owner, "Stale")
    message = said(conversation, "user", "before the change")
    with ThreadPoolExecutor(max_workers=1) as thread:

        def in_thread(work):
            return thread.submit(work).result()

        def stale_connection_in_thread():
            in_thread(connections.close_all)
            in_thread(
                lambda: Conversation.objects.filter(pk=conversation.pk).exists()
            )  # the schema is loaded
            with connection.cursor() as cursor:
                cursor.execute("CREATE TABLE search_test_stale (id integer)")
                cursor.execute("DROP TABLE search_test_stale")

        def written(title, text):
            services.conversation_rename(conversation=conversation, title=title)
            Message.objects.filter(pk=message.pk).update(content=[{"type": "text", "text": text}])

        try:
            for turn in ("first", "second"):
                stale_connection_in_thread()
                in_thread(lambda turn=turn: written(f"{turn} title", f"{turn} text"))
                stale_connection_in_thread()
                assert in_thread(lambda turn=turn: found(owner, turn)) == [
                    (conversation.pk, None),  # renamed after the message was written
                    (conversation.pk, message.pk),
                ]
                stale_connection_in_thread()  # and with nothing queued to catch up on
                assert in_thread(lambda turn=turn: found(owner, turn)) == [
                    (conversation.pk, None),
                    (conversation.pk, message.pk),
                ]
        finally:
            in_thread(connections.close_all)


def test_a_last_word_of_one_character_is_a_whole_word_not_a_prefix(owner, trees):
    """A prefix of one character would read every term that starts with it: below MIN_PREFIX_CHARS the last
    word must match as it stands."""
    conversation, question, answer = trees
    assert selectors.fts5_query(["stay", "b"]) == '"stay" "b"'
    assert selectors.fts5_query(["ba"]) == '"ba"*'
    assert found(owner, "stay b") == [(conversation.pk, question.pk)]  # "B-trees": "b" is a word of it
    assert found(owner, "balanced x") == []  # not "x…": no word is "x"
    assert found(owner, "balanced st") == [(conversation.pk, question.pk)]  # two characters: "stay"
    assert found(owner, "sp") == [(conversation.pk, answer.pk)]  # "splits"


@pytest.fixture
def search_clock(monkeypatch):
    """Pinned 40 seconds into a minute: 20 seconds are left of its window."""
    from search import views

    now = [1_700_000_000 // 60 * 60 + 40]
    monkeypatch.setattr(views, "clock", lambda: now[0])
    return now


def test_the_endpoint_refuses_past_the_searches_of_a_minute_with_the_reason(
    owner, outsider, trees, client, settings, search_clock
):
    settings.SEARCH_RATE_LIMIT_PER_MINUTE = 3
    client.force_login(owner)
    url = reverse("search")
    assert client.get(url, {"q": "*"}).status_code == 400  # refused before counting: not counted
    for _ in range(3):
        assert len(client.get(url, {"q": "balanced"}).json()["results"]) == 1

    refused = client.get(url, {"q": "balanced"})
    assert refused.status_code == 429
    assert refused.json() == {"error": "Too many searches in a minute. Try again in 20 seconds."}
    assert refused["Retry-After"] == "20"
    assert "no-store" in refused["Cache-Control"]

    client.force_login(outsider)  # a window per user
    assert client.get(url, {"q": "balanced"}).json() == {"results": []}
    client.force_login(owner)
    search_clock[0] += 20  # the next minute
    assert len(client.get(url, {"q": "balanced"}).json()["results"]) == 1

    settings.SEARCH_RATE_LIMIT_PER_MINUTE = 0  # no limit
    for _ in range(5):
        assert client.get(url, {"q": "balanced"}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_postgresql_cancels_a_search_past_its_statement_timeout_with_a_reason(owner, trees, monkeypatch):
    """Another connection holds chat_message locked: the search waits for it until statement_timeout cancels
    it, which is a QueryRefused, and the timeout was the search's only (SET LOCAL)."""
    if connection.vendor != "postgresql":
        return  # SQLite has no statement_timeout: its catch-up is bounded instead (tests/test_search_schema.py)
    import threading

    from django.db import transaction

    monkeypatch.setattr(selectors, "STATEMENT_TIMEOUT_MS", 200)
    locked, searched = threading.Event(), threading.Event()

    def holding_the_lock():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("LOCK TABLE chat_message IN ACCESS EXCLUSIVE MODE")
                locked.set()
                searched.wait(30)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as thread:
        holder = thread.submit(holding_the_lock)
        assert locked.wait(30)
        try:
            with pytest.raises(QueryRefused, match="took too long"):
                search_hits(owner.pk, "balanced")
        finally:
            searched.set()
        holder.result()
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("0",)
    assert found(owner, "balanced") == [(trees[0].pk, trees[1].pk)]
