"""The admin: conversations readable with their messages, the ledger read-only."""

import pytest
from django.urls import reverse

from chat.models import ApiCall, Message

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
