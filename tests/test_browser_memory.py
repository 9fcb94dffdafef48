"""The memory tool in a real browser: a turn in which the model saves a note shows its memory steps, and the
settings page lists that note, edits it and deletes it. And a call to a remote MCP server, shown as a step.

It uses test_browser.py's browser and page, against a server of its own whose admin has turned the memory
tool on and added an MCP server (rows written into its database before the tests).
"""

import sqlite3

import pytest
from test_browser import app_server, browser, page, send, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with app_server(tmp_path_factory, "browser-memory-server") as url:
        [database] = tmp_path_factory.getbasetemp().glob("browser-memory-server[0-9]*/db.sqlite3")
        with sqlite3.connect(database) as db:
            db.execute("INSERT INTO chat_toolsetting (name, enabled, options) VALUES ('memory', 1, '{}')")
            db.execute(
                "INSERT INTO connectors_mcpserver (name, url, authorization_token, allowed_tools, enabled, created_at)"
                " VALUES ('docs', 'https://mcp.example.com/sse', 'tok', '[\"search\"]', 1, '2026-01-01 00:00:00')"
            )
        yield url


def test_a_memory_the_model_saved_is_listed_edited_and_deleted_in_settings(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "rememberer")
    send(page, "Please remember that my dog is called Rex.")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)

    steps = page.locator(".message-assistant .memory-step .tool-argument").all_inner_texts()
    assert steps == ["viewed /memories", "saved notes.md"]

    page.goto(f"{server_url}/accounts/settings/memory/")
    row = page.locator('tr[data-memory-path="/memories/notes.md"]')
    assert row.count() == 1
    row.locator("a").click()
    assert page.input_value("#id_content") == "- my dog is called Rex\n"
    page.fill("#id_content", "- my dog is called Rex, a beagle\n")
    page.click("button:text('Save')")
    page.wait_for_selector("text=Saved /memories/notes.md.")
    page.locator('tr[data-memory-path="/memories/notes.md"] a').click()
    assert page.input_value("#id_content") == "- my dog is called Rex, a beagle\n"

    page.click("button:text('Delete this file')")
    page.wait_for_selector("text=Deleted /memories/notes.md.")
    assert page.locator("tr[data-memory-path]").count() == 0
    assert page.inner_text(".memory-empty") == "Claude has not saved anything yet."


def test_a_call_to_an_mcp_server_is_a_step_with_its_result(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "mcpasker")
    send(page, "Please use the docs search for the release notes.")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)

    step = page.locator(".message-assistant .tool-step", has_text="Asked docs: search")
    assert step.count() == 1
    assert "no MCP server was called" in step.locator(".tool-outcome").inner_text()
    step.locator("summary").click()
    assert "release notes" in step.locator(".tool-io").first.inner_text()
