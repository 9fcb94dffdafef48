"""Password change and reset by email (Django's views, this site's pages), audited; the reset page says the
same whether or not an account has the address."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.mail import mail_sent_wait
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-passphrase-7"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", email="alice@example.com", password="a-long-passphrase-1")


def log_in(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def reset_request(client, email, **kwargs):
    """The reset form's answer, once the email it sends from a thread (if any) has gone out."""
    response = client.post(reverse("password_reset"), {"email": email}, **kwargs)
    mail_sent_wait()
    return response


def test_a_reset_for_a_known_and_an_unknown_address_looks_the_same_and_mails_only_the_known(client, alice):
    known = reset_request(client, "ALICE@example.com", follow=True)
    unknown = reset_request(client, "nobody@example.com", follow=True)

    assert known.redirect_chain == unknown.redirect_chain == [(reverse("password_reset_done"), 302)]
    assert known.content == unknown.content
    assert "If an account has this address, an email is on its way" in known.content.decode()
    assert [message.to for message in mail.outbox] == [["alice@example.com"]]
    requested = AuditEvent.objects.filter(action="password_reset.requested").order_by("id")
    assert [(event.subject, event.detail) for event in requested] == [
        ("ALICE@example.com", {"accounts": 1}), ("nobody@example.com", {"accounts": 0}),
    ]


def test_the_emailed_link_sets_a_new_password_once(client, alice):
    reset_request(client, "alice@example.com")
    link = re.search(r"http://testserver(/\S+)", mail.outbox[0].body).group(1)

    form_page = client.get(link, follow=True)
    response = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}, follow=True,
    )

    assert "Password set" in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert AuditEvent.objects.filter(action="password_reset.done", actor=alice).count() == 1
    assert "This link can't be used" in client.get(link, follow=True).content.decode()
    assert log_in(client, "alice", NEW_PASSWORD).status_code == 302


def test_the_reset_page_is_styled_like_the_rest(client):
    page = client.get(reverse("password_reset")).content.decode()

    assert 'class="auth-card"' in page and "Reset your password" in page


def test_the_login_page_links_to_the_reset(client):
    assert reverse("password_reset") in client.get(reverse("login")).content.decode()


def test_a_signed_in_user_changes_their_password_and_stays_signed_in(client, alice):
    client.force_login(alice)

    response = client.post(reverse("password_change"), {
        "old_password": "a-long-passphrase-1", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD,
    }, follow=True)

    assert "Password changed" in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert client.get(reverse("home")).status_code == 200
    assert AuditEvent.objects.filter(action="password.changed", actor=alice).count() == 1


def test_a_wrong_old_password_changes_nothing(client, alice):
    client.force_login(alice)

    response = client.post(reverse("password_change"), {
        "old_password": "not-it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD,
    })

    assert response.status_code == 200 and "field-invalid" in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password("a-long-passphrase-1")


def test_changing_a_password_needs_a_signed_in_user(client):
    response = client.get(reverse("password_change"))

    assert response.status_code == 302 and reverse("login") in response["Location"]
