"""The diagram frame (chat/views.py `diagram_frame`): the page that draws one mermaid diagram inside a sandboxed
iframe (static/chat/diagram.js). In a browser: tests/test_browser_render.py."""

import pytest
from django.urls import reverse
from test_hardening_csp import inline_parts, policy

pytestmark = pytest.mark.django_db


def test_anyone_gets_the_frame_under_its_own_policy_framed_by_this_site_only(client):
    response = client.get(reverse("diagram_frame"))

    assert response.status_code == 200
    assert policy(response) == {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
        "frame-ancestors": ["'self'"],
    }
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert "vendor/mermaid-12.3.0/mermaid.min.js" in response.content.decode()


def test_the_frames_own_markup_needs_nothing_inline(client):
    assert inline_parts(client.get(reverse("diagram_frame")).content.decode()) == []


def test_the_frame_reads_nothing_of_the_signed_in_user(client, owner):
    client.force_login(owner)

    response = client.get(reverse("diagram_frame"))

    assert response.status_code == 200 and "owner" not in response.content.decode()
    assert response["Cache-Control"] == "public, max-age=3600"


def test_the_frame_only_answers_get(client):
    assert client.post(reverse("diagram_frame")).status_code == 405


def test_the_chat_page_keeps_its_strict_policy_and_names_the_frame(client, owner, conversation):
    client.force_login(owner)

    response = client.get(reverse("conversation_detail", args=[conversation.pk]))

    assert policy(response)["style-src"] == ["'self'"] and policy(response)["frame-ancestors"] == ["'none'"]
    assert f'<meta name="chat-diagram-url" content="{reverse("diagram_frame")}">' in response.content.decode()
