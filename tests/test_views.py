"""The HTTP pages around the chat: the chat page, and conversation create / rename / delete (sign-up: the
test_accounts_* files)."""

import pytest
from django.urls import reverse

from chat import services
from chat.models import Conversation
from tests.transcripts import message_appended

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["home", "conversation_create"])
def test_chat_pages_require_login(client, name):
    response = client.get(reverse(name)) if name == "home" else client.post(reverse(name))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_home_without_conversations_shows_the_empty_state(client, owner):
    client.force_login(owner)

    response = client.get(reverse("home"))

    assert response.status_code == 200 and response.context["conversation"] is None


def test_home_opens_the_latest_conversation(client, owner, conversation):
    client.force_login(owner)

    response = client.get(reverse("home"))

    assert response["Location"] == reverse("conversation_detail", args=[conversation.pk])


def test_the_chat_page_shows_the_transcript_and_the_offline_badge(client, owner, conversation):
    message_appended(conversation, role="user", text="Hi there")
    client.force_login(owner)

    response = client.get(reverse("conversation_detail", args=[conversation.pk]))

    assert response.status_code == 200
    assert response.context["offline_model"] is True
    assert response.context["tree_data"]["messages"][0]["content"][0]["text"] == "Hi there"
    assert response.context["ws_path"] == f"/ws/conversations/{conversation.pk}/"


def test_the_chat_page_lists_only_the_users_own_conversations(client, owner, outsider, conversation):
    foreign = services.conversation_create(owner=outsider)
    client.force_login(owner)

    response = client.get(reverse("conversation_detail", args=[conversation.pk]))

    assert [c.pk for c in response.context["conversations"]] == [conversation.pk]
    assert foreign.pk not in [c.pk for c in response.context["conversations"]]


def test_the_chat_page_shows_a_dead_stream_interrupted(client, owner, conversation, settings):
    settings.CHAT_STREAM_STALE_AFTER = 0
    dead = message_appended(conversation, role="assistant", status="streaming")
    client.force_login(owner)

    response = client.get(reverse("conversation_detail", args=[conversation.pk]))

    [shown] = response.context["tree_data"]["messages"]
    assert shown["id"] == dead.pk and shown["status"] == "interrupted" and shown["error"]


def test_new_chat_creates_a_conversation_with_the_users_defaults(client, owner):
    owner.default_model, owner.system_prompt = "claude-haiku-4-5", "Be brief."
    owner.save()
    client.force_login(owner)

    response = client.post(reverse("conversation_create"))

    conversation = Conversation.objects.get(owner=owner)
    assert response["Location"] == reverse("conversation_detail", args=[conversation.pk])
    assert (conversation.model, conversation.system_prompt) == ("claude-haiku-4-5", "Be brief.")


def test_new_chat_reuses_an_empty_latest_conversation(client, owner, conversation):
    client.force_login(owner)

    client.post(reverse("conversation_create"))

    assert Conversation.objects.filter(owner=owner).count() == 1


def test_rename_works(client, owner, conversation):
    client.force_login(owner)

    response = client.post(
        reverse("conversation_rename", args=[conversation.pk]), {"title": "  Trees  "}, headers={"X-Requested-With": "fetch"}
    )

    assert response.status_code == 204
    conversation.refresh_from_db()
    assert conversation.title == "Trees"


def test_delete_works(client, owner, conversation):
    client.force_login(owner)

    response = client.post(reverse("conversation_delete", args=[conversation.pk]))

    assert response["Location"] == reverse("home")
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


@pytest.mark.parametrize(
    ("name", "method"),
    [("conversation_detail", "get"), ("conversation_rename", "post"), ("conversation_delete", "post")],
)
def test_an_outsider_gets_404(client, outsider, conversation, name, method):
    client.force_login(outsider)

    response = getattr(client, method)(reverse(name, args=[conversation.pk]), {"title": "mine now"})

    assert response.status_code == 404
    conversation.refresh_from_db()
    assert conversation.title != "mine now"


@pytest.mark.parametrize("message", ["9" * 5000, str(2**63), "0", "-1", "1e3", "١", ""])
def test_forking_at_anything_but_a_message_id_gets_404(client, owner, conversation, message):
    message_appended(conversation, role="user", text="Hello")
    client.force_login(owner)

    response = client.post(reverse("conversation_fork", args=[conversation.pk]), {"message": message})

    assert response.status_code == 404
    assert Conversation.objects.filter(owner=owner).count() == 1


def test_forking_at_a_message_id_works_and_the_largest_id_finds_nothing(client, owner, conversation):
    asked = message_appended(conversation, role="user", text="Hello")
    client.force_login(owner)
    fork_url = reverse("conversation_fork", args=[conversation.pk])

    assert client.post(fork_url, {"message": str(2**63 - 1)}).status_code == 404
    response = client.post(fork_url, {"message": str(asked.pk)})

    assert response.status_code == 302 and Conversation.objects.filter(owner=owner).count() == 2
