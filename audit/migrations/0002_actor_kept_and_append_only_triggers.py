"""The actor as an id without a constraint (a user's deletion must not UPDATE their events), then the triggers
that refuse every UPDATE and DELETE of an event (audit/triggers.py). The AlterField comes first: on SQLite it
rebuilds the table, which would drop triggers installed before it."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from audit.triggers import triggers_install, triggers_remove


def install(apps, schema_editor):
    triggers_install(schema_editor.connection)


def remove(apps, schema_editor):
    triggers_remove(schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(
                blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+", to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(install, remove, elidable=False),
    ]
