"""Seed the lifecycle table with this deployment's built-in list of announced deprecations and retirements, so a
fresh install labels deprecated models and knows their retirement dates without an API key. Rows already there
are left alone. The list is this migration's own data, not imported from the app: a later list is a later
migration, and what this one did never changes. Edit the rows in the admin; this list only seeds."""

from datetime import date

from django.db import migrations

NOTE = "This deployment's built-in list; edit freely (an admin's edit is kept over later Models API refreshes)."
ANNOUNCED = (
    # model, deprecated_on, retires_on, successor
    ("claude-haiku-4-5", date(2026, 10, 15), date(2027, 1, 20), "claude-haiku-5-5"),
    ("claude-sonnet-4-6", date(2026, 11, 5), date(2027, 3, 5), "claude-sonnet-5-5"),
    ("claude-opus-4-6", date(2026, 11, 5), date(2027, 4, 14), "claude-opus-5-5"),
)


def seed_lifecycles(apps, schema_editor):
    ModelLifecycle = apps.get_model("lifecycle", "ModelLifecycle")
    for model, deprecated_on, retires_on, successor in ANNOUNCED:
        ModelLifecycle.objects.get_or_create(
            model=model,
            defaults={
                "deprecated_on": deprecated_on, "retires_on": retires_on,
                "successor": successor, "source": "built_in", "notes": NOTE,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("lifecycle", "0001_initial")]

    operations = [migrations.RunPython(seed_lifecycles, migrations.RunPython.noop)]
