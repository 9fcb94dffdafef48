"""Conversations stored before messages formed a tree were one line of messages, in id order (a regenerate or
an edit deleted what it replaced): each message's parent is the one before it, and the last is the active
path's leaf. Two set-based UPDATEs, however many conversations there are (a loop over them cost three queries
each): each row's subquery is one probe of the messages' (conversation, id) index. Plain SQL that SQLite and
PostgreSQL both run."""

from django.db import migrations


def messages_linked(apps, schema_editor):
    quote = schema_editor.quote_name
    message = quote(apps.get_model("chat", "Message")._meta.db_table)
    conversation = quote(apps.get_model("chat", "Conversation")._meta.db_table)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {message} SET parent_id = ("
            f"SELECT MAX(earlier.id) FROM {message} earlier"
            f" WHERE earlier.conversation_id = {message}.conversation_id AND earlier.id < {message}.id)"
        )
        cursor.execute(
            f"UPDATE {conversation} SET current_leaf_id = ("
            f"SELECT MAX(latest.id) FROM {message} latest WHERE latest.conversation_id = {conversation}.id)"
        )


class Migration(migrations.Migration):
    dependencies = [("chat", "0008_message_tree")]

    operations = [migrations.RunPython(messages_linked, migrations.RunPython.noop)]
