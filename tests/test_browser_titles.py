"""The title the model writes, in a real browser: the header, the sidebar entry and the document title change
when the `conversation` frame arrives, without a reload.

It uses test_browser.py's browser and page, against a server of its own with titles on (every other test
server has them off: tests/cluster.py).
"""

import pytest
from cluster import AppServer, migrate, server_env
from test_browser import (  # noqa: F401 (fixtures)
    TOKENS_PER_SECOND,
    browser,
    page,
    require_browser,
    send,
    sign_up_and_start_a_chat,
)

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model
QUESTION = "How do I plan the team offsite budget?"
MODEL_TITLE = "Plan Team Offsite Budget"  # what the offline model makes of QUESTION


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    require_browser()
    workdir = tmp_path_factory.mktemp("browser-titles-server")
    env = server_env(
        DJANGO_DEBUG="1",
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        DJANGO_MEDIA_ROOT=str(workdir / "media"),
        REDIS_URL="",
        OFFLINE_MODEL_TOKENS_PER_SECOND=TOKENS_PER_SECOND,
        CHAT_MODEL_TITLES="1",
    )
    migrate(env)
    server = AppServer(env, workdir, "server").start()
    try:
        yield server.url
    finally:
        server.stop()


def test_the_models_title_replaces_the_first_messages_in_the_header_sidebar_and_tab(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "modeltitle")
    send(page, QUESTION)
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)

    page.wait_for_function("t => document.getElementById('chat-title').textContent === t", arg=MODEL_TITLE)
    current = ".conversation-item.is-current"
    assert page.inner_text(f"{current} .conversation-title") == MODEL_TITLE
    assert page.get_attribute(current, "data-title") == MODEL_TITLE
    assert page.title() == f"{MODEL_TITLE} · Claude chat"
    page.reload()
    assert page.inner_text("#chat-title") == MODEL_TITLE
