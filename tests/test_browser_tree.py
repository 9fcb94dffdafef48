"""A conversation's versions in a real browser: the "‹ 2 / 3 ›" arrows, edit anywhere, delete a branch, fork,
and a second tab that follows a switch.

It reuses test_browser.py's server and browser (same Chromium, same DEBUG server on a throwaway database, the
offline model). The offline model's reply names the model that wrote it, so three versions written by three
models read differently: that is how a test tells which version is on screen.
"""

import re

import pytest
from test_browser import browser, page, send, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

REPLY = ".message-assistant"
DONE = 30_000  # a whole reply from the offline model


def last_reply(tab):
    return tab.locator(REPLY).last


def wait_until_idle(tab):
    """The path's last reply has settled and the tab takes actions again."""
    tab.wait_for_function(
        """() => {
        const replies = document.querySelectorAll(".message-assistant");
        const last = replies[replies.length - 1];
        return last && last.dataset.status === "complete" && !document.getElementById("send-button").hidden;
    }""",
        timeout=DONE,
    )


def ask(tab, text):
    """Sends `text` and waits for its whole reply."""
    replies = tab.locator(REPLY).count()
    send(tab, text)
    tab.locator(REPLY).nth(replies).wait_for()
    wait_until_idle(tab)


def offered_models(tab) -> list[str]:
    values = tab.locator("#model-select option").evaluate_all("options => options.map(option => option.value)")
    models = [value for value in values if value != "auto"]
    assert len(models) >= 3, f"three models to tell the versions apart: {values}"
    return models


def versions_of(locator):
    return locator.locator(".version-count")


def reply_text(tab) -> str:
    return last_reply(tab).locator(".markdown").first.inner_text()


def ask_and_regenerate_twice(tab) -> list[str]:
    """One question, answered by three models in turn: the texts of the three versions, oldest first."""
    models = offered_models(tab)[:3]
    tab.select_option("#model-select", models[0])
    ask(tab, "What is a B-tree?")
    texts = [reply_text(tab)]
    for number, model in enumerate(models[1:], start=2):
        tab.select_option("#model-select", model)
        last_reply(tab).locator(".action-regenerate").click()
        versions_of(last_reply(tab)).filter(has_text=f"{number} / {number}").wait_for()
        wait_until_idle(tab)
        texts.append(reply_text(tab))
    for model, text in zip(models, texts):
        assert f"Offline model · {model}" in text
    return texts


def test_the_arrows_switch_between_three_versions_and_the_choice_survives_a_reload(page, server_url):  # noqa: F811
    sent = []
    page.on("websocket", lambda socket: socket.on("framesent", lambda frame: sent.append(frame)))
    sign_up_and_start_a_chat(page, server_url, "versions")
    texts = ask_and_regenerate_twice(page)

    reply = last_reply(page)
    assert page.locator(REPLY).count() == 1, "the older versions are not in the transcript"
    assert versions_of(reply).inner_text() == "3 / 3"
    assert reply.get_by_role("button", name="Next version").is_disabled()
    assert any('"type":"regenerate"' in frame and '"message":' in frame for frame in sent)

    reply.get_by_role("button", name="Previous version").click()
    versions_of(last_reply(page)).filter(has_text="2 / 3").wait_for()
    assert reply_text(page) == texts[1]
    focused = page.evaluate("() => document.activeElement.getAttribute('aria-label')")
    assert focused == "Previous version", "the keyboard stays on the arrow, now on the version shown"
    page.screenshot(path="/tmp/chat-versions.png")
    last_reply(page).get_by_role("button", name="Previous version").click()
    versions_of(last_reply(page)).filter(has_text="1 / 3").wait_for()

    assert reply_text(page) == texts[0]
    assert last_reply(page).get_by_role("button", name="Previous version").is_disabled()
    assert page.locator(REPLY).count() == 1
    assert page.locator(".message-user .user-text").inner_text() == "What is a B-tree?"

    page.reload()
    assert versions_of(last_reply(page)).inner_text() == "1 / 3"
    assert reply_text(page) == texts[0]
    last_reply(page).get_by_role("button", name="Next version").click()
    versions_of(last_reply(page)).filter(has_text="2 / 3").wait_for()
    assert reply_text(page) == texts[1]


def test_editing_an_earlier_message_starts_a_new_branch_and_keeps_the_old_one(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "editor")
    ask(page, "First question")
    ask(page, "Second question")
    assert page.locator(".message").count() == 4
    assert page.locator(".message-user .action-edit").count() == 2, "every user message can be edited"
    assert page.locator(".message-user .action-edit").nth(0).is_visible()

    first = page.locator(".message-user").first
    first.locator(".action-edit").click()
    first.locator(".message-editor-input").fill("A better first question")
    first.get_by_role("button", name="Save and resend").click()
    versions_of(page.locator(".message-user").first).filter(has_text="2 / 2").wait_for()
    wait_until_idle(page)

    assert page.locator(".message").count() == 2, "the second turn belongs to the old branch"
    assert page.locator(".message-user .user-text").inner_text() == "A better first question"
    assert "A better first question" in reply_text(page) and "This is turn 1" in reply_text(page)

    page.locator(".message-user").first.get_by_role("button", name="Previous version").click()
    versions_of(page.locator(".message-user").first).filter(has_text="1 / 2").wait_for()
    assert page.locator(".message").count() == 4
    assert page.locator(".message-user .user-text").all_inner_texts() == ["First question", "Second question"]
    assert "This is turn 2" in reply_text(page)


def test_a_second_tab_follows_a_switch_made_in_the_first(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "twotabs")
    texts = ask_and_regenerate_twice(page)
    other = page.context.new_page()
    other.goto(page.url)
    versions_of(last_reply(other)).filter(has_text="3 / 3").wait_for()
    last_reply(other).locator(".action-regenerate").wait_for()  # shown once its socket is open

    page.locator(".message-assistant .action-previous").click()
    versions_of(last_reply(page)).filter(has_text="2 / 3").wait_for()

    versions_of(last_reply(other)).filter(has_text="2 / 3").wait_for()
    assert reply_text(other) == texts[1]
    other.close()


def test_deleting_a_version_asks_first_and_shows_the_one_before(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "deleter")
    models = offered_models(page)
    page.select_option("#model-select", models[0])
    ask(page, "Something to delete")
    first_text = reply_text(page)
    page.select_option("#model-select", models[1])
    last_reply(page).locator(".action-regenerate").click()
    versions_of(last_reply(page)).filter(has_text="2 / 2").wait_for()
    wait_until_idle(page)

    questions = []

    def dismiss(dialog):
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    last_reply(page).locator(".action-delete").click()
    assert "later messages of this branch" in questions[0]
    assert versions_of(last_reply(page)).inner_text() == "2 / 2", "a dismissed confirm deletes nothing"

    page.once("dialog", lambda dialog: dialog.accept())
    last_reply(page).locator(".action-delete").click()
    page.wait_for_function("t => document.querySelector('.message-assistant .markdown')?.innerText === t", arg=first_text)
    assert last_reply(page).locator(".message-versions").is_hidden(), "one version left: no arrows"

    page.reload()
    assert reply_text(page) == first_text
    assert last_reply(page).locator(".message-versions").is_hidden()


def test_fork_starts_a_new_chat_from_a_reply(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "forker")
    ask(page, "Where do we go from here?")
    ask(page, "And then?")
    source = page.url

    fork = page.locator(REPLY).first.get_by_role("button", name="Fork")
    assert fork.get_attribute("title") == "Start a new chat from here"
    fork.click()
    page.wait_for_url(lambda url: url != source and re.search(r"/conversations/\d+/$", url) is not None)

    assert page.locator(".message").count() == 2, "the path up to the forked reply"
    assert page.locator(".message-user .user-text").inner_text() == "Where do we go from here?"
    assert page.locator(".conversation-item").count() == 2


def test_the_header_links_to_sharing_and_projects_and_the_sidebar_to_both_lists(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "linker")
    assert page.locator(".chat-header").get_by_role("link", name="Share").count() == 0, "no conversation yet"
    ask(page, "Once")  # the first message creates the conversation, and the header shows its tools
    conversation_id = page.locator("#chat").get_attribute("data-conversation-id")

    header = page.locator(".chat-header")
    assert header.get_by_role("link", name="Share").get_attribute("href") == f"/conversations/{conversation_id}/shares/"
    assert header.get_by_role("link", name="Project").is_visible()
    sidebar = page.locator("#sidebar")
    assert sidebar.get_by_role("link", name="Projects").is_visible()
    assert sidebar.get_by_role("link", name="Shared with me").get_attribute("href") == "/shares/"


def test_the_arrows_are_there_for_a_finger_on_a_phone(browser, page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "thumb")
    ask(page, "Once")
    last_reply(page).locator(".action-regenerate").click()
    versions_of(last_reply(page)).filter(has_text="2 / 2").wait_for()
    wait_until_idle(page)

    phone = browser.new_context(
        viewport={"width": 360, "height": 800}, is_mobile=True, has_touch=True, device_scale_factor=2,
        storage_state=page.context.storage_state(),
    )
    try:
        tab = phone.new_page()
        tab.goto(page.url)
        previous = last_reply(tab).get_by_role("button", name="Previous version")
        previous.wait_for()
        box = previous.bounding_box()
        assert round(box["width"]) >= 36 and round(box["height"]) >= 36, "a finger-sized target"
        # The actions appear once the socket is open (nothing can be regenerated before), so wait for it.
        last_reply(tab).locator(".action-regenerate").wait_for()
        assert tab.evaluate("() => document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth") <= 0
        previous.tap()
        versions_of(last_reply(tab)).filter(has_text="1 / 2").wait_for()
    finally:
        phone.close()
