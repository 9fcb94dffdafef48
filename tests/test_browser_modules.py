"""The chat page's script is native ES modules (static/chat/main.js and what it imports), in a real browser: the
page loads the entry point as `type=module`, the browser fetches every module of the import graph, each served
as JavaScript (a module served with another MIME type is refused), and the page works with nothing logged as an
error, on the empty state and in a conversation.

It reuses test_browser.py's server and browser (same Chromium, same DEBUG server as `make run`, the offline
model).
"""

import re
from pathlib import Path

import pytest
from cluster import mailed_link
from test_browser import PASSWORD, browser, page, send, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

STATIC_CHAT = Path(__file__).resolve().parent.parent / "static" / "chat"
IMPORT = re.compile(r'^import [^;]* from "\./([a-z_]+\.js)";$', re.MULTILINE)
JAVASCRIPT = ("text/javascript", "application/javascript")
DONE = 30_000  # a whole reply from the offline model


def import_graph(entry: str) -> set[str]:
    """The file names of `entry` and every module it imports, directly or not, as the files say."""
    seen, todo = set(), [entry]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(IMPORT.findall((STATIC_CHAT / name).read_text()))
    return seen


def record_scripts(page):  # noqa: F811
    """Every script response under /static/chat/ (file name -> status and content type), and console errors."""
    page.scripts_seen, page.console_errors = {}, []

    def on_response(response):
        match = re.search(r"/static/chat/([^/?]+\.js)", response.url)
        if match:
            page.scripts_seen[match.group(1)] = (response.status, response.headers.get("content-type", ""))

    page.on("response", on_response)
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))


def test_the_chat_page_runs_as_es_modules_each_served_as_javascript(page, server_url):  # noqa: F811
    graph = import_graph("main.js")
    assert {"main.js", "socket.js", "transcript.js", "composer.js", "uploads.js", "sidebar.js"} <= graph
    record_scripts(page)

    sign_up_and_start_a_chat(page, server_url, "modules")
    entry = page.locator("script[src$='/static/chat/main.js']")
    assert entry.count() == 1 and entry.get_attribute("type") == "module"
    send(page, "Hello, modules")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)

    assert "chat.js" not in page.scripts_seen
    assert graph <= set(page.scripts_seen), f"modules never fetched: {graph - set(page.scripts_seen)}"
    for name in graph:
        status, content_type = page.scripts_seen[name]
        mime = content_type.split(";")[0].strip()
        assert status in (200, 304) and mime in JAVASCRIPT, f"{name}: {status} {content_type}"
    assert page.inner_text(".message-user .user-text") == "Hello, modules"
    assert page.input_value("#composer-input") == "", "the echoed draft is cleared"
    assert page.console_errors == []


def test_a_new_chat_runs_the_sidebar_from_the_same_modules_without_a_socket(page, server_url):  # noqa: F811
    """No conversation yet (a new chat): main.js starts the sidebar, the drawer and the composer, opens no socket
    until the first message, and nothing fails for want of a conversation."""
    record_scripts(page)
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.set_viewport_size({"width": 390, "height": 844})  # the sidebar is a drawer behind the menu button
    page.goto(f"{server_url}/accounts/signup/")
    page.fill("#id_username", "emptymodules")
    page.fill("#id_email", "emptymodules@example.com")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your email")
    page.goto(mailed_link("emptymodules@example.com"))
    page.fill("#id_new_password1", PASSWORD)
    page.fill("#id_new_password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector('#chat[data-conversation-id=""]')
    page.wait_for_load_state()  # the module scripts have run
    page.wait_for_function("() => document.activeElement.id === 'composer-input'")

    page.click("#menu-button")

    assert page.get_attribute("#menu-button", "aria-expanded") == "true"
    assert page.locator(".app.sidebar-open").count() == 1
    page.keyboard.press("Escape")
    assert page.get_attribute("#menu-button", "aria-expanded") == "false"
    assert page.evaluate("() => document.activeElement.id") == "menu-button"
    assert page.scripts_seen["main.js"][0] in (200, 304)
    assert sockets == [], "a new chat opens its socket only once its first message created the conversation"
    assert page.console_errors == []
