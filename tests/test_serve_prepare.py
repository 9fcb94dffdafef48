"""`manage.py serve_prepare`: what `make run` runs before the server, in one process."""

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from chat.models import Message

pytestmark = pytest.mark.django_db


def test_it_recovers_replies_a_dead_server_left_streaming_and_collects_static_files(conversation, settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"
    left = Message.objects.create(
        conversation=conversation, role="assistant", status=Message.Status.STREAMING,
        content=[{"type": "text", "text": "Half a repl"}], owner_token="a-dead-process",
    )
    output = io.StringIO()

    call_command("serve_prepare", stdout=output)

    left.refresh_from_db()
    assert left.status == Message.Status.INTERRUPTED and left.content[0]["text"] == "Half a repl"
    assert "1 interrupted reply recovered." in output.getvalue()
    assert (settings.STATIC_ROOT / "manifest.webmanifest").is_file()
    assert (settings.STATIC_ROOT / "chat" / "main.js").is_file()
    executor = MigrationExecutor(connection)
    assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []
