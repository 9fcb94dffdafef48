"""A new chat in a real browser (docs/frontend.md, "New chat"): `/` opens on a ready composer with no
conversation, and the first message creates it. Same server and browser as tests/test_browser.py.

The number of conversations a user has is read where the user sees it: after a reload, the sidebar lists every
conversation of theirs that is not archived, and nothing here archives one.
"""

import json
import re

import pytest
from test_browser import (  # noqa: F401 (fixtures)
    browser,
    open_new_chat,
    page,
    send,
    server_url,
    sign_up_and_start_a_chat,
)

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model
REPLY = ".message-assistant[data-status=complete]"
SOCKET = re.compile(r"/ws/conversations/\d+/$")


def conversations_listed(tab, url) -> int:
    open_new_chat(tab, url)
    return tab.locator(".conversation-item").count()


def test_a_newcomer_types_at_once_and_the_first_message_creates_the_conversation(page, server_url):  # noqa: F811
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    sign_up_and_start_a_chat(page, server_url, "composerfirst")
    page.wait_for_function("() => document.activeElement.id === 'composer-input'")
    assert page.locator(".messages-empty").inner_text() == "How can I help you today?"
    assert page.locator("#conversation-cost").is_hidden() and page.locator("#settings-button").is_hidden()
    assert sockets == [], "no socket before there is a conversation"

    page.keyboard.type("Hello from the first message")  # into the focused composer: nothing clicked
    page.keyboard.press("Enter")

    page.wait_for_selector(".message-assistant[data-status=streaming]")
    page.wait_for_selector(REPLY, timeout=DONE)
    conversation_id = page.locator("#chat").get_attribute("data-conversation-id")
    assert re.fullmatch(r"\d+", conversation_id)
    assert page.url == f"{server_url}/conversations/{conversation_id}/"
    assert page.input_value("#composer-input") == "", "the sent draft left the composer"
    assert page.locator(".message-user .user-text").all_inner_texts() == ["Hello from the first message"]
    entry = page.locator(f'.conversation-item.is-current[data-conversation-id="{conversation_id}"]')
    assert entry.locator("xpath=ancestor::section//h2").inner_text() == "Today"
    assert page.locator(".conversation-none").count() == 0
    header = page.locator(".chat-header")
    assert (
        header.get_by_role("link", name="Share").get_attribute("href")
        == f"/conversations/{conversation_id}/shares/"
    )
    assert header.get_by_role("link", name="Export .md").is_visible()
    assert page.locator("#settings-button").is_visible() and page.locator("#conversation-cost").is_visible()
    assert sockets == [f"ws://{server_url.split('://')[1]}/ws/conversations/{conversation_id}/"]

    page.reload()
    assert page.url.endswith(f"/conversations/{conversation_id}/")
    assert page.locator(".message-user .user-text").all_inner_texts() == ["Hello from the first message"]
    assert conversations_listed(page, server_url) == 1, "and home is a fresh new chat again"
    assert page.locator(".message").count() == 0


def test_opening_a_new_chat_and_leaving_creates_nothing(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "justlooking")
    page.fill("#composer-input", "never sent")
    page.locator("#sidebar .new-chat").click()  # a link home: nothing is posted
    page.wait_for_selector('#chat[data-conversation-id=""]')
    page.goto(f"{server_url}/accounts/settings/")

    assert conversations_listed(page, server_url) == 0
    assert page.locator(".conversation-none").inner_text() == "No conversations yet"


def test_a_failed_first_message_keeps_the_draft_and_the_retries_make_one_conversation(page, server_url):  # noqa: F811
    attempts = []

    def create_fails_once(route):
        attempts.append(route.request.method)
        if len(attempts) == 1:
            route.abort()
        else:
            route.continue_()

    refused = []

    def refuse_the_first_send(ws):
        server = ws.connect_to_server()

        def from_page(text):
            frame = json.loads(text)
            if frame["type"] == "send" and not refused:
                refused.append(frame)
                ws.send(
                    json.dumps({"type": "error", "code": "budget_exceeded", "detail": "Over your budget."})
                )
                return
            server.send(text)

        ws.on_message(from_page)
        server.on_message(ws.send)

    page.route("**/conversations/new/", create_fails_once)
    page.route_web_socket(SOCKET, refuse_the_first_send)
    sign_up_and_start_a_chat(page, server_url, "retrier")
    draft = "Keep me\nsafe"

    # The request fails: no conversation, the draft as typed.
    send(page, draft)
    page.locator(".notice", has_text="Could not start the conversation").wait_for()
    page.wait_for_selector("#send-button:not([disabled])")
    assert page.input_value("#composer-input") == draft
    assert page.get_attribute("#chat", "data-conversation-id") == ""
    assert page.url == f"{server_url}/" and page.locator(".conversation-item").count() == 0

    # Created, but the send is refused: the draft is still there.
    page.press("#composer-input", "Enter")
    page.locator(".notice", has_text="Over your budget.").wait_for()
    conversation_id = page.get_attribute("#chat", "data-conversation-id")
    assert conversation_id and refused and refused[0]["text"] == draft.strip()
    assert page.input_value("#composer-input") == draft
    assert page.locator(".message").count() == 0

    # The third try goes through, into the same conversation.
    page.wait_for_selector("#send-button:not([disabled])")
    page.press("#composer-input", "Enter")
    page.wait_for_selector(REPLY, timeout=DONE)
    assert page.get_attribute("#chat", "data-conversation-id") == conversation_id
    assert page.input_value("#composer-input") == ""
    assert attempts == ["POST", "POST"]
    assert conversations_listed(page, server_url) == 1


def test_another_tabs_first_message_never_lands_in_this_pages_conversation(page, server_url):  # noqa: F811
    """This page's socket never opens, so its conversation stays empty with the draft unsent: a second tab's
    first message makes a conversation of its own, and this page, its socket back, sends into its own."""
    blocked = []

    def block_first_socket(ws):
        if not blocked:
            blocked.append(ws.url)
            ws.close()
        else:
            ws.connect_to_server()

    page.route_web_socket(SOCKET, block_first_socket)
    sign_up_and_start_a_chat(page, server_url, "twotabs")
    send(page, "From the first tab")
    page.wait_for_selector("#chat:not([data-conversation-id=''])")
    first = page.get_attribute("#chat", "data-conversation-id")
    assert page.input_value("#composer-input") == "From the first tab"

    other = page.context.new_page()  # without the route: its socket reaches the server
    open_new_chat(other, server_url)
    send(other, "From the second tab")
    other.wait_for_selector(REPLY, timeout=DONE)
    second = other.get_attribute("#chat", "data-conversation-id")
    assert second != first
    assert other.locator(".message-user .user-text").all_inner_texts() == ["From the second tab"]

    # The first page's socket reconnects (the route lets the second try through); its draft goes into its own.
    page.wait_for_selector("#send-button:not([disabled])", timeout=DONE)
    page.press("#composer-input", "Enter")
    page.wait_for_selector(REPLY, timeout=DONE)
    assert page.get_attribute("#chat", "data-conversation-id") == first
    assert page.locator(".message-user .user-text").all_inner_texts() == ["From the first tab"]
    assert conversations_listed(other, server_url) == 2


def test_after_the_first_message_the_theme_switch_keeps_the_page_and_its_draft(page, server_url):  # noqa: F811
    """The page moved to /conversations/<id>/ with replaceState: the switch restyles it in place (no load), and
    the form's no-script `next` is that address, not `/`."""
    sign_up_and_start_a_chat(page, server_url, "themedraft")
    send(page, "First")
    page.wait_for_selector(REPLY, timeout=DONE)
    conversation_url = page.url
    page.evaluate("() => { window.__samePage = true; }")
    page.fill("#composer-input", "An unsent draft")

    switch = page.get_by_role("group", name="Theme")
    switch.get_by_role("button", name="Dark").click()
    switch.get_by_role("button", name="Dark", pressed=True).wait_for()

    assert page.evaluate("() => window.__samePage === true"), "no page load"
    assert page.url == conversation_url
    assert page.input_value("#composer-input") == "An unsent draft"
    assert page.get_attribute("html", "data-theme") == "dark"
    assert page.get_attribute('meta[name="color-scheme"]', "content") == "dark"
    assert page.get_attribute('link[data-theme-scheme="dark"]', "media") == "all"
    assert page.get_attribute('link[data-theme-scheme="light"]', "media") == "not all"
    assert switch.get_by_role("button", name="System").get_attribute("aria-pressed") == "false"
    assert page.input_value(".theme-switch input[name=next]") == conversation_url.removeprefix(server_url)
    page.reload()
    assert page.get_attribute("html", "data-theme") == "dark", "saved"
    assert page.url == conversation_url


def test_an_attachment_added_before_the_first_message_is_sent_with_it(page, server_url):  # noqa: F811
    from attachment_samples import image_bytes

    sign_up_and_start_a_chat(page, server_url, "firstattacher")
    page.set_input_files(
        "#attach-input",
        files=[{"name": "blue.png", "mimeType": "image/png", "buffer": image_bytes("PNG", (200, 100))}],
    )
    page.locator(".composer-attachment[data-status=ready]").wait_for()

    send(page, "What size is this image?")
    page.wait_for_selector(REPLY, timeout=DONE)

    assert "Image 1: PNG, 200 x 100, RGB." in page.locator(".message-assistant").last.inner_text()
    assert page.locator(".message-user a.attachment .attachment-name").inner_text() == "blue.png"
    assert page.locator(".composer-attachment").count() == 0
    page.reload()
    assert page.locator(".message-user a.attachment").count() == 1
