"""The prompt cache in a real browser: a reply's cache numbers, the conversation's countdown to its expiry, and the
Settings dialog's warning before a change that rewrites the warm prefix.

Time is the page's own clock (Playwright's `page.clock`), fast-forwarded past the 5 minutes: nothing waits.
"""

import re

import pytest
from test_browser import browser, page, send, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)
from test_browser_tree import offered_models

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model
# Over the offline model's 1,024-token minimum, so the first reply after it writes the cache.
LONG_SYSTEM_PROMPT = "You are a patient tutor for database internals. Explain with small examples. " * 60
WARM = re.compile(r"^cache warm: (\d+):(\d\d) left$")


def seconds_left(page) -> int:  # noqa: F811
    minutes, seconds = WARM.match(page.inner_text("#cache-status")).groups()
    return int(minutes) * 60 + int(seconds)


def settings_saved(page, system_prompt: str) -> None:  # noqa: F811
    page.click("#settings-button")
    page.fill("#id_system_prompt", system_prompt)
    page.locator("#settings-dialog button[type=submit]").click()
    page.wait_for_selector(".message-assistant[data-status=complete]")


def test_the_countdown_runs_to_expired_and_the_dialog_warns_only_while_warm(page, server_url):  # noqa: F811
    page.clock.install()
    sign_up_and_start_a_chat(page, server_url, "cachewatcher")
    send(page, "Hello")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)
    # Too short to be cached: the reply says nothing about the cache.
    assert page.locator(".message-assistant >> nth=0").locator(".cache-stats").count() == 0
    settings_saved(page, LONG_SYSTEM_PROMPT)
    send(page, "What is a B-tree?")
    page.wait_for_selector(".message-assistant[data-status=complete] >> nth=1", timeout=DONE)

    page.wait_for_function("() => /^cache warm/.test(document.getElementById('cache-status').textContent)")
    assert page.locator("#cache-status").is_visible()
    # It wrote the long system prompt to the cache: a cost, unless the tools it read saved more.
    assert re.search(r"Cache \d+% hit · (cost \$\d+\.\d{4} to write|saved)", page.inner_text(".message-assistant >> nth=1"))
    first = seconds_left(page)
    assert 240 < first <= 300
    page.clock.fast_forward("00:30")
    assert seconds_left(page) <= first - 30

    page.click("#settings-button")
    assert page.locator("#cache-warning").is_hidden()  # nothing changed yet
    page.fill("#id_system_prompt", "Be brief.")
    warning = page.inner_text("#cache-warning")
    assert re.fullmatch(r"This will rewrite ~[\d,]+ cached tokens: about \$\d+\.\d{4} extra on the next reply\.", warning)
    page.fill("#id_system_prompt", LONG_SYSTEM_PROMPT)
    assert page.locator("#cache-warning").is_hidden()  # back as it was: nothing to rewrite
    page.click("#settings-dialog .dialog-cancel")

    page.clock.fast_forward("05:00")
    page.wait_for_function("() => document.getElementById('cache-status').textContent === 'cache expired'")
    assert page.inner_text("#cache-status-announce") == "The prompt cache of this conversation has expired."
    page.click("#settings-button")
    page.fill("#id_system_prompt", "Be brief.")
    assert page.locator("#cache-warning").is_hidden()  # a cold cache: nothing to say


def test_a_reload_shows_the_replies_cache_numbers_and_the_countdown(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "cachereloader")
    send(page, "Hello")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)
    settings_saved(page, LONG_SYSTEM_PROMPT)
    for question in ("What is a B-tree?", "And a B+ tree?"):
        count = page.locator(".message-assistant[data-status=complete]").count()
        send(page, question)
        page.wait_for_selector(f".message-assistant[data-status=complete] >> nth={count}", timeout=DONE)

    page.reload()

    last = page.locator(".message-assistant").last
    assert re.search(r"Cache [1-9]\d?% hit · saved \$\d+\.\d{4}", last.inner_text())
    page.wait_for_function("() => /^cache warm: [0-4]:\\d\\d left$/.test(document.getElementById('cache-status').textContent)")

    # Editing an early message rewrites what followed it; the last user message's edit rewrites no cached turn.
    page.locator(".message-user").first.locator(".action-edit").click()
    warning = page.locator(".message-editor .cache-warning")
    assert re.fullmatch(r"This will rewrite ~[\d,]+ cached tokens: about \$\d+\.\d{4} extra on the next reply\.", warning.inner_text())
    page.click(".message-editor >> text=Cancel")
    page.locator(".message-user").last.locator(".action-edit").click()
    page.wait_for_selector(".message-editor")
    assert page.locator(".message-editor").count() == 1
    assert page.locator(".message-editor .cache-warning").count() == 0
    page.click(".message-editor >> text=Cancel")

    # Another model reads none of this one's cache.
    sent_with = page.input_value("#model-select")
    other = next(model for model in offered_models(page) if model != sent_with)
    page.select_option("#model-select", other)
    assert page.inner_text("#cache-model-warning").startswith("This will rewrite ~")
    page.select_option("#model-select", sent_with)
    assert page.locator("#cache-model-warning").is_hidden()
