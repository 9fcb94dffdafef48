import json
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from chat.models import Attachment, Message

pytestmark = pytest.mark.django_db


def export_url(conversation, export_format):
    name = {"md": "conversation_export_markdown", "json": "conversation_export_json"}[export_format]
    return reverse(name, args=[conversation.pk])


def downloaded(client, url) -> bytes:
    response = client.get(url)
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def add_turn(conversation, text="What is **bold**?", *, status=Message.Status.COMPLETE):
    """A question and its reply at the end of the active path, which then ends at the reply."""
    asked = Message.objects.create(
        conversation=conversation, parent_id=conversation.current_leaf_id, role=Message.Role.USER,
        content=[{"type": "text", "text": text}],
    )
    return asked, add_reply(asked, status=status)


def add_reply(asked, *, status=Message.Status.COMPLETE, text="It is `**bold**`."):
    """A reply to `asked` (another version, if it has one already), made the active path's leaf."""
    conversation = asked.conversation
    answered = Message.objects.create(
        conversation=conversation, parent=asked, role=Message.Role.ASSISTANT, model="claude-test",
        status=status,
        content=[
            {"type": "thinking", "thinking": "Let me think.", "signature": "opaque"},
            {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"expression": "2+2"}},
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "4"},
            {"type": "text", "text": text},
        ],
        input_tokens=10, output_tokens=5, cache_read_input_tokens=100, cost=Decimal("0.001234"),
    )
    conversation.current_leaf = answered
    conversation.save(update_fields=["current_leaf"])
    return answered


def attach(message, name="notes.pdf"):
    attachment = Attachment.objects.create(
        owner=message.conversation.owner, message=message, kind=Attachment.Kind.PDF, name=name,
        sha256="0" * 64, media_type="application/pdf", file="x.pdf", size=10,
    )
    message.content = [{"type": "attachment", "attachment_id": attachment.pk}, *message.content]
    message.save(update_fields=["content"])
    return attachment


def test_it_downloads_markdown(client, owner, conversation):
    conversation.title = "Plans"
    conversation.save()
    asked, _ = add_turn(conversation, "# Heading\n\n```python\nprint('<b>')\n```")
    attach(asked)
    client.force_login(owner)

    response = client.get(export_url(conversation, "md"))
    body = b"".join(response.streaming_content).decode()

    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="Plans.md"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert body.startswith("# Plans\n")
    assert "# Heading\n\n```python\nprint('<b>')\n```" in body  # the user's Markdown, verbatim
    assert "It is `**bold**`." in body
    assert "- Attached: notes.pdf (pdf, file not included)" in body
    assert "Let me think." not in body and "Thinking omitted" in body
    assert '> Tool call: calculator {"expression": "2+2"}' in body
    assert "> Tool result: 4" in body


def test_it_downloads_json(client, owner, conversation):
    asked, _ = add_turn(conversation)
    attachment = attach(asked)
    client.force_login(owner)

    exported = json.loads(downloaded(client, export_url(conversation, "json")))

    assert (exported["format"], exported["version"]) == ("claude-chat-export", 1)
    assert exported["conversation"]["id"] == conversation.pk
    user, reply = exported["messages"]
    assert (user["parent"], reply["parent"]) == (None, asked.pk)
    assert exported["conversation"]["current_leaf"] == reply["id"]
    assert user["content"][0] == {"type": "attachment", "attachment_id": attachment.pk}
    assert user["attachments"] == [
        {"id": attachment.pk, "name": "notes.pdf", "kind": "pdf", "media_type": "application/pdf", "size": 10}
    ]
    assert reply["content"][0] == {"type": "thinking", "thinking": "Let me think."}  # no signature
    assert reply["usage"]["cache_read_input_tokens"] == 100
    assert reply["cost"] == "0.001234"


def test_it_marks_replies_that_did_not_finish(client, owner, conversation):
    add_turn(conversation, status=Message.Status.INTERRUPTED)
    _, live = add_turn(conversation, status=Message.Status.STREAMING)
    Message.objects.filter(pk=live.pk).update(heartbeat_at=timezone.now())  # its process is writing it
    client.force_login(owner)

    body = downloaded(client, export_url(conversation, "md")).decode()
    exported = json.loads(downloaded(client, export_url(conversation, "json")))

    assert "Interrupted before it finished." in body
    assert "Still being written when exported: this is what was saved so far." in body
    assert [m["status"] for m in exported["messages"][1::2]] == ["interrupted", "streaming"]


def test_a_reply_whose_process_died_exports_as_interrupted_as_the_page_shows_it(client, owner, conversation):
    _, orphaned = add_turn(conversation, status=Message.Status.STREAMING)  # no heartbeat: its process died
    client.force_login(owner)

    body = downloaded(client, export_url(conversation, "md")).decode()
    exported = json.loads(downloaded(client, export_url(conversation, "json")))

    assert "Interrupted before it finished." in body and "Still being written" not in body
    assert exported["messages"][1]["status"] == "interrupted"
    orphaned.refresh_from_db()
    assert orphaned.status == Message.Status.STREAMING  # an export reads, never writes


def test_it_checks_ownership(client, outsider, conversation):
    client.force_login(outsider)
    assert client.get(export_url(conversation, "md")).status_code == 404
    assert client.get(export_url(conversation, "json")).status_code == 404
    assert client.get(reverse("conversation_export_json", args=[conversation.pk + 1000])).status_code == 404


def test_it_requires_login(client, conversation):
    response = client.get(export_url(conversation, "md"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_names_the_file_after_a_non_ascii_title(client, owner, conversation):
    conversation.title = 'Café "plans" / 日本'
    conversation.save()
    client.force_login(owner)

    response = client.get(export_url(conversation, "json"))

    assert response["Content-Disposition"] == (
        "attachment; filename*=utf-8''Caf%C3%A9%20-plans-%20-%20%E6%97%A5%E6%9C%AC.json"
    )


def test_it_keeps_an_html_title_from_breaking_out(client, owner, conversation):
    conversation.title = "<script>alert(1)</script>\n# Injected"
    conversation.save()
    client.force_login(owner)

    response = client.get(export_url(conversation, "md"))
    first_line = b"".join(response.streaming_content).decode().splitlines()[0]

    assert first_line == "# &lt;script&gt;alert(1)&lt;/script&gt; # Injected"
    assert response["Content-Disposition"] == 'attachment; filename="script-alert(1)-script- # Injected.md"'


def test_markdown_is_the_active_path_and_json_the_whole_tree(client, owner, conversation):
    first_question, first_reply = add_turn(conversation, "First question")
    better = add_reply(first_question, text="A better first answer")
    second_question, second_reply = add_turn(conversation, "Second question")
    second_version = add_reply(second_question, text="The second version")
    shown = add_reply(second_question, text="The third version")
    client.force_login(owner)

    body = downloaded(client, export_url(conversation, "md")).decode()
    exported = json.loads(downloaded(client, export_url(conversation, "json")))

    assert "First question" in body and "Second question" in body
    assert "A better first answer" in body and "The third version" in body
    assert "It is `**bold**`." not in body and "The second version" not in body  # off the path
    assert "version 2 of 2" in body and "version 3 of 3" in body
    assert "the other versions of its messages are in the JSON export" in body
    assert {message["id"]: message["parent"] for message in exported["messages"]} == {
        first_question.pk: None, first_reply.pk: first_question.pk, better.pk: first_question.pk,
        second_question.pk: better.pk, second_reply.pk: second_question.pk,
        second_version.pk: second_question.pk, shown.pk: second_question.pk,
    }
    assert exported["conversation"]["current_leaf"] == shown.pk


def test_a_conversation_without_versions_says_nothing_about_them(client, owner, conversation):
    add_turn(conversation)
    client.force_login(owner)

    body = downloaded(client, export_url(conversation, "md")).decode()

    assert "version" not in body.lower()


@pytest.mark.parametrize(("export_format", "queries"), [("md", 6), ("json", 5)])
def test_it_costs_the_same_queries_however_long(client, owner, conversation, django_assert_num_queries,
                                                export_format, queries):
    client.force_login(owner)
    # The session, the user, the conversation, (Markdown: the tree's shape,) its messages, its attachments.
    for turns in (1, 30):
        for _ in range(turns):
            asked, _ = add_turn(conversation)
            attach(asked)
            add_reply(asked)  # a second version of each reply: the path is half the tree
        with django_assert_num_queries(queries):
            downloaded(client, export_url(conversation, export_format))


@pytest.mark.django_db(transaction=True)
async def test_it_streams_under_asgi_without_reading_it_all_first(async_client, owner):
    from asgiref.sync import sync_to_async

    from chat import services

    conversation = await sync_to_async(services.conversation_create)(owner=owner)
    await sync_to_async(add_turn)(conversation)
    await async_client.aforce_login(owner)

    response = await async_client.get(export_url(conversation, "json"))

    assert response.is_async
    body = b"".join([part async for part in response.streaming_content])
    assert [m["role"] for m in json.loads(body)["messages"]] == ["user", "assistant"]
