"""The admin: conversations readable with their messages, the ledger read-only."""

import re
import uuid
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from chat.models import ApiCall, Message
from shares.models import Share

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1"))
    return client


@pytest.fixture
def transcript(conversation, owner):
    Message.objects.create(conversation=conversation, role="user", content=[{"type": "text", "text": "<b>Hi</b>"}])
    reply = Message.objects.create(
        conversation=conversation, role="assistant", content=[{"type": "text", "text": "Hello back"}],
        input_tokens=10, output_tokens=5, cost="0.000105",
    )
    ApiCall.objects.create(user=owner, conversation=conversation, message=reply, model="claude-sonnet-5-5",
                           input_tokens=10, output_tokens=5, cost="0.000105", request_id="req_1")
    return reply


@pytest.mark.parametrize("model", ["conversation", "message", "apicall"])
def test_every_changelist_renders(staff_client, transcript, model):
    response = staff_client.get(reverse(f"admin:chat_{model}_changelist"))
    assert response.status_code == 200


def test_a_conversation_reads_with_its_messages_escaped(staff_client, transcript, conversation):
    response = staff_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))

    body = response.content.decode()
    assert "Hello back" in body and "&lt;b&gt;Hi&lt;/b&gt;" in body and "<b>Hi</b>" not in body


def test_the_ledger_cannot_be_edited(staff_client, transcript):
    call = ApiCall.objects.get()

    response = staff_client.post(reverse("admin:chat_apicall_change", args=[call.pk]), {"cost": "0"})

    assert response.status_code == 403
    call.refresh_from_db()
    assert str(call.cost) == "0.000105"


def add_message(conversation, parent, role, text, **fields):
    """A message under `parent`, made the active path's leaf (as sending, regenerating and editing do)."""
    message = Message.objects.create(
        conversation=conversation, parent=parent, role=role, content=[{"type": "text", "text": text}],
        **fields,
    )
    conversation.current_leaf = message
    conversation.save(update_fields=["current_leaf"])
    return message


@pytest.fixture
def branched(conversation):
    """Hi → (reply 1 | reply 2 → Next → Done | reply 3), the path through reply 2; and "Hi again", an edit of
    the first message, with no reply."""
    hi = add_message(conversation, None, "user", "Hi <there>")
    first = add_message(conversation, hi, "assistant", "Reply one")
    second = add_message(conversation, hi, "assistant", "Reply two")
    add_message(conversation, hi, "assistant", "Reply three", status=Message.Status.FAILED)
    edit = add_message(conversation, None, "user", "Hi again")
    follow_up = add_message(conversation, second, "user", "Next")
    done = add_message(conversation, follow_up, "assistant", "Done " + "word " * 40)
    return {"hi": hi, "first": first, "second": second, "edit": edit, "done": done}


def tree_lines(body: str) -> list[tuple[bool, str]]:
    """The tree's lines in order: whether each is on the active path, and its text."""
    found = re.findall(r'<div class="tree-message( on-path)?">(.*?)</div>', body)
    return [(bool(on_path), line) for on_path, line in found]


def test_a_conversation_shows_its_tree_with_the_active_path_marked(staff_client, conversation, branched):
    response = staff_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))

    body = response.content.decode()
    lines = tree_lines(body)
    texts = ["Hi &lt;there&gt;", "Reply one", "Reply two", "Next", "Done", "Reply three", "Hi again"]
    assert [next(text for text in texts if text in line) for _, line in lines] == texts  # depth first
    assert [on_path for on_path, _ in lines] == [True, False, True, True, True, False, False]
    assert "Hi <there>" not in body
    versions = [re.search(r'<span class="tree-version">(.*?)</span>', line).group(1) for _, line in lines]
    assert versions == ["1 / 2", "1 / 3", "2 / 3", "", "", "3 / 3", "2 / 2"]
    assert "assistant · failed" in lines[5][1]
    assert "Done word word" in lines[4][1] and "word " * 40 not in lines[4][1]  # a short text
    # Each list of versions is one level in (the roots', then the first root's replies'); "Next" and "Done"
    # follow "Reply two" on its level, inside its item.
    tree = body[body.index('<div class="message-tree">'):]
    assert tree.count('<ul class="message-versions">') == 2
    assert tree.index("Done") < tree.index("</li><li>", tree.index("Reply two"))
    link = reverse("admin:chat_message_change", args=[branched["done"].pk])
    assert f'<a href="{link}">#{branched["done"].pk}</a>' in lines[4][1]


def test_the_tree_costs_the_same_queries_for_a_short_and_a_long_conversation(
    staff_client, conversation, django_assert_num_queries
):
    url = reverse("admin:chat_conversation_change", args=[conversation.pk])
    leaf = None
    for turns in (1, 30):
        for _ in range(turns):
            asked = add_message(conversation, leaf, "user", "Question")
            add_message(conversation, asked, "assistant", "An answer")
            leaf = add_message(conversation, asked, "assistant", "A better answer")
        Share.objects.create(conversation=conversation, created_by=conversation.owner, token=uuid.uuid4().hex)
        ContentType.objects.clear_cache()  # else only the first page load reads the admin's content type
        # Session, admin, conversation, shares and their recipients, the transcript's messages and their
        # attachments, the content type, the owner and the audit row of the admin opening it, the tree's
        # messages.
        with django_assert_num_queries(11):
            assert staff_client.get(url).status_code == 200


def test_a_conversation_lists_its_shares_read_only_without_their_tokens(
    staff_client, conversation, owner, outsider
):
    share = Share.objects.create(
        conversation=conversation, created_by=owner, token="secret-token-of-the-link",
        audience=Share.Audience.USERS, mode=Share.Mode.LIVE,
    )
    share.recipients.add(outsider)
    Share.objects.create(
        conversation=conversation, created_by=owner, token="another-secret-token", revoked_at=timezone.now()
    )

    response = staff_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))

    body = response.content.decode()
    assert "Named users" in body and "Live: follows the conversation" in body and "outsider" in body
    assert "Anyone signed in with the link" in body
    assert "secret-token" not in body
    assert 'name="shares-0-audience"' not in body  # read-only: no form field


def test_a_ledger_row_links_to_its_message_until_it_is_deleted(staff_client, transcript):
    call = ApiCall.objects.get()
    link = f'<a href="{reverse("admin:chat_message_change", args=[transcript.pk])}">#{transcript.pk}</a>'

    assert link in staff_client.get(reverse("admin:chat_apicall_changelist")).content.decode()
    assert link in staff_client.get(reverse("admin:chat_apicall_change", args=[call.pk])).content.decode()

    transcript.delete()

    listed = staff_client.get(reverse("admin:chat_apicall_changelist")).content.decode()
    opened = staff_client.get(reverse("admin:chat_apicall_change", args=[call.pk])).content.decode()
    assert link not in listed and "deleted" in listed
    assert link not in opened and "deleted" in opened
    assert ApiCall.objects.get().cost == Decimal("0.000105")  # the ledger keeps the row


def test_a_user_who_is_not_staff_cannot_open_a_conversations_tree(client, outsider, conversation, branched):
    client.force_login(outsider)

    response = client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))

    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_a_message_shows_its_parent_read_only(staff_client, conversation, branched):
    reply = branched["second"]

    body = staff_client.get(reverse("admin:chat_message_change", args=[reply.pk])).content.decode()

    assert 'name="parent"' not in body  # not a choice among every message of the site
    assert reverse("admin:chat_message_change", args=[branched["hi"].pk]) in body
