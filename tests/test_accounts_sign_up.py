"""Signing up: what each registration mode lets in, the emailed link that creates the account, and pages that
never tell whether a username or an address already has an account."""

import re
import time

import pytest
from django.core import mail, signing
from django.urls import reverse

from accounts import services
from accounts.mail import mail_sent_wait
from accounts.models import RegistrationPolicy, User
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"


def policy_set(mode: str, domains: str = "") -> None:
    RegistrationPolicy.objects.update_or_create(id=1, defaults={"mode": mode, "domains": domains})


def sign_up(client, username: str, email: str, url: str | None = None):
    """The form's answer, once the email it sends from a thread has gone out."""
    response = client.post(url or reverse("sign_up"), {"username": username, "email": email})
    mail_sent_wait()
    return response


def mailed_path(index: int = -1) -> str:
    """The path of the first link in an email the test client's server sent."""
    return re.search(r"http://testserver(/\S+)", mail.outbox[index].body).group(1)


def confirm(client, path: str):
    return client.post(path, {"new_password1": PASSWORD, "new_password2": PASSWORD})


@pytest.fixture(autouse=True)
def open_registration():
    policy_set("open")


def test_signing_up_mails_a_link_that_creates_the_account_and_signs_in(client):
    response = sign_up(client, "newcomer", "newcomer@example.com")

    assert response.status_code == 200 and "Check your email" in response.content.decode()
    assert not User.objects.filter(username="newcomer").exists()
    assert [message.to for message in mail.outbox] == [["newcomer@example.com"]]

    page = client.get(mailed_path())
    assert page.status_code == 200 and "Choose a password for <strong>newcomer</strong>" in page.content.decode()
    response = confirm(client, mailed_path())

    assert response.status_code == 302 and response["Location"] == reverse("home")
    user = User.objects.get(username="newcomer")
    assert user.email == "newcomer@example.com" and user.check_password(PASSWORD)
    assert client.get(reverse("home")).status_code == 200
    assert AuditEvent.objects.filter(action="account.signed_up", actor=user).count() == 1


def test_the_link_creates_one_account_only(client, django_user_model):
    sign_up(client, "newcomer", "newcomer@example.com")
    path = mailed_path()
    confirm(client, path)
    client.logout()

    response = confirm(client, path)

    assert response.status_code == 400 and "used already" in response.content.decode()
    assert django_user_model.objects.filter(username="newcomer").count() == 1


def test_the_chosen_password_must_pass_the_validators(client):
    sign_up(client, "newcomer", "newcomer@example.com")

    response = client.post(mailed_path(), {"new_password1": "123", "new_password2": "123"})

    assert response.status_code == 200 and "too short" in response.content.decode()
    assert not User.objects.filter(username="newcomer").exists()


def test_a_tampered_link_and_an_expired_one_create_nothing(client, settings):
    sign_up(client, "newcomer", "newcomer@example.com")
    tampered = mailed_path().replace("/confirm/", "/confirm/x")

    class SignedTwoDaysAgo(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(time.time()) - (settings.SIGN_UP_LINK_HOURS + 1) * 3600)

    old = SignedTwoDaysAgo(salt=services.SIGN_UP_SALT).sign_object(
        {"username": "newcomer", "email": "newcomer@example.com", "invite": None},
    )

    assert "not valid" in confirm(client, tampered).content.decode()
    response = confirm(client, reverse("sign_up_confirm", args=[old]))
    assert response.status_code == 400 and "expired" in response.content.decode()
    assert not User.objects.filter(username="newcomer").exists()


def page_text(response, email: str) -> str:
    return response.content.decode().replace(email, "EMAIL")


def test_a_taken_address_or_username_shows_the_same_page_and_mails_only_the_address(client, owner):
    owner.email = "owner@example.com"
    owner.save()
    fresh = sign_up(client, "newcomer", "newcomer@example.com")
    taken_address = sign_up(client, "someone-else", "OWNER@example.com")
    taken_username = sign_up(client, "Owner", "another@example.com")

    assert fresh.status_code == taken_address.status_code == taken_username.status_code == 200
    assert (
        page_text(fresh, "newcomer@example.com")
        == page_text(taken_address, "OWNER@example.com")
        == page_text(taken_username, "another@example.com")
    )
    assert [message.to for message in mail.outbox] == [
        ["newcomer@example.com"], ["OWNER@example.com"], ["another@example.com"],
    ]
    assert 'already has one: "owner"' in mail.outbox[1].body and reverse("password_reset") in mail.outbox[1].body
    assert 'the username "Owner", which is taken' in mail.outbox[2].body
    assert "/signup/confirm/" not in mail.outbox[1].body + mail.outbox[2].body
    assert User.objects.count() == 1


def test_a_username_taken_after_the_link_was_sent_is_refused(client, django_user_model):
    sign_up(client, "newcomer", "newcomer@example.com")
    django_user_model.objects.create_user("NEWCOMER", password=PASSWORD)

    response = confirm(client, mailed_path())

    assert response.status_code == 400
    assert not django_user_model.objects.filter(email="newcomer@example.com").exists()


def test_addresses_are_unique_in_any_letter_case(django_user_model):
    from django.db import IntegrityError

    django_user_model.objects.create_user("first", email="same@example.com")
    django_user_model.objects.create_user("no-address-1")
    django_user_model.objects.create_user("no-address-2")

    with pytest.raises(IntegrityError):
        django_user_model.objects.create_user("second", email="Same@Example.com")


@pytest.mark.parametrize(
    ("mode", "sentence"),
    [("closed", "Ask an admin for an invite."), ("invite", "Sign-up here is by invitation")],
)
def test_closed_and_invite_modes_offer_no_form_and_refuse_a_post(client, mode, sentence):
    policy_set(mode)

    page = client.get(reverse("sign_up"))
    response = sign_up(client, "newcomer", "newcomer@example.com")

    assert page.status_code == 200 and sentence in page.content.decode()
    assert 'name="username"' not in page.content.decode()
    assert response.status_code == 403 and sentence in response.content.decode()
    assert mail.outbox == [] and not User.objects.exists()


def test_domains_mode_takes_addresses_of_the_listed_domains_only(client):
    policy_set("domains", "example.com, Example.org")

    page = client.get(reverse("sign_up"))
    refused = sign_up(client, "outsider", "outsider@elsewhere.net")
    subdomain = sign_up(client, "near", "near@mail.example.com")
    accepted = sign_up(client, "insider", "insider@EXAMPLE.org")

    assert "open to email addresses at example.com, example.org" in page.content.decode()
    assert refused.status_code == 200 and "open to email addresses at example.com, example.org only" in (
        refused.content.decode()
    )
    assert "only" in subdomain.content.decode()
    assert "Check your email" in accepted.content.decode()
    assert [message.to for message in mail.outbox] == [["insider@EXAMPLE.org"]]
    confirm(client, mailed_path())
    assert list(User.objects.values_list("username", flat=True)) == ["insider"]


def test_a_link_sent_while_open_is_refused_once_sign_up_closes(client):
    sign_up(client, "newcomer", "newcomer@example.com")
    policy_set("closed")

    response = confirm(client, mailed_path())

    assert response.status_code == 400 and "Ask an admin for an invite" in response.content.decode()
    assert not User.objects.exists()


def test_a_signed_in_user_is_sent_home(client, owner):
    client.force_login(owner)

    assert client.get(reverse("sign_up"))["Location"] == reverse("home")


def test_without_a_mail_service_the_page_says_the_link_is_printed_in_the_servers_terminal(client, settings, capsys):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"  # `make run` without EMAIL_URL

    response = sign_up(client, "demo", "demo@example.com")

    assert "printed in the terminal where the server runs" in response.content.decode()
    assert re.search(r"http://testserver/\S+", capsys.readouterr().out)  # the link a newcomer copies from there


def test_with_a_mail_service_the_page_does_not_mention_the_terminal(client):
    response = sign_up(client, "someone", "someone@example.com")

    assert "terminal" not in response.content.decode()
