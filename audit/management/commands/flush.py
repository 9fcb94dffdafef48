"""`manage.py flush`, which also empties the audit log.

Flushing removes every row of every table on purpose (the test runner does it after each transactional test);
the append-only triggers would refuse it for the audit log, so they are lifted for the flush and installed
again in the same transaction. Nothing else lifts them. Overrides Django's command of the same name, as an
installed app's command does.
"""

from django.core.management.commands import flush
from django.db import connections, transaction

from audit.triggers import TABLE, triggers_install, triggers_remove


class Command(flush.Command):
    help = flush.Command.help + " The audit log too: its append-only triggers are lifted for it, then restored."

    def handle(self, **options):
        connection = connections[options["database"]]
        if TABLE not in connection.introspection.table_names():  # not migrated yet: no triggers to lift
            return super().handle(**options)
        with transaction.atomic(using=options["database"]):
            triggers_remove(connection)
            super().handle(**options)
            triggers_install(connection)
