"""A conversation's own system prompt and thinking level, set from the dialog in the chat header."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_it_works(client, owner, conversation):
    client.force_login(owner)

    response = client.post(
        reverse("conversation_settings", args=[conversation.pk]), {"system_prompt": " Be terse. ", "thinking": "high"}
    )

    conversation.refresh_from_db()
    assert response.status_code == 302
    assert response["Location"] == reverse("conversation_detail", args=[conversation.pk])
    assert (conversation.system_prompt, conversation.thinking) == ("Be terse.", "high")


def test_the_chat_page_offers_the_dialog_and_auto(client, owner, conversation):
    client.force_login(owner)

    body = client.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()

    assert 'id="settings-dialog"' in body and '<option value="high">High</option>' in body
    assert '<option value="auto" title="Picks a model for each message' in body and '>Auto</option>' in body


def test_it_checks_ownership(client, outsider, conversation):
    client.force_login(outsider)

    response = client.post(reverse("conversation_settings", args=[conversation.pk]), {"thinking": "high"})

    conversation.refresh_from_db()
    assert response.status_code == 404 and conversation.thinking == "off"


def test_it_refuses_an_unknown_thinking_level(client, owner, conversation):
    client.force_login(owner)

    response = client.post(reverse("conversation_settings", args=[conversation.pk]), {"thinking": "maximum"})

    conversation.refresh_from_db()
    assert response.status_code == 400 and conversation.thinking == "off"
