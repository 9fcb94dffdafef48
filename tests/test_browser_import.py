"""Import in a real browser: the sidebar's link, the form's multipart upload with its CSRF token, the imported
conversation shown with its versions, and a reply in it. It reuses test_browser.py's server and browser."""

import re
from pathlib import Path

import pytest
from test_browser import browser, page, send, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

SAMPLES = Path(__file__).parent / "import_samples"
DONE = 30_000  # a whole reply from the offline model


def test_a_chatgpt_export_is_imported_opened_and_continued(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "importer")

    page.click("text=Import conversations")
    page.wait_for_url(f"{server_url}/conversations/import/")
    page.set_input_files("#id_file", str(SAMPLES / "chatgpt_conversations.json"))
    page.click("main button[type=submit]")

    page.wait_for_url(re.compile(rf"{re.escape(server_url)}/conversations/\d+/$"))
    assert page.inner_text("#chat-title") == "Sourdough starter"
    page.get_by_text("Once a week is enough in the fridge.").wait_for()
    assert page.get_by_text("Feed it daily with equal weights").count() == 0  # another version, off the path
    assert page.locator(".message-user").first.inner_text().count("How do I keep my starter alive?") == 1
    send(page, "What about rye flour?")
    page.wait_for_selector(".message-assistant[data-status=complete] >> nth=2", timeout=DONE)
    assert page.locator(".message-assistant").count() == 3


def test_a_file_that_is_not_an_export_is_refused_under_the_field(page, server_url, tmp_path):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "importrefused")
    junk = tmp_path / "notes.json"
    junk.write_text('{"hello": "world"}')

    page.goto(f"{server_url}/conversations/import/")
    page.set_input_files("#id_file", str(junk))
    page.click("main button[type=submit]")

    page.get_by_text(
        "This file is not a conversation exported from this app, claude.ai or ChatGPT."
    ).wait_for()
    assert page.url == f"{server_url}/conversations/import/"
