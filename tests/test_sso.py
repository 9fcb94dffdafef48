"""Single sign-on, end to end: the real server (uvicorn, tests/cluster.py) signs people in through a real
OpenID provider, panva's certified oidc-provider, run by Node.js on loopback (tests/oidc_provider/).

The test plays the browser with plain HTTP: the login page's button, the provider's authorization endpoint
(told who signs in by the standard login_hint parameter, which the provider script's interaction obeys), and
the app's callback, which exchanges the code, checks the RS256 ID token against the provider's JWKS and reads
userinfo. The server shares this test's database file, so a test sets the scene and checks the outcome with
the ORM.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import jwt
import pytest
from axes.models import AccessAttempt
from cluster import AppServer, free_port, npm_installed, server_env
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import SuspiciousOperation

from accounts.models import RegistrationPolicy, User
from accounts.oidc import OidcBackend
from audit.models import AuditEvent
from teams.models import Membership, Team

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
PROVIDER_NAME = "Test IdP"
CLIENT_ID = "claude-chat"
CLIENT_SECRET = "a-client-secret-read-from-a-file"
# The provider's accounts: the id is what the test passes as login_hint, and the provider's `sub`.
ACCOUNTS = {
    "ada": {"email": "ada@example.com", "email_verified": True, "preferred_username": "ada",
            "groups": ["engineering", "not-a-group-here"]},
    "ben": {"email": "ben@example.com", "email_verified": False, "preferred_username": "ben", "groups": []},
    "cy": {"email": "Cy@Example.com", "email_verified": True, "preferred_username": "cy",
           "groups": ["engineering"]},
    "dee": {"email": "dee@example.com", "email_verified": True, "preferred_username": "dee"},  # no groups
}

pytestmark = pytest.mark.django_db(transaction=True)


class OidcProvider:
    """`node provider.mjs PORT CONFIG`: one static client and ACCOUNTS, issuer http://127.0.0.1:PORT."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / "provider.log"
        self.process: subprocess.Popen | None = None

    def start(self, redirect_uri: str) -> "OidcProvider":
        self.config_path = self.workdir / "provider.json"
        self.config_path.write_text(json.dumps({
            "client": {
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [redirect_uri],
            },
            "accounts": ACCOUNTS,
        }))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["node", "provider.mjs", str(self.port), str(self.config_path)],
                cwd=PROVIDER_DIR, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the provider exited at start:\n{self.log_path.read_text()[-3000:]}")
            try:
                discovery = httpx2.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2)
                if discovery.status_code == 200:
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the provider did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def shared_database_url() -> str:
    """The database pytest-django made for this run, as the server's DATABASE_URL."""
    from django.db import connection

    database = connection.settings_dict
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    return (
        f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}"
        f"/{database['NAME']}"
    )


def sso_env(provider: OidcProvider, workdir: Path, **overrides) -> dict:
    secret_file = workdir / "oidc-client-secret"
    secret_file.write_text(f"{CLIENT_SECRET}\n")
    return server_env(**{
        "DATABASE_URL": shared_database_url(),
        "DJANGO_MEDIA_ROOT": str(workdir / "media"),
        "REDIS_URL": "",
        "REGISTRATION_MODE": "open",
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET_FILE": str(secret_file),
        "OIDC_PROVIDER_NAME": PROVIDER_NAME,
        **overrides,
    })


@pytest.fixture(scope="module")
def provider_and_server(tmp_path_factory, django_db_setup):
    npm_installed(PROVIDER_DIR)
    workdir = tmp_path_factory.mktemp("sso")
    provider = OidcProvider(workdir)
    server = AppServer(sso_env(provider, workdir), workdir, "server")
    provider.start(redirect_uri=f"{server.url}/oidc/callback/")
    try:
        server.start()
        yield provider, server
    finally:
        server.stop()
        provider.stop()


@pytest.fixture
def server(provider_and_server):
    return provider_and_server[1]


@pytest.fixture
def engineering():
    return Team.objects.create(name="Engineering", sso_claim_value="engineering")


def sign_in_with_sso(server: AppServer, account: str) -> tuple[httpx2.Client, httpx2.Response]:
    """The login page's button, the provider (as `account`), back to the app; returns the browser and the
    last page."""
    browser = httpx2.Client(base_url=server.url, timeout=30)
    login_page = browser.get("/accounts/login/?next=/usage/")
    button = re.search(rf'href="([^"]+)">Sign in with {PROVIDER_NAME}</a>', login_page.text)
    assert button, login_page.text
    to_provider = browser.get(button.group(1).replace("&amp;", "&"))
    assert to_provider.status_code == 302, to_provider.text[:500]
    authorize = f"{to_provider.headers['location']}&login_hint={account}"
    return browser, browser.get(authorize, follow_redirects=True)


def signed_in_as(browser: httpx2.Client) -> str | None:
    page = browser.get("/")
    match = re.search(r'title="Signed in as ([^"]+)"', page.text)
    return match.group(1) if match else None


def test_a_first_sign_in_creates_the_account_joins_its_mapped_groups_and_lands_where_it_was_going(
    server, engineering
):
    sales = Team.objects.create(name="Sales", sso_claim_value="sales")
    unmapped = Team.objects.create(name="Unmapped")

    browser, page = sign_in_with_sso(server, "ada")

    assert page.status_code == 200 and page.url.path == "/usage/"
    assert signed_in_as(browser) == "ada"
    ada = User.objects.get(username="ada")
    assert ada.email == "ada@example.com" and not ada.has_usable_password()
    memberships = Membership.objects.filter(user=ada).values_list("team__name", "role")
    assert list(memberships) == [("Engineering", "member")]
    assert not Membership.objects.filter(team__in=[sales, unmapped]).exists()
    assert list(AuditEvent.objects.order_by("id").values_list("action", "subject", "actor")) == [
        ("sso.account_created", "ada", ada.pk),
        ("group.member_added", "ada in Engineering", None),
        ("account.signed_in", "ada", ada.pk),
    ]
    signed_in = AuditEvent.objects.get(action="account.signed_in")
    assert signed_in.detail == {"backend": "accounts.oidc.OidcBackend"}


def test_a_mapped_group_the_claim_no_longer_names_is_left_and_an_unmapped_one_is_kept(server, engineering):
    ada = User.objects.create_user("ada", email="ada@example.com")
    sales = Team.objects.create(name="Sales", sso_claim_value="sales")
    unmapped = Team.objects.create(name="Unmapped")
    for team in (sales, unmapped):
        Membership.objects.create(team=team, user=ada)

    sign_in_with_sso(server, "ada")

    assert sorted(Membership.objects.filter(user=ada).values_list("team__name", flat=True)) == [
        "Engineering", "Unmapped",
    ]
    assert AuditEvent.objects.filter(action="group.member_removed", subject="ada in Sales").exists()


def test_without_a_groups_claim_memberships_are_left_alone(server):
    dee = User.objects.create_user("dee", email="dee@example.com")
    Membership.objects.create(team=Team.objects.create(name="Sales", sso_claim_value="sales"), user=dee)

    browser, _ = sign_in_with_sso(server, "dee")

    assert signed_in_as(browser) == "dee"
    assert list(Membership.objects.filter(user=dee).values_list("team__name", flat=True)) == ["Sales"]


def test_signing_in_again_is_the_same_account(server, engineering):
    sign_in_with_sso(server, "ada")
    browser, _ = sign_in_with_sso(server, "ada")

    assert signed_in_as(browser) == "ada"
    assert User.objects.count() == 1 and Membership.objects.count() == 1


def test_a_first_sign_in_refused_by_a_closed_registration_says_why_and_leaves_no_user(server):
    """Nor does it count as a failed sign-in towards a lockout: the provider knew who it was."""
    RegistrationPolicy.objects.create(id=1, mode=RegistrationPolicy.Mode.CLOSED)

    browser, page = sign_in_with_sso(server, "ada")

    assert page.status_code == 403
    assert "does not accept new accounts from single sign-on; ask an admin for an invite" in page.text
    assert signed_in_as(browser) is None
    assert not User.objects.exists()
    assert list(AuditEvent.objects.values_list("action", "subject", "detail")) == [
        ("sso.refused", "ada@example.com", {"reason": "sign_up_closed"}),
    ]
    assert not AccessAttempt.objects.exists()


def test_a_domains_registration_lets_its_domain_in(server):
    RegistrationPolicy.objects.create(id=1, mode=RegistrationPolicy.Mode.DOMAINS, domains="example.com")

    browser, _ = sign_in_with_sso(server, "ada")

    assert signed_in_as(browser) == "ada"


def test_an_existing_user_is_matched_by_verified_email_even_when_registration_is_closed_and_keeps_their_role(
    server, engineering
):
    RegistrationPolicy.objects.create(id=1, mode=RegistrationPolicy.Mode.CLOSED)
    cyrus = User.objects.create_user("cyrus", email="cy@example.com", password="a-long-passphrase-1")
    Membership.objects.create(team=engineering, user=cyrus, role=Membership.Role.MANAGER)

    browser, _ = sign_in_with_sso(server, "cy")

    assert signed_in_as(browser) == "cyrus"
    assert list(User.objects.values_list("username", flat=True)) == ["cyrus"]
    assert Membership.objects.get(user=cyrus).role == Membership.Role.MANAGER


def test_an_unverified_email_is_not_matched_to_an_existing_account(server):
    User.objects.create_user("benedict", email="ben@example.com", password="a-long-passphrase-1")

    browser, page = sign_in_with_sso(server, "ben")

    assert page.status_code == 403 and "has no verified email address" in page.text
    assert signed_in_as(browser) is None
    assert list(User.objects.values_list("username", flat=True)) == ["benedict"]


def test_a_deactivated_account_is_not_signed_in(server):
    User.objects.create_user("cyrus", email="cy@example.com", is_active=False)

    browser, page = sign_in_with_sso(server, "cy")

    assert page.status_code == 403 and "deactivated" in page.text
    assert signed_in_as(browser) is None


def test_a_taken_username_gets_a_suffix(server):
    User.objects.create_user("Ada", email="someone.else@example.com")

    browser, _ = sign_in_with_sso(server, "ada")

    assert signed_in_as(browser) == "ada-2"


def test_a_sign_in_the_provider_refuses_signs_nobody_in(server):
    browser, page = sign_in_with_sso(server, "nobody-at-the-provider")

    assert page.status_code == 403 and "Single sign-on did not sign you in" in page.text
    assert signed_in_as(browser) is None
    assert not User.objects.exists()


def test_a_callback_without_a_sign_in_started_here_signs_nobody_in(server):
    browser = httpx2.Client(base_url=server.url, timeout=30)

    page = browser.get("/oidc/callback/?code=forged&state=forged")

    assert page.status_code == 403
    assert signed_in_as(browser) is None


def test_the_login_page_has_no_sso_button_when_sso_is_not_configured(client):
    page = client.get("/accounts/login/")

    assert page.status_code == 200 and b"Sign in with" not in page.content
    assert client.get("/oidc/authenticate/").status_code == 404


def test_a_provider_that_names_another_issuer_stops_start_up(provider_and_server, tmp_path):
    provider, _ = provider_and_server
    env = sso_env(provider, tmp_path, OIDC_ISSUER=f"{provider.issuer}/")

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=Path(__file__).resolve().parent.parent, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )

    assert result.returncode != 0
    assert f"calls itself '{provider.issuer}'; set OIDC_ISSUER to exactly that" in result.stderr


def test_an_id_token_counts_only_from_our_issuer_and_for_this_client(settings):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings.OIDC_ISSUER = "https://idp.example"
    settings.OIDC_OP_TOKEN_ENDPOINT = "https://idp.example/token"
    settings.OIDC_OP_USER_ENDPOINT = "https://idp.example/userinfo"
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
    settings.OIDC_RP_SIGN_ALGO = "RS256"
    settings.OIDC_RP_IDP_SIGN_KEY = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    backend = OidcBackend()

    def id_token(**claims) -> str:
        claims = {"iss": "https://idp.example", "aud": CLIENT_ID, "sub": "ada", "nonce": "n",
                  "exp": int(time.time()) + 60, **claims}
        return jwt.encode(claims, key, algorithm="RS256")

    assert backend.verify_token(id_token(aud=[CLIENT_ID, "another"]), nonce="n")["sub"] == "ada"
    with pytest.raises(SuspiciousOperation):
        backend.verify_token(id_token(aud="another-client"), nonce="n")
    with pytest.raises(SuspiciousOperation):
        backend.verify_token(id_token(iss="https://elsewhere.example"), nonce="n")
