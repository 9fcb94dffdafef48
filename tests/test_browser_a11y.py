"""Accessibility in a real browser: axe-core finds no violation on any page or state, in light and dark, on a
desktop and a phone; every page starts with a skip link; each sidebar conversation is one Tab stop with its
actions on the arrow keys; the light / dark / system switch draws the page in the chosen theme.

axe-core is vendored for the tests only (tests/vendor/axe-core-<version>/, never served by the app) and
injected with `page.evaluate`, which the page's Content-Security-Policy does not apply to. It runs the WCAG
2.0, 2.1 and 2.2 A and AA rules and axe's best practices (landmarks, heading order, one main, ...); no rule
is turned off.

It reuses test_browser.py's server and browser. One account is set up once on a desktop with every state
the pages can be in (a reply with tool steps and two versions, one with thinking, a share link, an archived
conversation); each case then opens its page in a fresh context (light or dark system, desktop
or phone, or dark chosen with the sidebar's switch on a light system), signed in with the saved cookies.
"""

from pathlib import Path

import pytest
from test_browser import PASSWORD, browser, send, server_url, sign_up  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa", "best-practice"]
DONE = 30_000  # a whole reply from the offline model
REPLY = ".message-assistant[data-status=complete]"
LAST_REPLY = ".message-assistant >> nth=-1"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
# The offline model quotes the question: a long one makes a reply that streams for seconds at the test
# server's rate, long enough to look at it while it streams.
LONG_QUESTION = "Please read this slowly. " + "Every word of this question comes back in the reply. " * 40
# (name, system colour scheme, the user's theme, device). Both colour schemes on a desktop, where contrast is
# judged, and one on a phone, where the layout differs and the colours do not. The theme switch's dark is the
# system's dark (the same `light-dark()` values): test_dark_chosen_on_a_light_system_... runs axe in it once.
LOOKS = [
    ("light-desktop", "light", "", DESKTOP),
    ("dark-desktop", "dark", "", DESKTOP),
    ("dark-phone", "dark", "", PHONE),
]
ANONYMOUS_LOOKS = [look for look in LOOKS if not look[2]]


def assert_no_axe_violations(page, state_name):
    """Runs axe-core on the whole page as it is now; a failure lists each rule, its impact, the elements and
    axe's help."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        AXE_TAGS,
    )
    violations = result["violations"]
    lines = []
    for violation in violations:
        lines.append(
            f"- {violation['id']} ({violation['impact']}): {violation['help']} <{violation['helpUrl']}>"
        )
        for node in violation["nodes"][:8]:
            target = " ".join(
                " >>> ".join(part) if isinstance(part, list) else part for part in node["target"]
            )
            lines.append(f"    {target}: {node['failureSummary'].splitlines()[-1].strip()}")
    assert not violations, f"axe-core found {len(violations)} violation(s) in {state_name}:\n" + "\n".join(
        lines
    )


@pytest.fixture(scope="module")
def account(browser, server_url):  # noqa: F811 (fixtures imported from test_browser)
    """(saved sign-in, URLs) of one account with every state the signed-in pages are tested in."""
    context = browser.new_context(**DESKTOP)
    context.set_default_timeout(15_000)
    page = context.new_page()
    sign_up(page, server_url, "a11y")
    urls = {}

    # A reply with a calculator step, regenerated once: "‹ 2 / 2 ›", and shared as a link.
    urls["tools"] = start_conversation(page, server_url, "what is 17*23")
    page.locator(LAST_REPLY).locator(".action-regenerate").click()
    page.locator(LAST_REPLY).locator(".version-count").filter(has_text="2 / 2").wait_for(timeout=DONE)
    page.wait_for_selector(REPLY, timeout=DONE)
    urls["shares"] = urls["tools"] + "shares/"
    page.goto(urls["shares"])
    page.select_option("#id_audience", "signed_in")
    page.get_by_role("button", name="Share").click()
    urls["shared"] = page.get_by_label("Link to share 1").input_value()

    # A reply that thought first: thinking is a conversation's setting, so from its second message on.
    urls["thinking"] = start_conversation(page, server_url, "Explain binary search")
    page.click("#settings-button")
    page.locator("#settings-dialog select").select_option("high")
    page.locator("#settings-dialog button[type=submit]").click()
    wait_for_chat(page)
    send(page, "And interpolation search?")
    page.locator(REPLY).nth(1).wait_for(timeout=DONE)
    page.locator(LAST_REPLY).locator("details.thinking").wait_for()

    # One archived conversation.
    archived = start_conversation(page, server_url, "Plan a trip to Lisbon")
    page.locator(".conversation-item.is-current .archive-button").click()
    page.wait_for_url(lambda url: url != archived)

    state = context.storage_state()
    context.close()
    return state, urls


def start_conversation(page, server_url, text):  # noqa: F811
    """A new chat (the home page), created by its first message; back on its own page once replied."""
    page.goto(f"{server_url}/")
    wait_for_chat(page)
    send(page, text)
    page.wait_for_selector(REPLY, timeout=DONE)
    page.wait_for_function("() => document.getElementById('chat').dataset.conversationId")
    conversation_id = page.locator("#chat").get_attribute("data-conversation-id")
    url = f"{server_url}/conversations/{conversation_id}/"
    page.goto(url)
    wait_for_chat(page)
    return url


@pytest.fixture
def open_page(browser, server_url, request):  # noqa: F811
    """open_page(look, path or URL, signed_in=True) -> a page in a fresh context of that look; the context is
    closed, the user's theme put back and uncaught page errors checked after the test."""
    opened = []

    def open_page(look, where, *, signed_in=True):
        _, scheme, theme, device = look
        storage = request.getfixturevalue("account")[0] if signed_in else None
        context = browser.new_context(**device, color_scheme=scheme, storage_state=storage)
        context.set_default_timeout(15_000)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        opened.append((context, page, errors, theme))
        if theme:
            theme_switch(page, server_url, theme)
        page.goto(where if where.startswith("http") else server_url + where)
        return page

    yield open_page
    for context, page, errors, theme in opened:
        if theme:
            theme_switch(page, server_url, "")
        context.close()
        assert errors == [], f"uncaught errors in the page: {errors}"


THEME_BUTTONS = {"light": "Light", "dark": "Dark", "": "System"}


def theme_switch(page, server_url, theme):  # noqa: F811
    """Chooses a theme with the sidebar's switch, as a user does (posted by fetch, the page restyled in place:
    the button is pressed once the server saved it)."""
    page.goto(f"{server_url}/")
    page.get_by_role("group", name="Theme").get_by_role("button", name=THEME_BUTTONS[theme]).click()
    page.get_by_role("group", name="Theme").get_by_role(
        "button", name=THEME_BUTTONS[theme], pressed=True
    ).wait_for()


def look_ids(looks):
    return [look[0] for look in looks]


def wait_for_chat(page):
    """The transcript is drawn and the socket open (the actions appear once it is)."""
    page.wait_for_selector("#chat")
    page.locator("#send-button").wait_for(state="attached")
    if page.locator(".message-assistant").count():
        page.wait_for_selector(f"{REPLY} .action-regenerate", state="attached")


# ---- axe-core on every page and state ------------------------------------------------------------------


@pytest.mark.parametrize("look", ANONYMOUS_LOOKS, ids=look_ids(ANONYMOUS_LOOKS))
@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/signup/"], ids=["login", "sign-up"])
def test_the_sign_in_pages_have_no_axe_violations(open_page, look, path):
    page = open_page(look, path, signed_in=False)
    page.wait_for_selector("form")
    assert_no_axe_violations(page, f"{path} ({look[0]})")


SIGNED_IN_PAGES = {
    "usage": "/usage/",
    "settings": "/accounts/settings/",
    "archived": "/conversations/archived/",
    "shares-received": "/shares/",
    "projects": "/projects/",
}


@pytest.mark.parametrize("look", LOOKS, ids=look_ids(LOOKS))
@pytest.mark.parametrize("name", list(SIGNED_IN_PAGES))
def test_the_signed_in_pages_have_no_axe_violations(open_page, look, name):
    page = open_page(look, SIGNED_IN_PAGES[name])
    page.wait_for_selector("main")
    assert_no_axe_violations(page, f"{name} ({look[0]})")


@pytest.mark.parametrize("look", LOOKS, ids=look_ids(LOOKS))
def test_a_conversations_sharing_page_and_its_shared_page_have_no_axe_violations(open_page, account, look):
    _, urls = account
    page = open_page(look, urls["shares"])
    assert_no_axe_violations(page, f"conversation shares ({look[0]})")
    page.goto(urls["shared"])
    page.locator(".message-assistant").first.wait_for()
    page.wait_for_selector("pre code.hljs")
    assert_no_axe_violations(page, f"shared page ({look[0]})")


@pytest.mark.parametrize("look", LOOKS, ids=look_ids(LOOKS))
def test_a_new_chat_and_an_attachment_that_failed_have_no_axe_violations(open_page, look):
    page = open_page(look, "/")
    wait_for_chat(page)
    assert page.locator(".message").count() == 0
    assert_no_axe_violations(page, f"new chat, empty ({look[0]})")

    page.set_input_files(
        "#attach-input",
        files=[{"name": "photos.zip", "mimeType": "application/zip", "buffer": b"PK\x05\x06" + bytes(18)}],
    )
    page.wait_for_selector(".composer-attachment[data-status=failed] .composer-attachment-error")
    assert_no_axe_violations(page, f"attachment chip with an error ({look[0]})")


@pytest.mark.parametrize("look", LOOKS, ids=look_ids(LOOKS))
def test_a_streaming_reply_has_no_axe_violations(open_page, look):
    page = open_page(look, "/")
    wait_for_chat(page)
    send(page, LONG_QUESTION)
    page.wait_for_function(
        """() => {
        const reply = document.querySelector(".message-assistant[data-status=streaming] .markdown");
        return reply && reply.textContent.length > 0;
    }"""
    )
    assert page.locator("#stop-button").is_visible(), "the reply is still streaming"
    assert_no_axe_violations(page, f"chat while a reply streams ({look[0]})")


@pytest.mark.parametrize("look", LOOKS, ids=look_ids(LOOKS))
def test_tool_steps_versions_the_editor_and_the_settings_dialog_have_no_axe_violations(
    open_page, account, look
):
    _, urls = account
    page = open_page(look, urls["tools"])
    wait_for_chat(page)
    reply = page.locator(LAST_REPLY)
    assert reply.locator(".version-count").inner_text() == "2 / 2"
    assert_no_axe_violations(page, f"reply with versions ({look[0]})")

    reply.locator("details.tool-step summary").click()
    assert reply.locator("details.tool-step").evaluate("node => node.open")
    assert_no_axe_violations(page, f"tool steps open ({look[0]})")

    page.locator(".message-user .action-edit").click()
    page.wait_for_selector(".message-editor-input")
    assert_no_axe_violations(page, f"message editor open ({look[0]})")
    page.press(".message-editor-input", "Escape")
    page.locator(".message-editor").wait_for(state="detached")

    page.locator("#settings-button").click()
    page.wait_for_selector("#settings-dialog[open]")
    assert_no_axe_violations(page, f"conversation settings dialog open ({look[0]})")


@pytest.mark.parametrize("look", LOOKS, ids=look_ids(LOOKS))
def test_a_thinking_block_has_no_axe_violations(open_page, account, look):
    _, urls = account
    page = open_page(look, urls["thinking"])
    wait_for_chat(page)
    thinking = page.locator(LAST_REPLY).locator("details.thinking")
    thinking.locator("summary").click()
    assert thinking.evaluate("node => node.open")
    assert_no_axe_violations(page, f"thinking block open ({look[0]})")


PHONE_LOOKS = [look for look in LOOKS if look[3] is PHONE]


@pytest.mark.parametrize("look", PHONE_LOOKS, ids=look_ids(PHONE_LOOKS))
def test_the_sidebar_drawer_on_a_phone_has_no_axe_violations(open_page, account, look):
    _, urls = account
    page = open_page(look, urls["tools"])
    wait_for_chat(page)
    page.locator("#menu-button").click()
    page.wait_for_selector(".app.sidebar-open")
    assert_no_axe_violations(page, f"sidebar drawer open ({look[0]})")


# ---- the skip link -------------------------------------------------------------------------------------


FIRST_TAB_STOP = """() => [...document.querySelectorAll("a[href], button, input, select, textarea, [tabindex]")]
    .find((el) => el.tabIndex >= 0 && !el.disabled && !el.closest("[hidden], dialog:not([open])"))?.className"""


def test_on_a_page_without_autofocus_the_first_tab_is_a_visible_skip_link_to_the_content(open_page):
    page = open_page(LOOKS[1], "/usage/")
    page.wait_for_selector("main")

    page.keyboard.press("Tab")

    skip = page.locator(".skip-link")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    box = skip.bounding_box()
    assert box and box["y"] >= 0 and box["x"] >= 0, "on screen while it has the focus"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "content"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.closest('main') !== null"), (
        "the next Tab is in the content"
    )
    assert skip.bounding_box()["y"] < 0, "hidden again once it loses the focus"


def test_the_chat_pages_skip_link_comes_first_and_moves_to_the_composer(open_page, account):
    _, urls = account
    page = open_page(LOOKS[0], urls["tools"])
    wait_for_chat(page)
    assert page.evaluate(FIRST_TAB_STOP) == "skip-link"

    # The page puts the caret in the composer on load, so a keyboard starts there; the link is still first.
    page.locator(".skip-link").focus()
    assert page.locator(".skip-link").inner_text() == "Skip to conversation"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "composer-input"
    page.keyboard.type("typed right away")
    assert page.input_value("#composer-input") == "typed right away"


def test_the_sign_in_pages_start_with_the_skip_link_too(open_page):
    page = open_page(LOOKS[0], "/accounts/login/", signed_in=False)
    assert page.evaluate(FIRST_TAB_STOP) == "skip-link"
    page.locator(".skip-link").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "content"


# ---- one Tab stop per conversation ---------------------------------------------------------------------


def focused_label(page) -> str:
    return page.evaluate(
        "() => document.activeElement.getAttribute('aria-label') || document.activeElement.textContent.trim()"
    )


def test_each_conversation_is_one_tab_stop_and_its_actions_are_on_the_arrow_keys(open_page):
    page = open_page(LOOKS[0], "/")
    wait_for_chat(page)
    links = page.locator(".conversation-link")
    assert links.count() >= 2
    first, second = (links.nth(n).inner_text() for n in (0, 1))

    links.first.focus()
    page.keyboard.press("Tab")
    assert focused_label(page) == second, "Tab goes to the next conversation, past the first one's buttons"
    page.keyboard.press("Shift+Tab")
    assert focused_label(page) == first

    labels = []
    for _ in range(4):
        page.keyboard.press("ArrowRight")
        labels.append(focused_label(page))
    assert labels == [f"Rename “{first}”", f"Pin “{first}”", f"Archive “{first}”", f"Delete “{first}”"]
    page.keyboard.press("ArrowRight")
    assert focused_label(page) == f"Delete “{first}”", "the last action stays put"
    page.keyboard.press("ArrowDown")
    assert focused_label(page) == f"Delete “{second}”", "Down keeps the column"
    page.keyboard.press("Escape")
    assert focused_label(page) == second, "Escape goes back to the conversation"
    page.keyboard.press("ArrowLeft")
    assert focused_label(page) == second
    page.keyboard.press("End")
    assert focused_label(page) == links.last.inner_text()
    page.keyboard.press("Home")
    assert focused_label(page) == first
    page.keyboard.press("ArrowUp")
    assert focused_label(page) == first, "nothing above the first conversation"


def test_enter_on_an_action_reached_by_the_arrows_does_what_a_click_does(open_page, server_url):  # noqa: F811
    page = open_page(LOOKS[0], "/")
    wait_for_chat(page)
    page.locator(".conversation-link").first.focus()
    title = page.locator(".conversation-link").first.inner_text()

    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    page.wait_for_selector(".rename-input")
    assert page.evaluate("() => document.activeElement.classList.contains('rename-input')")
    page.keyboard.press("ArrowLeft")  # the input keeps its keys: the caret moves, focus stays
    assert page.evaluate("() => document.activeElement.classList.contains('rename-input')")
    page.keyboard.press("Escape")
    assert focused_label(page) == title

    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert focused_label(page) == f"Pin “{title}”"
    page.keyboard.press("Enter")
    page.wait_for_load_state("load")
    pinned = page.locator(".conversation-item.is-pinned .conversation-link")
    pinned.first.wait_for()
    assert pinned.first.inner_text() == title
    pinned.first.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert focused_label(page) == f"Unpin “{title}”"
    page.keyboard.press("Enter")
    page.wait_for_load_state("load")
    page.locator(".conversation-item.is-pinned").wait_for(state="detached")

    # Delete asks first (the page's confirm); a dismissed confirm deletes nothing. A conversation of its own.
    start_conversation(page, server_url, "A conversation to delete")
    count = page.locator(".conversation-item").count()
    page.once("dialog", lambda dialog: dialog.dismiss())
    doomed = "A conversation to delete"
    page.locator(".conversation-item.is-current .conversation-link").focus()
    assert focused_label(page) == doomed
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    assert focused_label(page) == f"Delete “{doomed}”"
    page.keyboard.press("Enter")
    assert page.locator(".conversation-item").count() == count
    page.once("dialog", lambda dialog: dialog.accept())
    page.keyboard.press("Enter")
    page.wait_for_function("n => document.querySelectorAll('.conversation-item').length === n - 1", arg=count)


# ---- light, dark and system ----------------------------------------------------------------------------


def background(page) -> str:
    return page.evaluate("() => getComputedStyle(document.body).backgroundColor")


LIGHT_BG, DARK_BG = "rgb(250, 249, 246)", "rgb(29, 28, 26)"


def test_dark_chosen_on_a_light_system_is_dark_everywhere_and_system_follows_it(open_page, server_url):  # noqa: F811
    page = open_page(LOOKS[0], "/")
    assert background(page) == LIGHT_BG, "a light system, no choice yet"

    page.evaluate("() => { window.__samePage = true; }")
    page.get_by_role("group", name="Theme").get_by_role("button", name="Dark").click()
    page.get_by_role("group", name="Theme").get_by_role("button", name="Dark", pressed=True).wait_for()
    assert page.evaluate("() => window.__samePage === true"), "restyled in place, without a page load"
    assert page.get_attribute("html", "data-theme") == "dark"
    assert background(page) == DARK_BG
    assert_no_axe_violations(page, "the chat page, dark by the switch on a light system")
    for path in SIGNED_IN_PAGES.values():
        page.goto(server_url + path)
        assert background(page) == DARK_BG, f"the choice holds on {path}"

    theme_switch(page, server_url, "")
    assert page.get_attribute("html", "data-theme") is None
    assert page.get_attribute('meta[name="color-scheme"]', "content") == "light dark"
    assert background(page) == LIGHT_BG, "System follows the light system again"
    page.emulate_media(color_scheme="dark")
    assert background(page) == DARK_BG, "and a dark one"
    page.reload()
    assert page.get_attribute("html", "data-theme") is None, "System was saved"


def test_light_chosen_on_a_dark_system_stays_light_and_the_settings_page_shows_it(open_page, server_url):  # noqa: F811
    page = open_page(LOOKS[1], "/")
    assert background(page) == DARK_BG
    try:
        page.goto(f"{server_url}/accounts/settings/")
        page.select_option("#id_theme", "light")
        page.get_by_role("button", name="Save").click()
        page.get_by_role("status").filter(has_text="Settings saved.").wait_for()
        assert background(page) == LIGHT_BG
        page.goto(f"{server_url}/")
        assert background(page) == LIGHT_BG
        switch = page.get_by_role("group", name="Theme")
        assert switch.get_by_role("button", name="Light", pressed=True).count() == 1
    finally:
        theme_switch(page, server_url, "")
    assert background(page) == DARK_BG


def test_signing_out_leaves_the_sign_in_pages_to_the_system(browser, server_url, account):  # noqa: F811
    context = browser.new_context(**DESKTOP, color_scheme="dark")
    page = context.new_page()
    page.goto(f"{server_url}/accounts/login/")
    assert page.get_attribute("html", "data-theme") is None
    assert background(page) == DARK_BG
    page.fill("#id_username", "a11y")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server_url}/**")
    assert background(page) == DARK_BG
    context.close()
