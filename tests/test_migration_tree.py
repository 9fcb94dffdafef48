"""The tree migration (chat 0008 + 0009) on a database filled by the code before the tree: every message is
kept, each conversation becomes one path in id order, and the ledger and the attachments are not touched.
On SQLite in the suite's own database; on PostgreSQL by the same test in a pytest of its own on a fresh
database (run whenever PostgreSQL is reachable, and always under CI=true)."""

import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from cluster import drop_postgres_database, fresh_postgres_database, postgres_reachable, require
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

ROOT = Path(__file__).resolve().parent.parent
BEFORE_THE_TREE = ("chat", "0007_attachment_pipeline")
# Fields of the rows the migration must leave alone, as they were before it (later fields are not compared).
LEDGER_FIELDS = (
    "id", "user_id", "conversation_id", "message_id", "model", "cost", "input_tokens", "settle_key",
    "created_at",
)
ATTACHMENT_FIELDS = ("id", "owner_id", "message_id", "name", "sha256", "file", "size", "kind", "created_at")


def migrated(targets) -> MigrationExecutor:
    """Migrate the test database to `targets`. Going back to before the tree also unapplies what depends on
    it (shares, and whatever later migrations build on chat 0008+): the executor plans that itself."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()  # the applied set changed; a stale graph would plan the next migrate wrong
    return executor


def latest_migrations() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def conversations_filled(apps) -> dict[str, list[int]]:
    """Rows as the code before the tree wrote them: two conversations whose messages interleave by id, one
    empty, attachments and ledger rows. Returns each conversation's message ids in id order."""
    User = apps.get_model(settings.AUTH_USER_MODEL)
    Conversation = apps.get_model("chat", "Conversation")
    Message = apps.get_model("chat", "Message")
    Attachment = apps.get_model("chat", "Attachment")
    ApiCall = apps.get_model("chat", "ApiCall")

    alice = User.objects.create(username="alice", password="!")
    bob = User.objects.create(username="bob", password="!")
    plans = Conversation.objects.create(owner=alice, title="Plans", model="auto")
    recipes = Conversation.objects.create(owner=bob, title="Recipes", model="auto")
    Conversation.objects.create(owner=alice, title="Empty", model="auto")
    ids = {"Plans": [], "Recipes": [], "Empty": []}
    for turn in range(3):
        for conversation, owner in ((plans, alice), (recipes, bob)):
            asked = Message.objects.create(
                conversation=conversation, role="user", content=[{"type": "text", "text": f"Question {turn}"}]
            )
            Attachment.objects.create(
                owner=owner, message=asked, kind="pdf", name=f"notes-{turn}.pdf", sha256=f"{turn}" * 64,
                media_type="application/pdf", file=f"attachments/{turn}.pdf", size=10 + turn,
            )
            answered = Message.objects.create(
                conversation=conversation, role="assistant", model="claude-test", cost=Decimal("0.000105"),
                content=[{"type": "text", "text": f"Answer {turn}"}],
            )
            ApiCall.objects.create(
                user=owner, conversation=conversation, message=answered, model="claude-test",
                cost=Decimal("0.000105"), input_tokens=10, settle_key=f"{answered.pk}:1:1",
            )
            ids[conversation.title] += [asked.pk, answered.pk]
    # An upload still waiting in the composer, and a ledger row whose conversation was deleted.
    Attachment.objects.create(
        owner=alice, kind="image", name="draft.png", sha256="d" * 64, media_type="image/png",
        file="draft.png", size=5,
    )
    ApiCall.objects.create(user=alice, model="claude-test", cost=Decimal("0.5"), settle_key="gone:1:1")
    return ids


def rows(model, fields) -> list[tuple]:
    return list(model.objects.order_by("id").values_list(*fields))


@pytest.mark.django_db(transaction=True)
def test_every_conversation_becomes_one_path_in_id_order_and_nothing_else_changes():
    latest = latest_migrations()
    try:
        executor = migrated([BEFORE_THE_TREE])
        # The models as the database has them now: chat before the tree, every other app as it is today.
        old_apps = executor.loader.project_state(list(executor.loader.applied_migrations)).apps
        ids = conversations_filled(old_apps)
        ledger = rows(old_apps.get_model("chat", "ApiCall"), LEDGER_FIELDS)
        attachments = rows(old_apps.get_model("chat", "Attachment"), ATTACHMENT_FIELDS)
        message_count = old_apps.get_model("chat", "Message").objects.count()
    finally:
        # Also when the old code's rows could not be written: later tests need the latest schema.
        executor = migrated([("chat", "0008_message_tree")])
        with CaptureQueriesContext(connection) as linking:
            migrated([("chat", "0009_message_tree_paths")])
        executor = migrated(latest)

    apps = executor.loader.project_state(latest).apps
    Conversation = apps.get_model("chat", "Conversation")
    Message = apps.get_model("chat", "Message")
    assert Message.objects.count() == message_count == 12
    for title, message_ids in ids.items():
        conversation = Conversation.objects.get(title=title)
        parents = dict(Message.objects.filter(conversation=conversation).values_list("id", "parent_id"))
        assert parents == dict(zip(message_ids, [None, *message_ids]))  # each one's parent: the one before
        assert conversation.current_leaf_id == (message_ids[-1] if message_ids else None)
    # Two set-based UPDATEs, not a few queries per conversation.
    updates = [query["sql"] for query in linking if query["sql"].lstrip().upper().startswith("UPDATE")]
    assert [sql.split()[1].strip('"') for sql in updates] == ["chat_message", "chat_conversation"], updates
    assert rows(apps.get_model("chat", "ApiCall"), LEDGER_FIELDS) == ledger
    assert rows(apps.get_model("chat", "Attachment"), ATTACHMENT_FIELDS) == attachments


@pytest.mark.scaleout
def test_the_migration_keeps_every_message_on_postgresql_too():
    """The test above, run by a pytest of its own whose database is a fresh PostgreSQL one."""
    require(postgres_reachable(), "PostgreSQL")
    name = f"claudechat_migration_{uuid.uuid4().hex[:8]}"
    # pytest-django creates (and drops) test_<name> next to it; the server's own database is never touched.
    env = {**os.environ, "DATABASE_URL": fresh_postgres_database(name)}
    same_test = test_every_conversation_becomes_one_path_in_id_order_and_nothing_else_changes.__name__
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--create-db",
             f"{Path(__file__).relative_to(ROOT)}::{same_test}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
        )
    finally:
        drop_postgres_database(f"test_{name}")
        drop_postgres_database(name)

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "1 passed" in result.stdout
