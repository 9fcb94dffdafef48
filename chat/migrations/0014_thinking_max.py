from django.db import migrations, models


class Migration(migrations.Migration):
    """Effort "max" among a conversation's thinking levels (chat.models.ThinkingLevel.MAX)."""

    dependencies = [
        ("chat", "0013_server_tool_use_tool_options"),
    ]

    operations = [
        migrations.AlterField(
            model_name="conversation",
            name="thinking",
            field=models.CharField(
                choices=[("off", "Off"), ("low", "Low"), ("medium", "Medium"), ("high", "High"), ("max", "Max")],
                default="off",
                help_text="Extended thinking: a token budget, or an effort level on models that think adaptively.",
                max_length=8,
            ),
        ),
    ]
