"""Login throttling (django-axes), with real requests: a cool-off per client address, the address being
REMOTE_ADDR and never X-Forwarded-For, and never for an account by itself, so nobody can keep someone else
(an admin included) locked out; a message with the wait; a password reset that lifts the owner's lock, as the
message says; and a successful sign-in that forgives the account's failures from its address only. The last
test drives a real uvicorn server."""

import os
import re
import subprocess
import sys
from datetime import timedelta

import httpx2
import pytest
from axes.models import AccessAttempt
from cluster import ROOT, AppServer, migrate, server_env
from django.core import mail
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from accounts.mail import mail_sent_wait

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-1"
LOCKED = "Too many failed sign-ins from your network. Wait 15 minutes before trying again"
NEW_PASSWORD = "a-brand-new-passphrase-7"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", email="alice@example.com", password=PASSWORD)


def log_in(client, username, password, address="192.0.2.1", **headers):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_five_wrong_passwords_lock_the_address_and_the_right_one_is_refused_with_the_wait(client, alice):
    answers = [log_in(client, "alice", "wrong").status_code for _ in range(5)]

    response = log_in(client, "alice", PASSWORD)

    assert answers == [200, 200, 200, 200, 429]
    assert response.status_code == 429 and LOCKED in response.content.decode()
    assert "Reset it by email" in response.content.decode()
    assert 'name="username"' in response.content.decode()  # the login page, with its form
    assert not signed_in(client)


def test_an_account_is_locked_whatever_addresses_the_guesses_come_from(client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    for n in range(5):  # five addresses, one wrong password each: no address reaches the limit
        log_in(client, "root", "wrong", address=f"198.51.100.{n}")

    owner = log_in(client, "root", PASSWORD, address="203.0.113.9")

    assert owner.status_code == 429 and "Reset it by email" in owner.content.decode()
    assert not signed_in(client)


def test_a_password_reset_lifts_the_owners_lock(client, alice):
    for _ in range(5):
        log_in(client, "alice", "wrong")
    assert log_in(client, "alice", PASSWORD).status_code == 429

    client.post(reverse("password_reset"), {"email": "alice@example.com"}, REMOTE_ADDR="192.0.2.1")
    mail_sent_wait()
    link = re.search(r"http://testserver(/\S+)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True, REMOTE_ADDR="192.0.2.1")
    client.post(form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
                REMOTE_ADDR="192.0.2.1")

    assert not AccessAttempt.objects.filter(username="alice").exists()
    assert log_in(client, "alice", NEW_PASSWORD).status_code == 302 and signed_in(client)


def test_the_owners_sign_in_does_not_forgive_a_guessers_failures_elsewhere(client, alice):
    for _ in range(4):
        log_in(client, "alice", "wrong", address="198.51.100.7")
    assert log_in(client, "alice", PASSWORD, address="203.0.113.9").status_code == 302
    client.logout()

    assert log_in(client, "alice", "wrong", address="198.51.100.7").status_code == 429


def test_an_address_is_locked_across_accounts_and_only_that_address(client, alice, django_user_model):
    django_user_model.objects.create_user("bob", password=PASSWORD)
    for n in range(5):
        log_in(client, f"guess-{n}", "wrong")

    refused = log_in(client, "bob", PASSWORD)
    elsewhere = log_in(client, "bob", PASSWORD, address="203.0.113.9")

    assert refused.status_code == 429
    assert elsewhere.status_code == 302 and signed_in(client)


def test_x_forwarded_for_does_not_change_the_address(client, alice):
    for n in range(5):
        log_in(client, f"guess-{n}", "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")

    response = log_in(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="10.9.9.9")

    assert response.status_code == 429 and not signed_in(client)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"192.0.2.1"}


def test_a_successful_sign_in_forgets_the_accounts_failures_but_not_the_addresss_others(client, alice):
    for username in ("alice", "alice", "mallory", "mallory"):
        log_in(client, username, "wrong")

    assert log_in(client, "alice", PASSWORD).status_code == 302
    client.logout()

    assert list(AccessAttempt.objects.values_list("username", "failures_since_start")) == [("mallory", 2)]
    for _ in range(4):
        log_in(client, "alice", "wrong", address="203.0.113.9")
    assert log_in(client, "alice", PASSWORD, address="203.0.113.9").status_code == 302


def test_the_lock_ends_after_the_cool_off(client, alice):
    for _ in range(5):
        log_in(client, "alice", "wrong")

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=15, seconds=1))

    assert log_in(client, "alice", PASSWORD).status_code == 302


def test_force_login_and_client_login_with_a_request_still_work(client, alice):
    """Tests sign in with force_login; client.login must hand axes a request to count against."""
    assert client.login(request=HttpRequest(), username="alice", password=PASSWORD)
    client.logout()
    client.force_login(alice)
    assert client.get(reverse("home")).status_code == 200


def test_the_limit_and_the_cool_off_come_from_the_environment():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "LOGIN_FAILURE_LIMIT": "3",
             "LOGIN_COOLOFF_MINUTES": "30"},
    )

    assert result.stdout.split() == ["3", "0.5"], result.stderr


CREATE_USERS = (
    "from accounts.models import User\n"
    "for name in ('victim', 'bystander'): User.objects.create_user(name, password='a-long-passphrase-1')"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """uvicorn as every test server runs, trusting no proxy (no TRUSTED_PROXY_IPS), on a SQLite file."""
    workdir = tmp_path_factory.mktemp("throttling")
    env = server_env(DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}", REDIS_URL="")
    migrate(env)
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", CREATE_USERS],
        cwd=ROOT, env=env, check=True, timeout=120,
    )
    server = AppServer(env, workdir, "server").start()
    yield server
    server.stop()


def server_log_in(http, username, password, forwarded_for):
    page = http.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return http.post(
        "/accounts/login/", data={"csrfmiddlewaretoken": token, "username": username, "password": password},
        headers={"X-Forwarded-For": forwarded_for},
    )


def test_a_real_server_keeps_the_lock_through_rotating_x_forwarded_for(server):
    with httpx2.Client(base_url=server.url, timeout=30) as http:
        answers = {server_log_in(http, "victim", "wrong", f"10.1.{n // 250}.{n % 250}").status_code
                   for n in range(60)}
        right = server_log_in(http, "victim", PASSWORD, "10.2.0.1")

        assert answers == {200, 429}
        assert right.status_code == 429 and "Wait 15 minutes" in right.text
        assert "sessionid" not in http.cookies
        # The address is locked, not only for that account: another account's right password is refused.
        bystander = server_log_in(http, "bystander", PASSWORD, "10.3.0.1")
        assert bystander.status_code == 429 and "sessionid" not in http.cookies
