from django.db import migrations, models

import connectors.models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("teams", "0002_budget_not_negative"),
    ]

    operations = [
        migrations.CreateModel(
            name="McpServer",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "name",
                    models.SlugField(
                        help_text="How the model and the transcript name it (letters, digits, - and _), unique.",
                        max_length=64,
                        unique=True,
                    ),
                ),
                (
                    "url",
                    models.URLField(
                        help_text="https:// only, as the API requires.",
                        max_length=500,
                        validators=[connectors.models.https_url],
                    ),
                ),
                (
                    "authorization_token",
                    models.CharField(
                        blank=True,
                        help_text="The OAuth bearer token the server wants, if any. Never shown again.",
                        max_length=4000,
                    ),
                ),
                (
                    "allowed_tools",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text="The tools the model may call. Empty: every tool the server has.",
                        validators=[connectors.models.tool_names],
                    ),
                ),
                ("enabled", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "groups",
                    models.ManyToManyField(
                        blank=True,
                        help_text="Offered only to members of these groups (or of a group below one). Empty: everyone.",
                        related_name="+",
                        to="teams.team",
                    ),
                ),
            ],
            options={
                "verbose_name": "MCP server",
                "ordering": ["name"],
            },
        ),
    ]
