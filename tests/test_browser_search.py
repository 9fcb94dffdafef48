"""Search in the sidebar, in a real browser: typing finds a message on a branch the conversation no longer
shows, a click (or Down and Enter) opens the conversation on that branch with the message marked, and Esc
clears the box.

It reuses test_browser.py's server and browser (same Chromium, same DEBUG server on a throwaway database, the
offline model).
"""

import json

import pytest
from test_browser import browser, page, send, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)
from test_browser_tree import ask, versions_of, wait_until_idle

pytestmark = pytest.mark.browser

BOX = "#sidebar-search-input"
RESULTS = "#sidebar-search-results"


def a_conversation_whose_first_branch_is_hidden(page, server_url, username) -> int:  # noqa: F811
    """Asks about zebras, then edits the question into one about lions: the zebra branch is one arrow away.
    Returns the id of the zebra question."""
    sign_up_and_start_a_chat(page, server_url, username)
    ask(page, "Tell me about zebra stripes")
    zebra = int(page.locator(".message-user").first.get_attribute("data-message-id"))
    first = page.locator(".message-user").first
    first.locator(".action-edit").click()
    first.locator(".message-editor-input").fill("Tell me about lions instead")
    first.get_by_role("button", name="Save and resend").click()
    versions_of(page.locator(".message-user").first).filter(has_text="2 / 2").wait_for()
    wait_until_idle(page)
    assert page.locator(".message-user .user-text").inner_text() == "Tell me about lions instead"
    return zebra


def conversation_id(page) -> str:  # noqa: F811
    return page.get_attribute("#chat", "data-conversation-id")


def the_hit_on(page, message_id):  # noqa: F811
    return page.locator(f'{RESULTS} [role=option]:has(a[href$="?message={message_id}"])')


def test_a_result_opens_the_conversation_on_the_branch_holding_the_match(page, server_url):  # noqa: F811
    zebra = a_conversation_whose_first_branch_is_hidden(page, server_url, "searcher")
    plain = page.url.split("?")[0]
    # The hit's address fetched without its page's script (as a link or an image on another site would) stores
    # nothing: a reload still shows the lions.
    assert page.request.get(f"{plain}?message={zebra}").status == 200
    page.reload()
    page.locator(".message-user .user-text").filter(has_text="Tell me about lions instead").wait_for()
    # Another tab on the conversation, told of the switch the hit's page sends.
    other = page.context.new_page()
    other.goto(plain)
    other.locator(".message-user .user-text").filter(has_text="Tell me about lions instead").wait_for()
    wait_until_idle(other)

    page.click(BOX)
    page.keyboard.type("zebr")  # as it is typed: the last word is a prefix
    hit = the_hit_on(page, zebra)
    hit.wait_for()
    assert hit.locator("mark").first.inner_text().lower() == "zebra"
    assert hit.locator(".search-result-snippet").inner_text() == "Tell me about zebra stripes"
    assert page.get_attribute(BOX, "aria-expanded") == "true"
    title_hit = page.locator(
        f'{RESULTS} [role=option]:has(a[href$="/conversations/{conversation_id(page)}/"])'
    )
    assert title_hit.locator(".search-result-title mark").inner_text().lower() == "zebra"
    assert title_hit.locator(".search-result-snippet").count() == 0  # the title is the snippet
    page.screenshot(path="/tmp/search.png")
    sent, trees = [], []

    def watch(socket):
        socket.on("framesent", lambda payload: sent.append(json.loads(payload)))
        socket.on("framereceived", lambda payload: trees.append(json.loads(payload)))

    page.on("websocket", watch)

    hit.locator("a").click()

    page.wait_for_url(f"**/?message={zebra}")
    target = page.locator(f'article.message[data-message-id="{zebra}"]')
    target.wait_for()
    assert "is-search-hit" in target.get_attribute("class")
    assert target.locator(".user-text").inner_text() == "Tell me about zebra stripes"
    assert versions_of(target).inner_text() == "1 / 2"
    assert page.evaluate(
        """id => {
            const box = document.querySelector(`article[data-message-id="${id}"]`).getBoundingClientRect();
            return box.top >= 0 && box.bottom <= window.innerHeight;
        }""",
        zebra,
    )
    # The page's `switch` stored that branch and every tab got its `tree` frame: the other tab shows it without
    # a reload, the hit stays marked once its own page applied the frame, and a reload without the link stays.
    other.locator(f'article.message[data-message-id="{zebra}"]').wait_for()
    assert other.locator(".message-user .user-text").inner_text() == "Tell me about zebra stripes"
    assert {"type": "switch", "message": zebra} in sent
    for _ in range(100):
        if any(
            frame["type"] == "tree" and frame["path"] and frame["path"][0]["id"] == zebra for frame in trees
        ):
            break
        page.wait_for_timeout(100)
    else:
        pytest.fail(f"no tree frame with the zebra branch reached the hit's page: {trees}")
    assert "is-search-hit" in target.get_attribute("class")
    other.close()
    page.goto(plain)
    page.locator(f'article.message[data-message-id="{zebra}"]').wait_for()
    assert page.locator(".message-user .user-text").inner_text() == "Tell me about zebra stripes"


def test_the_keyboard_chooses_opens_and_clears(page, server_url):  # noqa: F811
    zebra = a_conversation_whose_first_branch_is_hidden(page, server_url, "keyboardsearcher")

    page.click(BOX)
    page.keyboard.type("stripes")
    the_hit_on(page, zebra).wait_for()
    options = page.locator(f"{RESULTS} [role=option]")
    count = options.count()
    page.keyboard.press("ArrowDown")
    assert options.nth(0).get_attribute("aria-selected") == "true"
    page.keyboard.press("ArrowUp")  # from the first, round to the last
    assert options.nth(count - 1).get_attribute("aria-selected") == "true"
    assert page.get_attribute(BOX, "aria-activedescendant") == options.nth(count - 1).get_attribute("id")

    page.keyboard.press("Escape")
    assert page.input_value(BOX) == ""
    assert page.locator(RESULTS).is_hidden()
    assert options.count() == 0

    page.keyboard.type("stripes")
    the_hit_on(page, zebra).wait_for()
    index = next(
        i
        for i in range(options.count())
        if f"?message={zebra}" in (options.nth(i).locator("a").get_attribute("href"))
    )
    for _ in range(index + 1):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")

    page.wait_for_url(f"**/?message={zebra}")
    page.locator(f'article.message.is-search-hit[data-message-id="{zebra}"]').wait_for()


def test_a_query_without_a_word_shows_the_servers_reason(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "punctuation")

    page.fill(BOX, '"*"')

    page.locator("#sidebar-search-status").filter(has_text="Type a word to search for.").wait_for()
    assert page.locator(RESULTS).is_hidden()
