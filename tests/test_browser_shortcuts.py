"""The chat page's keyboard shortcuts in a real browser (static/chat/shortcuts.js): each one does what its
button does, the help dialog lists them all, closes with Esc and gives the focus back, and a "?" typed in the
composer is only a "?". Esc stops a streaming reply, except where Esc already means something (an inline
editor, a dialog).

It reuses test_browser.py's server and browser (Debian's Chromium, a DEBUG server on a throwaway database, the
offline model, whose reply quotes the question).
"""

import pytest
from test_browser import browser, send, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model
LAST_REPLY = ".message-assistant >> nth=-1"
SHORTCUTS = [
    "New chat",
    "Search conversations",
    "Go to the message box",
    "Stop the reply",
    "Copy the last reply",
    "Show these shortcuts",
]
# Quoted back line by line by the offline model: long enough to stream for a few seconds.
LONG_QUESTION = "\n".join(f"Point {n}: tell me everything about B-trees." for n in range(60))


def new_page(browser, *, mac=False):  # noqa: F811
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, permissions=["clipboard-read", "clipboard-write"]
    )
    if mac:
        # What a Mac's Chromium reports; the page reads nothing else to tell.
        context.add_init_script(
            "Object.defineProperty(navigator, 'platform', {get: () => 'MacIntel'});"
            "Object.defineProperty(navigator, 'userAgentData', {get: () => undefined});"
        )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.errors, page.console_seen = [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda message: page.console_seen.append(message.text))
    return page


def closed(page):
    refused = [
        text for text in page.console_seen if "Content Security Policy" in text or "Refused to" in text
    ]
    errors = page.errors
    page.context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"
    assert refused == [], f"the page's policy refused: {refused}"


@pytest.fixture
def page(browser):  # noqa: F811
    page = new_page(browser)
    yield page
    closed(page)


@pytest.fixture
def mac_page(browser):  # noqa: F811
    page = new_page(browser, mac=True)
    yield page
    closed(page)


def focused_id(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def dialog_open(page) -> bool:
    return page.evaluate("document.getElementById('shortcuts-dialog').open")


def ask(page, text):
    """Sends `text` and waits for its reply to be complete (the earlier ones already are)."""
    replies = page.locator(".message-assistant").count()
    send(page, text)
    page.locator(".message-assistant[data-status=complete]").nth(replies).wait_for(timeout=DONE)


def wait_until_streaming(page):
    page.wait_for_function(
        """() => {
        const reply = document.querySelector(".message-assistant[data-status=streaming] .markdown");
        return reply && reply.textContent.length > 0;
    }"""
    )


def test_the_help_dialog_lists_every_shortcut_closes_with_esc_and_gives_the_focus_back(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "helpreader")

    page.click("#composer-input")
    page.keyboard.type("Why?")
    assert page.input_value("#composer-input") == "Why?", "a ? typed in the composer is only a ?"
    assert not dialog_open(page)

    page.keyboard.press("Control+/")
    assert dialog_open(page)
    assert page.locator("#shortcuts-dialog tr:not([hidden]) th").all_inner_texts() == SHORTCUTS
    assert page.locator("#shortcuts-dialog .shortcut-mod").first.inner_text() == "Ctrl"
    page.keyboard.press("Escape")
    assert not dialog_open(page)
    assert focused_id(page) == "composer-input"
    assert page.input_value("#composer-input") == "Why?"

    page.focus("#attach-button")  # a new chat's header has no Settings yet: another button
    page.keyboard.press("?")
    assert dialog_open(page), "? outside a text field opens the help"
    page.keyboard.press("Escape")
    assert not dialog_open(page) and focused_id(page) == "attach-button"

    page.click("#shortcuts-button")  # the visible way in, in the sidebar's footer
    assert dialog_open(page)
    page.click("#shortcuts-dialog button[type=submit]")
    assert not dialog_open(page) and focused_id(page) == "shortcuts-button"


def test_shift_esc_goes_to_the_message_box(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "composerfocus")
    page.focus("#attach-button")

    page.keyboard.press("Shift+Escape")

    assert focused_id(page) == "composer-input"


def test_esc_stops_a_streaming_reply_but_first_closes_an_inline_rename_or_a_dialog(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "escstopper")
    send(page, LONG_QUESTION)
    wait_until_streaming(page)

    page.click(".conversation-item.is-current .rename-button")
    page.keyboard.press("Escape")
    assert page.locator(".rename-input").count() == 0, "Esc kept its meaning in the editor"
    assert page.get_attribute(LAST_REPLY, "data-status") == "streaming"
    page.click("#settings-button")
    page.keyboard.press("Escape")
    assert not page.evaluate("document.getElementById('settings-dialog').open"), "and in the dialog"
    assert page.get_attribute(LAST_REPLY, "data-status") == "streaming"

    page.focus("#composer-input")
    page.keyboard.press("Escape")

    page.wait_for_selector(".message-assistant[data-status=stopped]")
    assert page.locator(LAST_REPLY).locator(".status-stopped").inner_text() == "Stopped"
    page.reload()
    assert page.get_attribute(LAST_REPLY, "data-status") == "stopped"


def test_ctrl_shift_c_copies_the_last_reply(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "copier")
    ask(page, "First question about tulips")
    ask(page, "Second question about roses")
    page.evaluate("navigator.clipboard.writeText('')")

    page.focus("#composer-input")
    page.keyboard.press("Control+Shift+C")

    page.wait_for_function("() => navigator.clipboard.readText().then((text) => text.length > 0)")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("**Offline model**")
    assert "> Second question about roses" in copied and "tulips" not in copied
    assert page.locator(LAST_REPLY).locator("button[data-action=copy]").inner_text() == "Copied"


def test_ctrl_shift_o_starts_a_new_chat(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "newchatter")
    ask(page, "Plan a trip to Lisbon")
    first = page.url

    page.keyboard.press("Control+Shift+O")

    # The sidebar's New chat link: a new chat at home, which creates nothing until its first message.
    page.wait_for_url(f"{server_url}/")
    page.wait_for_selector('#chat[data-conversation-id=""]')
    assert page.locator(".message").count() == 0
    assert page.locator(".conversation-item").count() == 1
    assert first != page.url


def test_ctrl_k_goes_to_the_search_box_opening_the_drawer_on_a_narrow_screen(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "searcher")
    page.focus("#composer-input")

    page.keyboard.press("Control+K")
    assert focused_id(page) == "sidebar-search-input"

    page.set_viewport_size({"width": 390, "height": 800})  # the sidebar is now a closed drawer
    page.focus("#composer-input")
    page.keyboard.press("Control+K")
    assert page.locator(".app.sidebar-open").count() == 1
    assert focused_id(page) == "sidebar-search-input"


def test_on_a_mac_the_shortcuts_use_command(mac_page, server_url):  # noqa: F811
    page = mac_page
    sign_up_and_start_a_chat(page, server_url, "macuser")
    page.focus("#composer-input")

    page.keyboard.press("Control+/")
    assert not dialog_open(page), "Ctrl is a Mac's text editing key, not a shortcut"
    page.keyboard.press("Meta+/")
    assert dialog_open(page)
    assert set(page.locator("#shortcuts-dialog .shortcut-mod").all_inner_texts()) == {"⌘"}
