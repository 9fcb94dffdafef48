"""The title the model writes, in a real browser: the header, the sidebar entry and the document title change
when the `conversation` frame arrives, without a reload.

It uses test_browser.py's browser and page, against a server of its own with titles on (every other test
server has them off: tests/cluster.py).
"""

import pytest
from test_browser import app_server, browser, page, send, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model
QUESTION = "How do I plan the team offsite budget?"
MODEL_TITLE = "Plan Team Offsite Budget"  # what the offline model makes of QUESTION


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with app_server(tmp_path_factory, "browser-titles-server", CHAT_MODEL_TITLES="1") as url:
        yield url


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


def test_the_models_title_leaves_a_model_picked_since_in_the_picker(page, server_url):  # noqa: F811
    """The title frame comes seconds after the reply as {id, title}: it must not put back the model the message
    was sent with."""
    from test_browser_tree import offered_models

    sign_up_and_start_a_chat(page, server_url, "modelpicker")
    sent_with, picked = offered_models(page)[:2]
    page.select_option("#model-select", sent_with)
    send(page, QUESTION)
    # The send's own `conversation` frame (the first message's title, and the model) has been applied.
    page.wait_for_function("t => document.getElementById('chat-title').textContent === t", arg=QUESTION)
    page.select_option("#model-select", picked)

    page.wait_for_function("t => document.getElementById('chat-title').textContent === t", arg=MODEL_TITLE)
    assert page.input_value("#model-select") == picked
