"""The "Jump to latest ↓" button in a real browser (static/chat/jump.js): a reader who scrolls up while a
reply streams is offered the way back down; the button takes them there and goes, and it goes by itself when
they scroll down.

It reuses test_browser.py's server and browser (Debian's Chromium, a DEBUG server on a throwaway database, the
offline model at 100 tokens a second, whose reply quotes the question line by line: a long question streams
for several seconds).
"""

import pytest
from test_browser import browser, browser_page, send, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model
BOTTOM_SLACK_PX = 48  # static/chat/state.js: what the page calls "at the bottom"
LONG_QUESTION = "\n".join(f"Point {n}: tell me everything about B-trees." for n in range(60))
JUMP = "#jump-latest"


@pytest.fixture
def page(browser):  # noqa: F811
    """A short window, so that the transcript scrolls."""
    with browser_page(browser, viewport={"width": 1100, "height": 600}) as page:
        yield page


def at_bottom(page) -> bool:
    return page.evaluate(
        """slack => {
        const scroller = document.getElementById("messages");
        return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight <= slack;
    }""",
        BOTTOM_SLACK_PX,
    )


def scroll_to(page, where: str):
    page.evaluate(
        """where => {
        const scroller = document.getElementById("messages");
        scroller.scrollTop = where === "top" ? 0 : scroller.scrollHeight;
    }""",
        where,
    )


def ask_and_wait_until_streaming(page, text):
    replies = page.locator(".message-assistant").count()
    send(page, text)
    page.wait_for_function(
        """count => {
        const reply = document.querySelectorAll(".message-assistant")[count];
        return reply && reply.dataset.status === "streaming" && reply.textContent.includes("Point 1:");
    }""",
        arg=replies,
    )


def wait_until_complete(page):
    page.wait_for_selector(".message-assistant[data-status=streaming]", state="detached", timeout=DONE)


def test_jump_to_latest_appears_when_scrolled_up_while_streaming_and_takes_the_reader_down(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "jumper")
    ask_and_wait_until_streaming(page, LONG_QUESTION)

    scroll_to(page, "top")
    page.locator(JUMP).wait_for(state="visible")
    assert page.get_attribute(".message-assistant >> nth=-1", "data-status") == "streaming"
    page.click(JUMP)

    assert at_bottom(page)
    page.locator(JUMP).wait_for(state="hidden")
    assert page.evaluate("document.activeElement.id") == "composer-input"
    wait_until_complete(page)
    assert at_bottom(page), "the page followed the rest of the reply down"
    assert page.locator(JUMP).is_hidden(), "at the bottom there is nowhere to jump"

    scroll_to(page, "top")
    page.wait_for_function("() => document.getElementById('messages').scrollTop === 0")
    assert page.locator(JUMP).is_hidden(), "with nothing streaming there is nothing new to jump to"


def test_it_goes_by_itself_when_the_reader_scrolls_back_down(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "scroller")
    ask_and_wait_until_streaming(page, LONG_QUESTION)

    scroll_to(page, "top")
    page.locator(JUMP).wait_for(state="visible")
    scroll_to(page, "bottom")

    page.locator(JUMP).wait_for(state="hidden")
    assert at_bottom(page)
