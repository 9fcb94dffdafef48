"""Audit events are never changed or deleted: not by the model, not by a queryset, not by raw SQL, on SQLite and on
PostgreSQL. Deleting a user keeps their events; only `manage.py flush` empties the log, and the guard survives it."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cluster import drop_postgres_database, fresh_postgres_database, migrate, postgres_reachable, require
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from audit.services import audit_record

ROOT = Path(__file__).resolve().parent.parent


def refused(sql: str) -> bool:
    """Whether the database refuses `sql`; in a savepoint, so the test's transaction goes on."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    except DatabaseError:
        return True
    return False


@pytest.mark.django_db
def test_the_database_refuses_a_raw_update_or_delete(owner):
    event = audit_record(actor=owner, action="account.signed_in", subject="owner")

    assert refused("UPDATE audit_auditevent SET action = 'forged'")
    assert refused("DELETE FROM audit_auditevent")
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.action == "account.signed_in"


@pytest.mark.django_db
def test_a_queryset_can_neither_update_nor_delete_events(owner):
    audit_record(actor=owner, action="account.signed_in", subject="owner")

    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.update(subject="someone else")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.all().delete()

    assert AuditEvent.objects.get().subject == "owner"


@pytest.mark.django_db
def test_an_event_refuses_to_be_saved_again_or_deleted(owner):
    event = audit_record(actor=owner, action="account.signed_in", subject="owner")

    event.subject = "someone else"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()


@pytest.mark.django_db
def test_deleting_a_user_keeps_their_events_with_their_name(django_user_model):
    leaver = django_user_model.objects.create_user("leaver", password="a-long-passphrase-3")
    audit_record(actor=leaver, action="account.signed_in", subject="leaver")
    leaver_id = leaver.pk

    leaver.delete()

    event = AuditEvent.objects.get()
    assert (event.actor_id, event.actor_name) == (leaver_id, "leaver")
    assert not django_user_model.objects.filter(pk=leaver_id).exists()


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_log_and_the_guard_is_back_after_it(owner):
    audit_record(actor=owner, action="account.signed_in", subject="owner")

    call_command("flush", interactive=False, verbosity=0)

    assert not AuditEvent.objects.exists()
    audit_record(actor=None, action="account.sign_in_failed", subject="someone")
    assert refused("UPDATE audit_auditevent SET action = 'forged'")
    assert refused("DELETE FROM audit_auditevent")
    # pytest-django flushes again after this test, with an event in the log: that must work too.


POSTGRESQL_CHECK = """
import json
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from audit.models import AuditEvent
from audit.services import audit_record

def refused(sql):
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    except DatabaseError:
        return True
    return False

leaver = get_user_model().objects.create_user("leaver", password="a-long-passphrase-3")
audit_record(actor=leaver, action="account.signed_in", subject="leaver")
result = {
    "update": refused("UPDATE audit_auditevent SET action = 'forged'"),
    "delete": refused("DELETE FROM audit_auditevent"),
    "truncate": refused("TRUNCATE audit_auditevent"),
}
leaver_id = leaver.pk
leaver.delete()
event = AuditEvent.objects.get()
result["kept"] = [event.actor_id == leaver_id, event.actor_name, event.action]
call_command("flush", interactive=False, verbosity=0)
result["flushed"] = AuditEvent.objects.count()
audit_record(actor=None, action="account.sign_in_failed", subject="someone")
result["update_after_flush"] = refused("UPDATE audit_auditevent SET action = 'forged'")
print(json.dumps(result))
"""


@pytest.mark.scaleout
def test_postgresql_refuses_updates_deletes_and_truncation_and_keeps_a_deleted_users_events():
    require(postgres_reachable(), "PostgreSQL")
    name = f"claudechat_audit_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": fresh_postgres_database(name)}
    try:
        migrate(env)
        result = subprocess.run(
            [sys.executable, "-c", POSTGRESQL_CHECK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )
    finally:
        drop_postgres_database(name)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "update": True, "delete": True, "truncate": True,
        "kept": [True, "leaver", "account.signed_in"],
        "flushed": 0, "update_after_flush": True,
    }
