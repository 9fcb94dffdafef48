"""Every page carries a Content-Security-Policy that allows this site's own scripts, styles and websockets and
nothing inline; the pages are written to need nothing more, and served attachments keep their sandbox."""

from html.parser import HTMLParser

import pytest
from attachment_samples import image_bytes
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.test import Client
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from document_samples import uploaded

from accounts.mail import mail_sent_wait
from accounts.models import RegistrationPolicy
from accounts.services import SIGN_UP_SALT, invite_create
from chat.attachments.services import attachments_claim
from chat.attachments.views import SERVED_POLICY
from chat.models import ApiCall, Message

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, list[str]]:
    directives = [part.split() for part in response["Content-Security-Policy"].split(";") if part.strip()]
    return {name: values for name, *values in directives}


class InlineFinder(HTMLParser):
    """What style-src 'self' and script-src 'self' would refuse: inline scripts, <style> elements, style
    attributes and on* handler attributes. JSON data islands (json_script) are not scripts."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and "src" not in attributes and attributes.get("type") != "application/json":
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"<{tag} {name}=...>" for name, _ in attrs if name == "style" or name.startswith("on")]


def inline_parts(html: str) -> list[str]:
    finder = InlineFinder()
    finder.feed(html)
    return finder.found


@pytest.fixture
def admin_client(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1"))
    return client


@pytest.fixture
def owner_client(owner):
    client = Client()
    client.force_login(owner)
    return client


@pytest.fixture
def sent_image(conversation, owner, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    message = Message.objects.create(conversation=conversation, role="user", content=[{"type": "text", "text": "Hi"}])
    [image] = uploaded(owner, "photo.png", image_bytes())
    attachments_claim(attachments=[image], message=message)
    ApiCall.objects.create(user=owner, conversation=conversation, message=message, model="claude-sonnet-5-5",
                           input_tokens=10, output_tokens=5, cost="0.000105", request_id="req_1")
    return image


def test_a_page_allows_only_this_sites_scripts_styles_and_websockets(client):
    response = client.get(reverse("login"))

    assert policy(response) == {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "blob:"],
        "connect-src": ["'self'", "ws://testserver", "wss://testserver"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }


def test_the_websockets_allowed_are_the_requests_own_host(client, settings):
    settings.ALLOWED_HOSTS = ["chat.example.com"]

    response = client.get(reverse("login"), HTTP_HOST="chat.example.com")

    assert policy(response)["connect-src"] == ["'self'", "ws://chat.example.com", "wss://chat.example.com"]


@pytest.mark.parametrize("url_name", ["home", "conversation_detail", "user_settings", "usage"])
def test_the_users_pages_need_nothing_inline(owner_client, conversation, sent_image, url_name):
    args = [conversation.pk] if url_name == "conversation_detail" else []

    response = owner_client.get(reverse(url_name, args=args), follow=True)

    assert response.status_code == 200
    assert "Content-Security-Policy" in response
    assert inline_parts(response.content.decode()) == []


def reset_link(user, token: str | None = None) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("password_reset_confirm", args=[uid, token or default_token_generator.make_token(user)])


def signed_in(client, user):
    client.force_login(user)
    return client


def locked_out(client):
    for _ in range(5):
        client.post(reverse("login"), {"username": "owner", "password": "wrong"})
    return client.post(reverse("login"), {"username": "owner", "password": "wrong"})


def sign_up_link(*, tampered=False) -> str:
    token = signing.dumps({"username": "newcomer", "email": "newcomer@example.com", "invite": None},
                          salt=SIGN_UP_SALT)
    return reverse("sign_up_confirm", args=[token + "x" if tampered else token])


def closed_sign_up(client):
    RegistrationPolicy.objects.filter(id=1).update(mode="closed")
    return client.get(reverse("sign_up"))


# Every page that accounts/ renders from a template, in each of its states, as the test client gets it.
SIGN_IN_PAGES = {
    "login": lambda client, user: client.get(reverse("login")),
    "lockout": lambda client, user: locked_out(client),
    "sign_up": lambda client, user: client.get(reverse("sign_up")),
    "sign_up closed": lambda client, user: closed_sign_up(client),
    "sign_up_invite": lambda client, user: client.get(invite_create(created_by=user).url),
    "sign_up_sent": lambda client, user: client.post(
        reverse("sign_up"), {"username": "newcomer", "email": "newcomer@example.com"},
    ),
    "sign_up_confirm": lambda client, user: client.get(sign_up_link()),
    "sign_up_confirm refused": lambda client, user: client.get(sign_up_link(tampered=True)),
    "password_reset": lambda client, user: client.get(reverse("password_reset")),
    "password_reset_done": lambda client, user: client.get(reverse("password_reset_done")),
    "password_reset_confirm": lambda client, user: client.get(reset_link(user), follow=True),
    "password_reset_confirm used": lambda client, user: client.get(reset_link(user, "used-token"), follow=True),
    "password_reset_complete": lambda client, user: client.get(reverse("password_reset_complete")),
    "password_change": lambda client, user: signed_in(client, user).get(reverse("password_change")),
    "password_change_done": lambda client, user: signed_in(client, user).get(reverse("password_change_done")),
    "user_settings": lambda client, user: signed_in(client, user).get(reverse("user_settings")),
}


@pytest.mark.parametrize("page", SIGN_IN_PAGES)
def test_the_sign_in_pages_need_nothing_inline(client, owner, page):
    RegistrationPolicy.objects.update_or_create(id=1, defaults={"mode": "open"})

    response = SIGN_IN_PAGES[page](client, owner)
    mail_sent_wait()

    assert response.status_code in (200, 400, 429), response.status_code
    assert response.templates and "Content-Security-Policy" in response
    assert inline_parts(response.content.decode()) == []


@pytest.mark.parametrize("url", [
    "/admin/", "/admin/usage/", "/admin/chat/apicall/", "/admin/chat/attachment/", "/admin/audit/auditevent/",
    "/admin/accounts/user/add/",
])
def test_the_admin_pages_need_nothing_inline(admin_client, sent_image, url):
    response = admin_client.get(url)

    assert response.status_code == 200
    assert "Content-Security-Policy" in response
    assert inline_parts(response.content.decode()) == []


def test_a_conversation_in_the_admin_shows_its_attachments_without_inline_styles(admin_client, conversation,
                                                                                 sent_image):
    response = admin_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))

    body = response.content.decode()
    assert reverse("admin:chat_attachment_thumbnail", args=[sent_image.pk]) in body
    assert inline_parts(body) == []


def test_a_served_attachment_keeps_its_own_sandbox_policy(owner_client, admin_client, sent_image):
    """django-csp leaves a response that set its own policy alone; the site's would let the file run
    scripts from this origin."""
    for response in (
        owner_client.get(reverse("attachment_file", args=[sent_image.pk])),
        owner_client.get(reverse("attachment_thumbnail", args=[sent_image.pk])),
        admin_client.get(reverse("admin:chat_attachment_file", args=[sent_image.pk])),
    ):
        assert response.status_code == 200
        assert response["Content-Security-Policy"] == SERVED_POLICY


def test_an_outsider_gets_404_for_an_attachment_not_the_file(outsider, sent_image):
    client = Client()
    client.force_login(outsider)

    assert client.get(reverse("attachment_file", args=[sent_image.pk])).status_code == 404
