"""The sign-up and reset emails: the page answers before its email is accepted (an SMTP server's time must not
tell whether an account has the address), and a few go to one address, and from one client, an hour; past
that the page answers the same, nothing is sent, and the server logs it."""

import threading

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.urls import reverse

from accounts.mail import mail_sent_wait
from accounts.models import RegistrationPolicy

pytestmark = pytest.mark.django_db


class HeldBackend(EmailBackend):
    """An SMTP server that accepts nothing until the test lets it (or 5 s pass)."""

    accept = threading.Event()

    def send_messages(self, messages):
        self.accept.wait(timeout=5)
        return super().send_messages(messages)


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", email="alice@example.com", password="a-long-passphrase-1")


@pytest.fixture(autouse=True)
def open_registration():
    RegistrationPolicy.objects.update_or_create(id=1, defaults={"mode": "open"})


@pytest.fixture
def held_mail(settings):
    settings.EMAIL_BACKEND = f"{__name__}.HeldBackend"
    HeldBackend.accept.clear()
    yield HeldBackend.accept
    HeldBackend.accept.set()
    mail_sent_wait()


def reset_request(client, email, address="192.0.2.1"):
    return client.post(reverse("password_reset"), {"email": email}, REMOTE_ADDR=address, follow=True)


def sign_up(client, username, email, address="192.0.2.1"):
    return client.post(reverse("sign_up"), {"username": username, "email": email}, REMOTE_ADDR=address)


def sent_to() -> list[str]:
    mail_sent_wait()
    return [address for message in mail.outbox for address in message.to]


@pytest.mark.parametrize("send", [
    lambda client: reset_request(client, "alice@example.com"),
    lambda client: sign_up(client, "newcomer", "alice@example.com"),
    lambda client: sign_up(client, "newcomer", "newcomer@example.com"),
], ids=["reset", "sign-up-address-taken", "sign-up-link"])
def test_the_page_answers_before_its_email_is_accepted(client, alice, held_mail, send):
    response = send(client)

    assert response.status_code == 200 and mail.outbox == []
    held_mail.set()
    assert len(sent_to()) == 1


def test_a_fourth_email_to_one_address_within_the_hour_is_not_sent_and_the_page_says_the_same(
    client, alice, caplog,
):
    pages = [reset_request(client, "alice@example.com", address=f"198.51.100.{n}").content for n in range(2)]
    pages += [sign_up(client, "newcomer", "ALICE@example.com", address="198.51.100.2").content]
    refused_reset = reset_request(client, "alice@example.com", address="198.51.100.3")
    refused_sign_up = sign_up(client, "newcomer", "alice@example.com", address="198.51.100.4")

    assert sent_to() == ["alice@example.com", "alice@example.com", "ALICE@example.com"]
    assert refused_reset.content == pages[0]
    assert refused_sign_up.status_code == 200 and "Check your email" in refused_sign_up.content.decode()
    assert [record.getMessage() for record in caplog.records if record.name == "accounts.mail"] == [
        ("Not sending the password reset email to alice@example.com (requested from 198.51.100.3): over 3 an "
         "hour per address."),
        ("Not sending the sign-up email to alice@example.com (requested from 198.51.100.4): over 3 an hour per "
         "address."),
    ]


def test_resets_for_an_unknown_address_count_the_same(client):
    for _ in range(4):
        reset_request(client, "nobody@example.com")

    assert sent_to() == []
    assert sign_up(client, "nobody", "nobody@example.com").status_code == 200
    assert sent_to() == []


def test_one_client_sends_twenty_emails_an_hour_and_another_client_is_not_held_back(client, caplog):
    for n in range(21):
        sign_up(client, f"user{n}", f"user{n}@example.com")
    elsewhere = sign_up(client, "user21", "user21@example.com", address="203.0.113.9")

    assert sent_to() == [f"user{n}@example.com" for n in [*range(20), 21]]
    assert elsewhere.status_code == 200
    assert "over 20 an hour per client" in caplog.text


def test_an_ipv6_client_is_counted_by_its_slash_64(client, settings):
    settings.ACCOUNT_EMAILS_PER_CLIENT_PER_HOUR = 2
    for n in range(3):
        sign_up(client, f"user{n}", f"user{n}@example.com", address=f"2001:db8:1:2::{n + 1}")
    sign_up(client, "other", "other@example.com", address="2001:db8:1:3::1")

    assert sent_to() == ["user0@example.com", "user1@example.com", "other@example.com"]


def test_a_failed_send_is_logged_and_the_page_is_unchanged(client, alice, settings, caplog):
    settings.EMAIL_BACKEND = f"{__name__}.BrokenBackend"

    response = reset_request(client, "alice@example.com")
    mail_sent_wait()

    assert response.status_code == 200
    assert "Could not send the email 'Reset your Claude chat password' to alice@example.com." in caplog.text


class BrokenBackend(EmailBackend):
    def send_messages(self, messages):
        raise ConnectionRefusedError("no SMTP server")
