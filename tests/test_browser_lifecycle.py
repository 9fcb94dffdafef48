"""Models that retire, in a real browser: the picker labels a deprecated model, and a send on a retired one is
refused with a one-click switch to its successor that keeps the draft.

The retirement is written into the server's own SQLite file before the server first reads the lifecycle table
(its first page), and the conversation is moved onto the retired model there too.
"""

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from test_browser import app_server, browser, page, send, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model
SERVER = "browser-lifecycle-server"
TODAY = datetime.now(UTC).date()
HAIKU_RETIRES = TODAY + timedelta(days=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with app_server(tmp_path_factory, SERVER) as url:
        database = tmp_path_factory.getbasetemp() / f"{SERVER}0" / "db.sqlite3"
        # app_server empties the seeded table: rows relative to today, so the test holds on any date.
        with sqlite3.connect(database) as db:
            db.executemany(
                "INSERT INTO lifecycle_modellifecycle (model, retires_on, successor, source, notes, updated_at) "
                "VALUES (?, ?, ?, 'built_in', '', ?)",
                [("claude-haiku-4-5", HAIKU_RETIRES.isoformat(), "claude-haiku-5-5", TODAY.isoformat()),
                 ("claude-sonnet-4-6", (TODAY - timedelta(days=1)).isoformat(), "claude-sonnet-5-5", TODAY.isoformat())],
            )
        yield url, database


@pytest.fixture(scope="module")
def server_url(server):
    return server[0]


def test_a_deprecated_model_is_labelled_and_a_retired_one_offers_its_successor(page, server):  # noqa: F811
    server_url, database = server
    sign_up_and_start_a_chat(page, server_url, "retiree")
    haiku = page.locator("#model-select option[value=claude-haiku-4-5]")
    assert haiku.get_attribute("label") == "Claude Haiku 4.5 · deprecated"
    assert page.locator("#model-select option[value=claude-sonnet-4-6]").count() == 0  # retired: not offered
    page.select_option("#model-select", "claude-haiku-4-5")
    description = page.locator("#model-description").inner_text()
    retires = f"{HAIKU_RETIRES.day} {HAIKU_RETIRES:%b %Y}"
    assert f"Deprecated: retires {retires}, use Claude Haiku 5.5." in description

    send(page, "Hello there")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)
    conversation_id = page.get_attribute("#chat", "data-conversation-id")
    with sqlite3.connect(database) as db:
        db.execute("UPDATE chat_conversation SET model = 'claude-sonnet-4-6' WHERE id = ?", (conversation_id,))
    page.reload()
    assert page.input_value("#model-select") == "claude-sonnet-4-6"

    send(page, "Are you still there?")
    notice = page.wait_for_selector(".notice-retired")
    assert "Claude Sonnet 4.6 was retired on" in notice.inner_text()
    assert page.input_value("#composer-input") == "Are you still there?"  # the draft is kept
    assert page.locator(".message-user").count() == 1

    page.click(".notice-retired >> text=Switch to Claude Sonnet 5.5")
    page.wait_for_selector(".notice-retired", state="detached")
    assert page.input_value("#model-select") == "claude-sonnet-5-5"
    assert page.input_value("#composer-input") == "Are you still there?"
    page.press("#composer-input", "Enter")
    page.wait_for_function("() => document.querySelectorAll('.message-assistant[data-status=complete]').length === 2",
                           timeout=DONE)
    with sqlite3.connect(database) as db:
        model, = db.execute("SELECT model FROM chat_conversation WHERE id = ?", (conversation_id,)).fetchone()
    assert model == "claude-sonnet-5-5"
