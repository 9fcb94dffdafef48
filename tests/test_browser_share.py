"""A shared conversation in a real browser: the shared page renders replies with the chat page's rendering
(static/chat/render.js): markdown with highlighted code and its Copy button, and tool steps.

It reuses test_browser.py's server and browser (same Chromium, same DEBUG server on a throwaway database, the
offline model)."""

import pytest
from test_browser import browser, page, send, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model


def test_the_shared_page_renders_markdown_code_and_tool_steps_as_the_chat_page_does(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "sharer")
    send(page, "what is 17*23")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)
    conversation_id = page.locator("#chat").get_attribute("data-conversation-id")

    page.goto(f"{server_url}/conversations/{conversation_id}/shares/")
    page.select_option("#id_audience", "signed_in")
    page.select_option("#id_mode", "live")
    page.get_by_role("button", name="Share").click()
    link = page.get_by_label("Link to share 1").input_value()
    page.goto(link)

    reply = page.locator(".message-assistant")
    reply.wait_for()
    assert "calculator" in reply.locator("details.tool-step summary").inner_text()
    assert "391" in reply.locator("details.tool-step summary").inner_text()
    assert reply.locator("pre code.hljs").count() >= 1, "marked, DOMPurify and highlight.js ran"
    assert reply.locator("pre .copy-code").count() >= 1
    assert page.locator(".message-user .user-text").inner_text() == "what is 17*23"
    assert page.locator("#composer").count() == 0
