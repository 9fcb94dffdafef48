"""The chat page in a real browser: Debian's Chromium, driven through Playwright, against the real server.

The server is uvicorn, started as every test server is (tests/cluster.py) and with DEBUG on, as `make run` has it
(config/asgi.py then serves the static files), in its own process, on a throwaway SQLite file, with the
offline model streaming slowly enough to watch a reply grow.
It runs apart from pytest-django's test database on purpose: the browser and the server share nothing with
the test process but HTTP and the websocket.
"""

import contextlib
import json
import os
import re
from pathlib import Path

import pytest
from cluster import AppServer, mailed_link, migrate, server_env

from chat.attachments import formats

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parent.parent
# Fast enough to keep the test short, slow enough that a reply of ~120 tokens arrives in many frames.
TOKENS_PER_SECOND = 100
QUESTION = 'Hello <img src=x onerror="window.__xss=1"> **bold**'
PASSWORD = "a-long-passphrase-for-tests"


def require_browser():
    """CI must run these tests, so a missing browser fails there; on a workstation it skips with the reason."""
    reason = None
    if not Path(CHROMIUM).exists():
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (pip install -r requirements.lock)"
    if reason and os.environ.get("CI") == "true":
        pytest.fail(f"Browser tests cannot run: {reason}")
    if reason:
        pytest.skip(reason)


@contextlib.contextmanager
def app_server(tmp_path_factory, name="browser-server", **settings):
    """A DEBUG server (static files served) on a throwaway SQLite file, the offline model at TOKENS_PER_SECOND,
    in its own process; `settings` adds environment variables (CHAT_MODEL_TITLES="1"). Yields its URL."""
    require_browser()
    workdir = tmp_path_factory.mktemp(name)
    env = server_env(
        DJANGO_DEBUG="1",
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        DJANGO_MEDIA_ROOT=str(workdir / "media"),
        REDIS_URL="",
        OFFLINE_MODEL_TOKENS_PER_SECOND=TOKENS_PER_SECOND,
        **settings,
    )
    migrate(env)
    server = AppServer(env, workdir, "server").start()
    try:
        yield server.url
    finally:
        server.stop()


def launch_chromium(playwright):
    """Debian's Chromium, headless, with the flags every browser test and the render benchmark use."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def browser_page(browser, **options):
    """A page in a fresh browser profile (`options` go to new_context; a 1280 x 800 window unless they say);
    the profile is closed after, and uncaught page errors fail the test."""
    options.setdefault("viewport", {"width": 1280, "height": 800})
    context = browser.new_context(**options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with app_server(tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser profile per test; uncaught page errors fail the test."""
    with browser_page(browser) as page:
        yield page


def sign_up(page, server_url, username):
    """Signs up as `username` through the sign-up form and the mailed link, as a newcomer does; ends on `/`."""
    page.goto(f"{server_url}/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_email", f"{username}@example.com")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your email")
    page.goto(mailed_link(f"{username}@example.com"))
    page.fill("#id_new_password1", PASSWORD)
    page.fill("#id_new_password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server_url}/")


def open_new_chat(page, server_url):
    """`/`: a new chat, its composer ready, with no conversation until the first message."""
    page.goto(f"{server_url}/")
    page.wait_for_selector('#chat[data-conversation-id=""]')


def sign_up_and_start_a_chat(page, server_url, username):
    """Sign-up ends on `/`: a new chat, its composer ready, with no conversation until the first message."""
    sign_up(page, server_url, username)
    page.wait_for_selector('#chat[data-conversation-id=""]')


def send(page, text):
    page.fill("#composer-input", text)
    # The send button turns on once the socket is open (or, on a new chat, at once) and there is text.
    page.wait_for_selector("#send-button:not([disabled])")
    page.press("#composer-input", "Enter")


def record_reply_growth(page):
    """Records (status, text length) of the last assistant message at every DOM change, from inside the page."""
    page.evaluate(
        """() => {
        window.__growth = [];
        const list = document.getElementById("message-list");
        new MutationObserver(() => {
            const replies = list.querySelectorAll(".message-assistant");
            const reply = replies[replies.length - 1];
            if (!reply) return;
            const body = reply.querySelector(".message-body");
            window.__growth.push({status: reply.dataset.status, length: body.textContent.length});
        }).observe(list, {subtree: true, childList: true, characterData: true, attributes: true});
    }"""
    )


def streaming_lengths(page) -> list[int]:
    growth = page.evaluate("window.__growth")
    return [entry["length"] for entry in growth if entry["status"] == "streaming" and entry["length"] > 0]


LAST_REPLY = ".message-assistant >> nth=-1"
# The widest inline markdown marker pair a streamed reply can show before it closes (`**`, then `**`).
MARKER_CHARS = 4


def test_a_reply_streams_in_renders_markdown_safely_and_survives_a_reload(page, server_url):
    sign_up_and_start_a_chat(page, server_url, "streamer")
    assert page.locator(".badge-offline").first.is_visible()
    record_reply_growth(page)

    send(page, QUESTION)
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=30_000)

    lengths = streaming_lengths(page)
    # Shown text may shrink by a marker's width when it closes (`**bold` becomes `bold` once the closing `**`
    # arrives, if a frame fell between them), never by more: nothing already written is taken back.
    assert len(set(lengths)) >= 2, f"no growing intermediate state: {lengths}"
    assert all(later >= earlier - MARKER_CHARS for earlier, later in zip(lengths, lengths[1:])), lengths
    assert page.input_value("#composer-input") == "", "the echoed draft is cleared"
    user_text = page.inner_text(".message-user .user-text")
    assert user_text == QUESTION, "the user's message is shown as typed, never as HTML"

    reply = page.locator(LAST_REPLY)
    assert reply.locator("blockquote strong").inner_text() == "bold"
    assert reply.locator(".markdown ul > li").count() >= 1
    assert reply.locator("pre code.hljs [class^=hljs-]").count() >= 1
    assert page.evaluate("window.__xss") is None
    assert page.locator("img").count() == 0
    assert page.locator("[onerror]").count() == 0
    footer = reply.locator(".message-stats").inner_text()
    assert re.search(r"[\d,]+ in( \([^)]*\))? · [\d,]+ out", footer) and "$" in footer
    live_total = page.locator("#conversation-cost").inner_text()
    assert live_total != "$0.0000"
    page.screenshot(path="/tmp/chat.png")

    page.reload()
    reloaded_total = page.locator("#conversation-cost").inner_text()
    assert abs(float(reloaded_total.strip("$")) - float(live_total.strip("$"))) <= 0.0001
    reply = page.locator(LAST_REPLY)
    assert reply.get_attribute("data-status") == "complete"
    assert reply.locator("pre code.hljs").count() >= 1
    assert reply.locator(".markdown ul > li").count() >= 1
    assert "$" in reply.locator(".message-stats").inner_text()
    assert page.evaluate("window.__xss") is None
    assert page.locator(".badge-offline").first.is_visible()


def test_stop_ends_the_reply_and_keeps_the_partial_text(page, server_url):
    sign_up_and_start_a_chat(page, server_url, "stopper")

    send(page, "Tell me everything about B-trees.")
    page.wait_for_function(
        """() => {
        const reply = document.querySelector(".message-assistant[data-status=streaming] .markdown");
        return reply && reply.textContent.length > 0;
    }"""
    )
    page.click("#stop-button")
    page.wait_for_selector(".message-assistant[data-status=stopped]")

    reply = page.locator(LAST_REPLY)
    assert reply.locator(".status-stopped").inner_text() == "Stopped"
    partial = reply.locator(".markdown").inner_text()
    assert partial, "the partial reply is kept"
    assert page.locator("#send-button").is_visible() and page.locator("#stop-button").is_hidden()

    page.reload()
    reply = page.locator(LAST_REPLY)
    assert reply.get_attribute("data-status") == "stopped"
    assert reply.locator(".status-stopped").is_visible()
    assert reply.locator(".markdown").inner_text() == partial


def test_a_lost_delta_is_recovered_with_resume(page, server_url):
    """The page sits behind a relay that drops one delta frame; it must notice the gap and resume."""
    sent_by_page = []
    dropped = []

    def relay(route):
        server = route.connect_to_server()

        def from_page(text):
            sent_by_page.append(json.loads(text))
            server.send(text)

        def from_server(text):
            frame = json.loads(text)
            if frame["type"] == "delta" and frame["seq"] == 3 and not dropped:
                dropped.append(frame)
                return
            route.send(text)

        route.on_message(from_page)
        server.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws/conversations/\d+/$"), relay)
    sign_up_and_start_a_chat(page, server_url, "resumer")

    send(page, "What happens when a frame is lost?")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=30_000)

    assert dropped, "the relay saw the delta it was to drop"
    assert {"type": "resume", "message": dropped[0]["message"]} in sent_by_page
    shown = page.locator(LAST_REPLY).locator(".markdown").inner_text()
    page.reload()
    assert page.locator(LAST_REPLY).locator(".markdown").inner_text() == shown


def test_an_attached_image_is_uploaded_sent_and_described_and_a_refused_file_says_why(page, server_url):
    from attachment_samples import image_bytes

    sign_up_and_start_a_chat(page, server_url, "attacher")
    page.set_input_files(
        "#attach-input",
        files=[
            {"name": "red square.png", "mimeType": "image/png", "buffer": image_bytes("PNG", (640, 480))},
            {"name": "photos.zip", "mimeType": "application/zip", "buffer": b"PK\x05\x06" + bytes(18)},
        ],
    )
    ready = page.locator(".composer-attachment[data-status=ready]")
    refused = page.locator(".composer-attachment[data-status=failed]")
    ready.wait_for()
    refused.wait_for()
    assert ready.locator(".composer-attachment-meta").inner_text() == "640 × 480"
    assert refused.locator(".composer-attachment-error").inner_text() == formats.ZIP

    send(page, "What size is this image?")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=30_000)

    assert "Image 1: PNG, 640 x 480, RGB." in page.locator(LAST_REPLY).inner_text()
    assert page.locator(".composer-attachment").count() == 0, (
        "the sent and the refused files left the composer"
    )
    attachment = page.locator(".message-user a.attachment")
    assert attachment.locator(".attachment-name").inner_text() == "red square.png"
    attachment.locator(".attachment-thumbnail").wait_for()
    assert (
        attachment.locator(".attachment-thumbnail").evaluate("img => img.complete && img.naturalWidth") == 320
    )
    full = page.request.get(server_url + attachment.get_attribute("href"))
    assert full.status == 200 and full.headers["content-type"] == "image/png"

    page.reload()
    assert page.locator(".message-user .attachment-thumbnail").count() == 1


def test_the_calculator_runs_as_a_collapsible_step_before_the_answer(page, server_url):
    sign_up_and_start_a_chat(page, server_url, "calculating")

    send(page, "what is 17*23")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=30_000)

    reply = page.locator(LAST_REPLY)
    step = reply.locator("details.tool-step")
    assert step.count() == 1 and not step.evaluate("node => node.open"), "one step, collapsed"
    summary = step.locator("summary").inner_text()
    assert "calculator" in summary and "17*23" in summary and "391" in summary
    step.locator("summary").click()
    assert step.locator(".tool-io").nth(1).inner_text() == "391"
    assert "The calculator returned 391." in reply.locator(".markdown").last.inner_text()
    assert reply.locator(".action-regenerate").is_visible()

    page.reload()
    assert "391" in page.locator(LAST_REPLY).locator("details.tool-step summary").inner_text()


def test_a_file_over_the_size_limit_is_refused_in_the_page_and_never_sent(page, server_url):
    from attachment_samples import image_bytes

    from chat.attachments.limits import megabytes

    sign_up_and_start_a_chat(page, server_url, "oversized")
    limit = int(page.locator("#chat").get_attribute("data-max-file-bytes"))
    uploads = []
    page.on("request", lambda request: request.url.endswith("/attachments/") and uploads.append(request))

    # One byte over: the case that used to upload in full, then read "files can be at most 32 MB".
    big = {"name": "scan.pdf", "mimeType": "application/pdf", "buffer": bytes(limit + 1)}
    page.set_input_files("#attach-input", files=[big])
    refused = page.locator(".composer-attachment[data-status=failed]")
    refused.wait_for()
    # Then a small file: once it is in, the big one would have been sent before it.
    page.set_input_files(
        "#attach-input", files=[{"name": "dot.png", "mimeType": "image/png", "buffer": image_bytes()}]
    )
    ready = page.locator(".composer-attachment[data-status=ready]")
    ready.wait_for()

    assert refused.locator(".composer-attachment-error").inner_text() == (
        f"This file is {megabytes(limit + 1)}; files can be at most {megabytes(limit)}."
    )
    assert megabytes(limit + 1) != megabytes(limit)
    assert ready.locator(".composer-attachment-name").inner_text() == "dot.png"
    assert [request.method for request in uploads] == ["POST"], "only the small file was sent"
