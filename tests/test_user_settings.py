"""The account settings page: default model and system prompt for new conversations, and the time zone."""

import pytest
from django.urls import reverse

from chat import services

pytestmark = pytest.mark.django_db

VALID = {"default_model": "auto", "system_prompt": "  Answer in French.  ", "time_zone": "Europe/Paris"}


def test_it_shows_the_users_settings(client, owner):
    client.force_login(owner)

    response = client.get(reverse("user_settings"))

    body = response.content.decode()
    assert response.status_code == 200
    assert '<option value="auto">Auto: picked for each message</option>' in body
    assert '<option value="Europe/Paris">' in body and '<option value="UTC" selected>' in body


def test_it_saves_them_and_new_conversations_start_with_them(client, owner):
    client.force_login(owner)

    response = client.post(reverse("user_settings"), VALID, follow=True)

    owner.refresh_from_db()
    assert (owner.default_model, owner.system_prompt, owner.time_zone) == ("auto", "Answer in French.", "Europe/Paris")
    assert "Settings saved." in response.content.decode()
    conversation = services.conversation_create(owner=owner)
    assert (conversation.model, conversation.system_prompt) == ("auto", "Answer in French.")


@pytest.mark.parametrize(
    ("field", "value"), [("time_zone", "Mars/Olympus_Mons"), ("default_model", "gpt-9"), ("time_zone", "")]
)
def test_it_refuses_what_it_cannot_use(client, owner, field, value):
    client.force_login(owner)

    response = client.post(reverse("user_settings"), {**VALID, field: value})

    owner.refresh_from_db()
    assert response.status_code == 200 and "field-invalid" in response.content.decode()
    assert owner.time_zone == "UTC" and owner.default_model == ""


def test_it_requires_login(client):
    response = client.get(reverse("user_settings"))

    assert response.status_code == 302 and reverse("login") in response["Location"]
