"""The Content-Security-Policy in a real browser: the chat page (streaming a reply over its websocket), the
settings page and the admin's pages run with nothing refused. Chromium reports each refusal on the console.

The server is uvicorn with DEBUG on, as tests/test_browser.py starts it, with a superuser made by
`manage.py createsuperuser`; the browser signs in through the login page.
"""

import subprocess
import sys

import pytest
from cluster import ROOT, AppServer, migrate, server_env
from test_browser import CHROMIUM, CHROMIUM_ARGS, require_browser, send

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "boss", "a-long-passphrase-for-csp-tests"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    require_browser()
    workdir = tmp_path_factory.mktemp("browser-csp-server")
    env = server_env(
        DJANGO_DEBUG="1", DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        DJANGO_MEDIA_ROOT=str(workdir / "media"), REDIS_URL="", OFFLINE_MODEL_TOKENS_PER_SECOND=200,
    )
    migrate(env)
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--no-input", "--username", USERNAME,
         "--email", "boss@example.com"],
        cwd=ROOT, env={**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}, check=True, timeout=120,
    )
    server = AppServer(env, workdir, "server").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def signed_in(server_url):
    """One signed-in browser page for the module, with every console message it logs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.console_messages_seen = []
        page.on("console", lambda message: page.console_messages_seen.append(message.text))
        page.goto(f"{server_url}/accounts/login/")
        page.fill("#id_username", USERNAME)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server_url}/")
        page.wait_for_selector("#chat")
        # Conversation 1, which the admin pages below open, asked for as a new chat's first message asks.
        page.evaluate("""async () => {
            const token = decodeURIComponent(document.cookie.match(/csrftoken=([^;]+)/)[1]);
            const response = await fetch("/conversations/new/", {
                method: "POST", headers: {"X-CSRFToken": token, "X-Requested-With": "fetch"},
            });
            if (!response.ok) throw new Error(`HTTP ${response.status}`);
        }""")
        yield page
        browser.close()


def refusals(page) -> list[str]:
    return [text for text in page.console_messages_seen if "Content Security Policy" in text]


def test_the_chat_page_streams_a_reply_with_nothing_refused(signed_in, server_url):
    page = signed_in
    page.goto(f"{server_url}/")  # a new chat: its first message goes into conversation 1, still empty
    page.wait_for_selector("#chat")

    send(page, "Show me a list and some code, please.")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=30_000)

    assert page.locator(".message-assistant pre code.hljs").count() >= 1  # the vendored scripts ran
    assert refusals(page) == []


@pytest.mark.parametrize("path", [
    "/accounts/settings/", "/usage/", "/admin/", "/admin/chat/conversation/", "/admin/chat/conversation/1/change/",
    "/admin/accounts/user/1/change/", "/admin/usage/", "/admin/audit/auditevent/", "/admin/chat/apicall/",
])
def test_the_settings_and_admin_pages_run_with_nothing_refused(signed_in, server_url, path):
    page = signed_in
    page.console_messages_seen.clear()

    response = page.goto(f"{server_url}{path}")
    page.wait_for_load_state("networkidle")

    assert response.status == 200
    assert "Content-Security-Policy" in {name.title(): value for name, value in response.headers.items()}
    assert refusals(page) == []


def test_an_inline_script_is_refused(signed_in, server_url):
    """The policy is in force, not merely sent: a script the page did not load from this site never runs."""
    page = signed_in
    page.goto(f"{server_url}/accounts/settings/")
    page.console_messages_seen.clear()

    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.__inline = 1";
        document.body.appendChild(script);
    }""")

    assert page.evaluate("window.__inline") is None
    assert any("script-src" in text for text in refusals(page))
