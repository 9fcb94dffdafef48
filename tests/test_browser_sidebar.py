"""The sidebar in a real browser: date groups, pin and archive from the keyboard and by touch, the Archived
page, a blank rename refused with the server's reason, and Esc cancelling every inline edit.

It reuses test_browser.py's server and browser (same Chromium, same DEBUG server on a throwaway database, the
offline model).
"""

import pytest
from test_browser import browser, page, send, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model
CURRENT = ".conversation-item.is-current"


def start_with_a_reply(page, server_url, username, text):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, username)
    send(page, text)
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)
    page.wait_for_function("t => document.getElementById('chat-title').textContent === t", arg=text)


def group_titles(page) -> list[str]:  # noqa: F811
    return page.locator(".conversation-group-title").all_inner_texts()


def test_a_blank_rename_is_refused_with_the_servers_reason_and_the_old_title_stays(page, server_url):  # noqa: F811
    start_with_a_reply(page, server_url, "blankrename", "Plan a trip to Lisbon")

    page.click(f"{CURRENT} .rename-button")
    page.fill(".rename-input", "   ")
    page.press(".rename-input", "Enter")

    page.get_by_role("alert").filter(has_text="A title cannot be blank").wait_for()
    assert page.inner_text(f"{CURRENT} .conversation-title") == "Plan a trip to Lisbon"
    assert page.inner_text("#chat-title") == "Plan a trip to Lisbon"
    page.reload()
    assert page.inner_text("#chat-title") == "Plan a trip to Lisbon"


def test_esc_cancels_a_rename_and_a_message_edit(page, server_url):  # noqa: F811
    start_with_a_reply(page, server_url, "esccancels", "Explain binary search")

    page.dblclick("#chat-title")
    page.fill(".rename-input", "Something else")
    page.press(".rename-input", "Escape")

    assert page.locator(".rename-input").count() == 0
    assert page.inner_text("#chat-title") == "Explain binary search"
    assert page.evaluate("() => document.activeElement.classList.contains('conversation-link')")

    page.click(".message-user .action-edit")
    page.fill(".message-editor-input", "A different question")
    page.press(".message-editor-input", "Escape")

    page.locator(".message-editor").wait_for(state="detached")
    assert page.inner_text(".message-user .user-text") == "Explain binary search"
    assert page.locator(".message-user").count() == 1


def test_pin_and_archive_from_the_keyboard_and_unarchive_from_the_archived_page(page, server_url):  # noqa: F811
    start_with_a_reply(page, server_url, "pinarchive", "Sourdough starter schedule")
    assert group_titles(page) == ["Today"]

    page.focus(f"{CURRENT} .conversation-link")
    page.keyboard.press("ArrowRight")  # rename (the actions are on the arrow keys: static/chat/sidebar_keys.js)
    page.keyboard.press("ArrowRight")  # pin
    assert page.evaluate("() => document.activeElement.classList.contains('pin-button')")
    page.keyboard.press("Enter")

    page.wait_for_function("() => document.querySelector('.conversation-group-title').textContent === 'Pinned'")
    assert group_titles(page) == ["Pinned"]
    assert page.get_attribute(f"{CURRENT} .pin-button", "aria-label") == "Unpin “Sourdough starter schedule”"

    page.focus(f"{CURRENT} .archive-button")
    page.keyboard.press("Enter")

    page.wait_for_selector('#chat[data-conversation-id=""]')  # home: a new chat
    assert page.locator(".conversation-item").count() == 0
    page.click("text=Archived")
    page.get_by_role("link", name="Sourdough starter schedule").wait_for()
    page.get_by_role("button", name="Unarchive “Sourdough starter schedule”").click()

    page.get_by_text("No archived conversations.").wait_for()
    page.click("text=← Back to chat")
    page.wait_for_selector('#chat[data-conversation-id=""]')  # home: a new chat, beside the conversation
    assert group_titles(page) == ["Today"]
    assert page.inner_text(".conversation-item .conversation-title") == "Sourdough starter schedule"


def test_pin_and_archive_are_shown_and_finger_sized_on_a_touch_screen(browser, server_url):  # noqa: F811
    desktop = browser.new_context(viewport={"width": 1280, "height": 800})
    desktop.set_default_timeout(15_000)
    setup = desktop.new_page()
    start_with_a_reply(setup, server_url, "touchsidebar", "Hello there")
    url, state = setup.url, desktop.storage_state()
    desktop.close()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                storage_state=state)
    phone.set_default_timeout(15_000)
    tab = phone.new_page()
    try:
        tab.goto(url)
        tab.tap("#menu-button")
        pin = tab.locator(f"{CURRENT} .pin-button")
        pin.wait_for(state="visible")
        for button in (pin, tab.locator(f"{CURRENT} .archive-button")):
            box = button.bounding_box()
            assert round(box["width"]) >= 36 and round(box["height"]) >= 36, "a finger-sized target"
        assert pin.evaluate("el => getComputedStyle(el.closest('.conversation-actions')).opacity") == "1"
        assert tab.evaluate("() => document.documentElement.scrollWidth") == 390

        pin.tap()

        tab.wait_for_function("() => document.querySelector('.conversation-group-title').textContent === 'Pinned'")
    finally:
        phone.close()
