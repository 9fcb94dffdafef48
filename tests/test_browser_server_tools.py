"""Web search in a real browser: the picker says the model supports it, and the reply shows a step with its
sources, each a link to the page (title and site) that opens in a new tab without a referrer, live and after a
reload.

It uses test_browser.py's browser and page, against a server of its own where an admin has turned web search
on (a ToolSetting row written into the server's database: the switch is read per reply).
"""

import sqlite3

import pytest
from test_browser import app_server, browser, page, send, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model
SERVER = "browser-server-tools"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with app_server(tmp_path_factory, SERVER) as url:
        database = max(tmp_path_factory.getbasetemp().glob(f"{SERVER}[0-9]*/db.sqlite3"))
        with sqlite3.connect(database) as db:
            db.execute(
                "INSERT INTO chat_toolsetting (name, enabled, options) VALUES ('web_search', 1, ?)",
                ('{"allowed_domains": ["example.com"], "max_uses": 2}',),
            )
            db.execute("INSERT INTO chat_toolsetting (name, enabled, options) VALUES ('code_execution', 1, '{}')")
        yield url


def test_a_web_search_step_shows_its_sources_as_links(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "websearch")
    assert "Server tools: web search, web fetch, code execution." in page.inner_text("#model-description")
    send(page, "Search the web for the latest news about tides")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)

    def sources():
        step = page.locator(".message-assistant .server-step[data-tool-name=web_search]").first
        assert "Searched the web" in step.locator(".tool-summary").inner_text()
        step.locator(".tool-summary").click()  # open the step
        links = step.locator("a.server-source-link")
        assert links.count() >= 1
        return [
            (links.nth(n).get_attribute("href"), links.nth(n).get_attribute("target"),
             links.nth(n).get_attribute("rel"), links.nth(n).inner_text())
            for n in range(links.count())
        ], step.locator(".server-source-domain").all_inner_texts()

    live, domains = sources()
    assert all(href.startswith("https://example.com/") for href, *_ in live)
    assert all((target, rel) == ("_blank", "noopener noreferrer") for _, target, rel, _ in live)
    assert all(title for *_, title in live)
    assert set(domains) == {"example.com"}

    page.reload()
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)
    assert sources() == (live, domains)


def test_a_shared_conversation_shows_the_web_search_step_with_its_sources(page, server_url):  # noqa: F811
    """The share page (shared.js, shared_steps.js) renders server tool steps as the chat page does, read-only."""
    sign_up_and_start_a_chat(page, server_url, "websearchshare")
    send(page, "Search the web for the tide tables")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)
    conversation_id = page.locator("#chat").get_attribute("data-conversation-id")
    page.goto(f"{server_url}/conversations/{conversation_id}/shares/")
    page.select_option("#id_audience", "signed_in")
    page.get_by_role("button", name="Share").click()
    page.goto(page.get_by_label("Link to share 1").input_value())
    step = page.locator(".message-assistant .server-step[data-tool-name=web_search]").first
    step.wait_for()
    assert "Searched the web" in step.locator(".tool-summary").inner_text()
    step.locator(".tool-summary").click()
    links = step.locator("a.server-source-link")
    assert links.count() >= 1
    for n in range(links.count()):
        assert links.nth(n).get_attribute("href").startswith("https://example.com/")
        assert links.nth(n).get_attribute("rel") == "noopener noreferrer"


def test_a_code_execution_step_shows_the_code_its_output_and_a_produced_file_to_download(page, server_url):  # noqa: F811
    """The text editor's step shows the file it wrote (not its command word as code), the run its output, and the
    CSV the code made is a download link the owner can fetch (chat/server_files.py)."""
    sign_up_and_start_a_chat(page, server_url, "codeexec")
    send(page, 'Run this code with Python and make a CSV file:\n```python\nprint("tides ok")\n```')
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)

    editor = page.locator(".server-step[data-tool-name=text_editor_code_execution]").first
    assert "create" in editor.locator(".tool-argument").inner_text()
    editor.locator(".tool-summary").click()
    assert editor.locator(".tool-label").first.inner_text() == "File"
    assert 'print("tides ok")' in editor.locator("pre.tool-io").first.inner_text()

    run = page.locator(".server-step[data-tool-name=bash_code_execution]").last
    run.locator(".tool-summary").click()
    assert any("tides ok" in text for text in run.locator("pre.tool-io").all_inner_texts())  # its stdout
    link = run.locator("a.server-file-link")
    href = link.first.get_attribute("href")
    assert href.startswith("/messages/")
    response = page.request.get(server_url + href)
    assert response.status == 200 and "attachment" in response.headers["content-disposition"]
    assert response.body()
