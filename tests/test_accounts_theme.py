"""Light, dark or the system's: the sidebar's switch (a plain form) and the settings page's field save the
user's theme, and every page renders it on <html> so it is drawn with no script and no flash."""

import pytest
from django.urls import reverse

from chat import services

pytestmark = pytest.mark.django_db


def test_the_switch_saves_the_theme_and_goes_back_to_the_page(client, owner):
    client.force_login(owner)
    conversation = services.conversation_create(owner=owner)
    page = reverse("conversation_detail", args=[conversation.id])

    response = client.post(reverse("theme_set"), {"theme": "dark", "next": page})

    owner.refresh_from_db()
    assert owner.theme == "dark"
    assert response.status_code == 302 and response["Location"] == page
    assert '<html lang="en" data-theme="dark">' in client.get(page).content.decode()


def test_system_removes_the_attribute_and_the_page_follows_the_system(client, owner):
    owner.theme = "light"
    owner.save(update_fields=["theme"])
    client.force_login(owner)

    client.post(reverse("theme_set"), {"theme": "", "next": "/"})

    owner.refresh_from_db()
    assert owner.theme == ""
    body = client.get(reverse("home")).content.decode()
    assert '<html lang="en">' in body
    assert '<meta name="color-scheme" content="light dark">' in body


def test_a_chosen_theme_fixes_the_color_scheme_and_the_code_stylesheet(client, owner):
    owner.theme = "dark"
    owner.save(update_fields=["theme"])
    client.force_login(owner)
    conversation = services.conversation_create(owner=owner)

    body = client.get(reverse("conversation_detail", args=[conversation.id])).content.decode()

    assert '<meta name="color-scheme" content="dark">' in body
    assert 'github-dark.min.css" media="all"' in body and 'github.min.css" media="not all"' in body


def test_the_switch_never_redirects_off_the_site(client, owner):
    client.force_login(owner)

    response = client.post(reverse("theme_set"), {"theme": "light", "next": "https://evil.example/"})

    assert response["Location"] == reverse("home")
    owner.refresh_from_db()
    assert owner.theme == "light"


@pytest.mark.parametrize(
    ("sent", "back"),
    [
        ("/conversations/7/?message=12", "/conversations/7/"),
        ("/conversations/7/?message=12&message=13&tab=a", "/conversations/7/?tab=a"),
        ("/archived/?tab=a+b", "/archived/?tab=a+b"),
        ("?message=12", "/"),
        ("//evil.example/?message=1", "/"),
    ],
)
def test_the_way_back_drops_a_search_hits_message(client, owner, sent, back):
    """`message` asks the page for a branch switch: going back after a theme change must not ask again."""
    client.force_login(owner)

    response = client.post(reverse("theme_set"), {"theme": "dark", "next": sent})

    assert response.status_code == 302 and response["Location"] == back


def test_asked_by_fetch_it_saves_and_answers_204_without_a_redirect(client, owner):
    client.force_login(owner)

    response = client.post(
        reverse("theme_set"), {"theme": "dark", "next": "/"}, headers={"X-Requested-With": "fetch"}
    )

    assert response.status_code == 204 and "Location" not in response
    owner.refresh_from_db()
    assert owner.theme == "dark"


def test_the_sidebar_marks_the_code_stylesheets_for_the_switch(client, owner):
    client.force_login(owner)

    body = client.get(reverse("home")).content.decode()

    assert 'media="(prefers-color-scheme: dark)" data-theme-scheme="dark"' in body
    assert 'media="(prefers-color-scheme: light)" data-theme-scheme="light"' in body
    assert "chat/theme.js" in body


def test_an_unknown_theme_is_refused_and_nothing_changes(client, owner):
    client.force_login(owner)

    response = client.post(reverse("theme_set"), {"theme": "sepia", "next": "/"})

    assert response.status_code == 400
    assert b"light, dark or empty" in response.content
    owner.refresh_from_db()
    assert owner.theme == ""


def test_the_switch_takes_only_posts_from_signed_in_users(client, owner):
    anonymous = client.post(reverse("theme_set"), {"theme": "dark"})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))

    client.force_login(owner)
    assert client.get(reverse("theme_set")).status_code == 405
    owner.refresh_from_db()
    assert owner.theme == ""


def test_anonymous_pages_follow_the_system(client):
    body = client.get(reverse("login")).content.decode()

    assert '<html lang="en">' in body
    assert '<meta name="color-scheme" content="light dark">' in body


def test_the_settings_page_saves_the_theme_with_the_other_settings(client, owner):
    client.force_login(owner)

    page = client.get(reverse("user_settings")).content.decode()
    assert '<label for="id_theme">Appearance</label>' in page
    client.post(
        reverse("user_settings"),
        {"default_model": "", "system_prompt": "", "time_zone": "UTC", "theme": "dark"},
    )

    owner.refresh_from_db()
    assert owner.theme == "dark"
    assert (
        '<option value="dark" selected>Dark</option>' in client.get(reverse("user_settings")).content.decode()
    )


def test_every_page_starts_with_a_skip_link_to_its_main_content(client, owner):
    client.force_login(owner)
    conversation = services.conversation_create(owner=owner)

    new_chat = client.get(reverse("home")).content.decode()
    chat = client.get(reverse("conversation_detail", args=[conversation.id])).content.decode()
    usage = client.get(reverse("usage")).content.decode()

    for page in (new_chat, chat):
        assert '<a class="skip-link" href="#composer-input">Skip to conversation</a>' in page
        assert 'id="composer-input"' in page
    assert '<a class="skip-link" href="#content">Skip to content</a>' in usage and 'id="content"' in usage
