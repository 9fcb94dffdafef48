"""The HTTP pages around the chat: the chat page, and conversation create / rename / delete (sign-up: the
test_accounts_* files)."""

import re

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


def test_home_is_a_new_chat_that_creates_nothing(client, owner):
    owner.default_model = "claude-haiku-4-5"
    owner.save()
    client.force_login(owner)

    response = client.get(reverse("home"))

    assert response.status_code == 200 and response.context["conversation"] is None
    body = response.content.decode()
    assert 'data-conversation-id=""' in body and 'data-ws-path=""' in body
    assert re.search(r'<option value="claude-haiku-4-5"[^>]* selected>', body)
    assert "How can I help you today?" in body and "empty-state" not in body
    assert not Conversation.objects.exists()


def test_home_presets_auto_when_it_is_the_users_default(client, owner):
    owner.default_model = "auto"
    owner.save()
    client.force_login(owner)

    body = client.get(reverse("home")).content.decode()

    assert re.search(r'<option value="auto"[^>]* selected>', body)


def test_home_hides_the_tools_that_need_a_conversation(client, owner):
    client.force_login(owner)

    body = client.get(reverse("home")).content.decode()

    for needed in ("export_markdown_url", "export_json_url", "shares_url", "project_url", "settings_url"):
        assert f'data-needs-conversation="{needed}"' in body
    assert re.search(r'id="settings-button"[^>]* data-needs-conversation hidden>Settings<', body)


def test_a_conversations_page_shows_its_tools(client, owner, conversation):
    client.force_login(owner)

    body = client.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()

    assert "data-needs-conversation" not in body
    assert f'data-conversation-id="{conversation.pk}"' in body
    assert f'href="{reverse("conversation_shares", args=[conversation.pk])}"' in body


def test_home_is_a_new_chat_even_with_conversations(client, owner, conversation):
    message_appended(conversation, role="user", text="Earlier")
    client.force_login(owner)

    response = client.get(reverse("home"))

    assert response.status_code == 200 and response.context["conversation"] is None
    assert [c.pk for c in response.context["conversations"]] == [conversation.pk]
    assert Conversation.objects.count() == 1


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


def test_new_chat_without_an_id_never_reuses_an_empty_conversation(client, owner, conversation):
    """Tab A's conversation is empty until A's socket sends: tab B's first message must not land in it."""
    client.force_login(owner)

    response = client.post(reverse("conversation_create"))

    created = Conversation.objects.filter(owner=owner).exclude(pk=conversation.pk).get()
    assert response["Location"] == reverse("conversation_detail", args=[created.pk])
    assert Conversation.objects.filter(owner=owner).count() == 2


FETCH = {"X-Requested-With": "fetch"}


def test_the_first_message_creates_the_conversation_and_gets_what_the_page_needs(client, owner):
    client.force_login(owner)

    response = client.post(reverse("conversation_create"), {"model": "claude-haiku-4-5"}, headers=FETCH)

    conversation = Conversation.objects.get(owner=owner)
    created = response.json()
    pk = conversation.pk
    assert conversation.model == "claude-haiku-4-5"
    assert created["id"] == pk and created["url"] == reverse("conversation_detail", args=[pk])
    assert created["ws_path"] == f"/ws/conversations/{pk}/"
    assert created["upload_url"] == reverse("attachment_upload")
    assert created["fork_url"] == reverse("conversation_fork", args=[pk])
    assert created["settings_url"] == reverse("conversation_settings", args=[pk])
    assert created["export_markdown_url"] == reverse("conversation_export_markdown", args=[pk])
    assert created["export_json_url"] == reverse("conversation_export_json", args=[pk])
    assert created["shares_url"] == reverse("conversation_shares", args=[pk])
    assert created["project_url"] == reverse("conversation_project", args=[pk])
    item = created["sidebar_item"]
    assert f'data-conversation-id="{pk}"' in item and "is-current" in item and "New chat" in item
    assert 'name="csrfmiddlewaretoken"' in item
    # Pin comes back to the conversation, not to the POST's address.
    assert f'name="next" value="{created["url"]}"' in item


def test_a_retried_first_message_reuses_the_conversation_it_got(client, owner):
    client.force_login(owner)

    first = client.post(reverse("conversation_create"), {"model": "claude-haiku-4-5"}, headers=FETCH).json()
    second = client.post(
        reverse("conversation_create"), {"model": "auto", "conversation": first["id"]}, headers=FETCH
    ).json()

    assert first["id"] == second["id"]
    assert Conversation.objects.get(owner=owner).model == "auto"


def test_a_retry_naming_a_conversation_that_has_messages_makes_a_new_one(client, owner, conversation):
    message_appended(conversation, role="user", text="Hi from another tab")
    model = conversation.model
    client.force_login(owner)

    created = client.post(
        reverse("conversation_create"), {"model": "auto", "conversation": conversation.pk}, headers=FETCH
    ).json()

    assert created["id"] != conversation.pk and Conversation.objects.filter(owner=owner).count() == 2
    conversation.refresh_from_db()
    assert conversation.model == model and Conversation.objects.get(pk=created["id"]).model == "auto"


@pytest.mark.parametrize("claimed", ["archived", "in_project", "theirs", "not_a_number"])
def test_a_retry_naming_a_conversation_it_may_not_reuse_makes_a_new_one(client, owner, outsider, claimed):
    from projects import services as project_services
    from projects.models import Project

    if claimed == "archived":
        other = services.conversation_create(owner=owner, model="claude-haiku-4-5")
        services.conversation_archive(conversation=other, archived=True)
    elif claimed == "in_project":
        project = Project.objects.create(owner=owner, name="Garden")
        other = project_services.project_conversation_create(project=project, owner=owner)
        Conversation.objects.filter(pk=other.pk).update(model="claude-haiku-4-5")
    elif claimed == "theirs":
        other = services.conversation_create(owner=outsider, model="claude-haiku-4-5")
    else:
        other = None
    before = Conversation.objects.count()
    client.force_login(owner)

    claim = "x1" if other is None else other.pk
    created = client.post(
        reverse("conversation_create"), {"model": "auto", "conversation": claim}, headers=FETCH
    ).json()

    assert Conversation.objects.count() == before + 1
    assert other is None or created["id"] != other.pk
    new = Conversation.objects.get(pk=created["id"])
    assert (new.owner, new.project, new.archived_at, new.model) == (owner, None, None, "auto")
    if other is not None:
        other.refresh_from_db()
        assert other.model == "claude-haiku-4-5"


def test_the_first_message_after_a_conversation_with_messages_creates_a_new_one(client, owner, conversation):
    message_appended(conversation, role="user", text="Hi")
    client.force_login(owner)

    created = client.post(reverse("conversation_create"), headers=FETCH).json()

    assert created["id"] != conversation.pk and Conversation.objects.filter(owner=owner).count() == 2


def test_a_new_chat_does_not_reuse_an_empty_chat_started_in_a_project(client, owner):
    from projects import services as project_services
    from projects.models import Project

    project = Project.objects.create(owner=owner, name="Garden")
    in_project = project_services.project_conversation_create(project=project, owner=owner)
    client.force_login(owner)

    created = client.post(reverse("conversation_create"), headers=FETCH).json()

    assert created["id"] != in_project.pk
    assert Conversation.objects.get(pk=created["id"]).project is None
    in_project.refresh_from_db()
    assert in_project.project == project


def test_new_chat_refuses_a_model_not_offered(client, owner):
    client.force_login(owner)

    response = client.post(reverse("conversation_create"), {"model": "gpt-" + "x" * 5000}, headers=FETCH)

    assert response.status_code == 400 and response.content.decode() == "That model is not offered here."
    assert not Conversation.objects.exists()


def test_new_chat_never_touches_an_outsiders_conversations(client, owner, outsider):
    theirs = services.conversation_create(owner=outsider, model="claude-haiku-4-5")
    client.force_login(owner)

    created = client.post(reverse("conversation_create"), {"model": "auto"}, headers=FETCH).json()

    mine = Conversation.objects.get(owner=owner)
    assert created["id"] == mine.pk != theirs.pk
    theirs.refresh_from_db()
    assert (theirs.owner, theirs.model) == (outsider, "claude-haiku-4-5")
    assert Conversation.objects.filter(owner=outsider).count() == 1
    assert client.get(reverse("conversation_detail", args=[theirs.pk])).status_code == 404


def test_new_chat_must_be_posted(client, owner):
    client.force_login(owner)

    assert client.get(reverse("conversation_create")).status_code == 405
    assert not Conversation.objects.exists()


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
