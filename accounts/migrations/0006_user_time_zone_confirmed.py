from django.db import migrations, models


def confirm_chosen_zones(apps, schema_editor):
    """Someone whose zone is not the default picked it on the settings page: they are not asked again."""
    User = apps.get_model("accounts", "User")
    User.objects.exclude(time_zone="UTC").update(time_zone_confirmed=True)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_user_theme"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="time_zone_confirmed",
            field=models.BooleanField(default=False, help_text="The user chose their time zone."),
        ),
        migrations.RunPython(confirm_chosen_zones, migrations.RunPython.noop),
    ]
