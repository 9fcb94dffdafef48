"""A half-price reply in a real browser: the toggle, "Queued" with its Cancel button, and the answer appearing
in place once the batch worker (another process, as in `make run`: no shared channel layer) has settled it.

Its own server, as tests/test_browser.py's `app_server` starts one, keeping the environment so that the worker
runs against the same SQLite file and the same offline model's batch directory.
"""

import subprocess
import sys

import pytest
from cluster import ROOT, AppServer, migrate, server_env
from test_browser import (  # noqa: F401 (fixtures)
    TOKENS_PER_SECOND, browser, browser_page, page, require_browser, send, sign_up_and_start_a_chat,
)

pytestmark = pytest.mark.browser

QUEUED = "Queued: answer within 24 h (usually under an hour)"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    workdir = tmp_path_factory.mktemp("browser-batches-server")
    env = server_env(
        DJANGO_DEBUG="1",
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        DJANGO_MEDIA_ROOT=str(workdir / "media"),
        REDIS_URL="",
        OFFLINE_MODEL_TOKENS_PER_SECOND=str(TOKENS_PER_SECOND),
        OFFLINE_MODEL_BATCH_SECONDS="0",
        OFFLINE_MODEL_BATCH_DIR=str(workdir / "offline-batches"),
        BATCH_PAGE_CHECK_SECONDS="1",
    )
    migrate(env)
    app = AppServer(env, workdir, "server").start()
    try:
        yield app, env
    finally:
        app.stop()


@pytest.fixture(scope="module")
def server_url(server):
    return server[0].url


def worker_pass(env) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "batches_work", "--once"], cwd=ROOT, env=env, check=True, timeout=60,
    )


def test_a_half_price_reply_is_queued_then_appears_without_a_reload(page, server, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "halfprice")
    toggle = page.get_by_label("Not urgent: half price")
    assert not toggle.is_checked(), "never the default"
    toggle.check()

    send(page, "No rush: what is a haiku?")

    page.wait_for_selector(f".message-assistant[data-status=queued] >> text={QUEUED}")
    assert page.locator(".message-assistant .queued-cancel").is_visible()
    assert not toggle.is_checked(), "off again after sending"
    page.reload()
    page.wait_for_selector(f".message-assistant[data-status=queued] >> text={QUEUED}")

    worker_pass(server[1])  # submits
    worker_pass(server[1])  # settles

    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=15_000)
    assert page.inner_text(".message-assistant .message-body").strip()
    assert page.locator(".queued-cancel").count() == 0


def test_on_a_phone_the_toggle_is_a_finger_sized_target_and_cancel_stops_the_queued_reply(
    browser, server_url  # noqa: F811
):
    with browser_page(browser, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True) as page:
        sign_up_and_start_a_chat(page, server_url, "cancelhalf")
        toggle = page.locator(".composer-batch")
        assert toggle.is_visible() and toggle.bounding_box()["height"] >= 24
        page.get_by_label("Not urgent: half price").check()
        send(page, "Whenever you can: a limerick?")
        page.wait_for_selector(".message-assistant[data-status=queued]")

        page.click(".queued-cancel")

        page.wait_for_selector(".message-assistant[data-status=stopped]")
        assert "Cancelled" in page.inner_text(".message-assistant")
