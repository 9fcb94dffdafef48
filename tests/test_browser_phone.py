"""The chat page on a phone and a tablet, in real Chromium: nothing scrolls sideways, the sidebar is a drawer,
and what a desktop shows on hover is there for a finger.

It reuses test_browser.py's server and browser (same Chromium, same DEBUG server on a throwaway database). One
account and one conversation are set up on a desktop once; each test then opens the page in a fresh touch
context (is_mobile, has_touch) at its viewport, signed in with the saved cookies.
"""

import pytest
from test_browser import browser, send, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
# The width up to which chat.css puts the header's tools on a line of their own (its 480px media query).
PHONE_WIDTH = 480
VIEWPORTS = [PHONE, {"width": 360, "height": 800}, {"width": 768, "height": 1024}]
LONG_WORD = "Supercalifragilistic" * 12
LONG_TITLE = "A very long conversation title about " + "pneumonoultramicroscopicsilicovolcanoconiosis" * 3
WIDE_CODE = "x = [" + ", ".join(str(n) for n in range(80)) + "]"
# The offline model quotes the question in a blockquote: the fence becomes a code block in the reply.
QUESTION = f"{LONG_WORD}\n```python\n{WIDE_CODE}\n```"
REPLY = ".message-assistant[data-status=complete]"


@pytest.fixture(scope="module")
def conversation(browser, server_url):  # noqa: F811 (fixtures imported from test_browser)
    """(url, storage state) of a signed-in user's conversation with a long title, word and code line."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    sign_up_and_start_a_chat(page, server_url, "phoneuser")
    send(page, QUESTION)
    page.wait_for_selector(REPLY, timeout=30_000)
    # The code's copy button is shown without hover on a desktop too, beside the code's language.
    assert page.locator(".copy-code").first.evaluate("el => getComputedStyle(el).opacity") == "1"
    page.click(".conversation-item.is-current .rename-button")
    page.fill(".rename-input", LONG_TITLE)
    page.press(".rename-input", "Enter")
    page.wait_for_function("t => document.getElementById('chat-title').textContent === t", arg=LONG_TITLE)
    page.wait_for_load_state("networkidle")
    url, state = page.url, context.storage_state()
    context.close()
    return url, state


def open_on(browser, conversation, viewport):  # noqa: F811
    url, state = conversation
    context = browser.new_context(
        viewport=viewport, is_mobile=True, has_touch=True, device_scale_factor=2, storage_state=state
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector(REPLY)
    return context, page, errors


@pytest.fixture
def phone(browser, conversation):  # noqa: F811
    context, page, errors = open_on(browser, conversation, PHONE)
    yield page
    context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


def horizontal_overflow(page) -> int:
    return page.evaluate("() => document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth")


def inside_viewport(page, selector) -> bool:
    box = page.locator(selector).bounding_box()
    viewport = page.viewport_size
    return box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 0.5 and (
        box["y"] + box["height"] <= viewport["height"] + 0.5
    )


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=lambda v: f"{v['width']}x{v['height']}")
def test_nothing_scrolls_sideways(browser, conversation, viewport):  # noqa: F811
    context, page, errors = open_on(browser, conversation, viewport)
    try:
        assert page.inner_text("#chat-title") == LONG_TITLE
        assert LONG_WORD in page.inner_text(".message-user .user-text")
        assert horizontal_overflow(page) <= 0
        assert inside_viewport(page, "#chat-title")
        assert inside_viewport(page, "#composer")
        # The header's tools stay on one line (scrolled sideways on a phone, never wrapped down the screen), and
        # the last of them can be scrolled to.
        if viewport["width"] <= PHONE_WIDTH:
            middles = page.eval_on_selector_all(
                ".chat-header-tools > :not([hidden])",
                "tools => tools.map((tool) => { const box = tool.getBoundingClientRect(); return box.top + box.height / 2; })",
            )
            assert len(middles) >= 5 and max(middles) - min(middles) < 2, middles
        last = page.locator(".chat-header-tools > :not([hidden])").last
        last.scroll_into_view_if_needed()
        box = last.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 0.5
        # The wide code line scrolls inside its own block.
        code = page.locator(f"{REPLY} pre code").first
        assert WIDE_CODE in code.inner_text()
        assert code.evaluate("el => el.scrollWidth > el.clientWidth")
        assert code.evaluate("el => el.getBoundingClientRect().right") <= viewport["width"]

        page.click("#settings-button")
        page.wait_for_selector("#settings-dialog[open]")
        assert inside_viewport(page, "#settings-dialog")
        assert horizontal_overflow(page) <= 0
        page.screenshot(path=f"/tmp/chat-phone-{viewport['width']}.png")
    finally:
        context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


def test_the_sidebar_is_a_drawer_behind_the_menu_button(phone):
    menu = phone.locator("#menu-button")
    sidebar = phone.locator("#sidebar")
    assert menu.is_visible() and menu.get_attribute("aria-expanded") == "false"
    assert not sidebar.is_visible()

    menu.tap()
    assert menu.get_attribute("aria-expanded") == "true"
    sidebar.wait_for(state="visible")
    phone.wait_for_function("() => document.getElementById('sidebar').getBoundingClientRect().left >= 0")
    assert phone.evaluate("() => document.getElementById('sidebar').contains(document.activeElement)")
    assert horizontal_overflow(phone) <= 0

    phone.keyboard.press("Escape")
    assert menu.get_attribute("aria-expanded") == "false"
    sidebar.wait_for(state="hidden")
    assert phone.evaluate("() => document.activeElement.id") == "menu-button"

    menu.tap()
    sidebar.wait_for(state="visible")
    phone.touchscreen.tap(370, 400)  # the backdrop, right of the drawer
    assert menu.get_attribute("aria-expanded") == "false"
    sidebar.wait_for(state="hidden")


def test_hover_actions_are_shown_on_touch(phone):
    assert phone.evaluate("matchMedia('(hover: none), (pointer: coarse)').matches")
    copy = phone.locator(f"{REPLY} .copy-code").first
    assert copy.is_visible() and copy.evaluate("el => getComputedStyle(el).opacity") == "1"
    # Regenerate and edit show once the socket is open (nothing can be sent before).
    phone.locator(f"{REPLY} .action-regenerate").wait_for(state="visible")
    phone.locator(".message-user .action-edit").first.wait_for(state="visible")

    phone.tap("#menu-button")
    rename = phone.locator(".conversation-item.is-current .rename-button")
    rename.wait_for(state="visible")
    assert rename.evaluate("el => getComputedStyle(el.parentElement).opacity") == "1"
    box = rename.bounding_box()
    assert box["width"] >= 36 and box["height"] >= 36, "a finger-sized target"
