"""The database's refusal to change or delete an audit event, on SQLite and PostgreSQL.

The model refuses too (AuditEvent.save and delete), but a queryset's update() or delete(), raw SQL or a
shell session would pass it by; these triggers stop them all. Installed by migration 0002; lifted only by
`manage.py flush` (audit/management/commands/flush.py), which empties the whole database on purpose.
"""

TABLE = "audit_auditevent"

SQLITE_CREATE = [
    f"""CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'Audit events are never changed.'); END""",
    f"""CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'Audit events are never deleted.'); END""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS audit_event_no_update",
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
]

POSTGRESQL_CREATE = [
    """CREATE OR REPLACE FUNCTION audit_event_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'Audit events are never changed or deleted (% refused).', TG_OP; END $$""",
    f"""CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION audit_event_refuse()""",
    f"""CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse()""",
]
POSTGRESQL_DROP = [
    f"DROP TRIGGER IF EXISTS audit_event_no_truncate ON {TABLE}",
    f"DROP TRIGGER IF EXISTS audit_event_no_change ON {TABLE}",
    "DROP FUNCTION IF EXISTS audit_event_refuse()",
]

STATEMENTS = {
    "sqlite": (SQLITE_CREATE, SQLITE_DROP),
    "postgresql": (POSTGRESQL_CREATE, POSTGRESQL_DROP),
}


def _run(connection, statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def triggers_install(connection) -> None:
    """Install the triggers on `connection`'s database; another vendor raises, as it would keep no promise."""
    if connection.vendor not in STATEMENTS:
        raise NotImplementedError(f"The audit log's append-only triggers exist for {', '.join(STATEMENTS)} only.")
    _run(connection, STATEMENTS[connection.vendor][0])


def triggers_remove(connection) -> None:
    _run(connection, STATEMENTS.get(connection.vendor, ([], []))[1])
