"""Numbers that are right, in a real browser: a reply's tokens count its cached input, the header's
conversation cost is counted once after Continue, a reply cut at its length limit says so, the composer
shows the system prompt, the thinking level and the chosen model's description, and the admin's ledger fits
a laptop screen.

The server is uvicorn with DEBUG on, as tests/test_browser.py starts it, with the offline model, replies
capped at a few tokens (CHAT_MAX_OUTPUT_TOKENS) so that every reply stops at its length limit, and a superuser made by
`manage.py createsuperuser`.
"""

import re
import subprocess
import sys

import pytest
from cluster import ROOT, AppServer, migrate, server_env
from test_browser import browser, page, require_browser, send, sign_up_and_start_a_chat  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

ADMIN, ADMIN_PASSWORD = "boss", "a-long-passphrase-for-number-tests"
MAX_OUTPUT_TOKENS = 30
DONE = 30_000  # a whole reply from the offline model
LAST_REPLY = ".message-assistant >> nth=-1"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    require_browser()
    workdir = tmp_path_factory.mktemp("browser-numbers-server")
    env = server_env(
        DJANGO_DEBUG="1", DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        DJANGO_MEDIA_ROOT=str(workdir / "media"), REDIS_URL="", OFFLINE_MODEL_TOKENS_PER_SECOND=100,
        CHAT_MAX_OUTPUT_TOKENS=MAX_OUTPUT_TOKENS,
    )
    migrate(env)
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--no-input", "--username", ADMIN,
         "--email", "boss@example.com"],
        cwd=ROOT, env={**env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD}, check=True, timeout=120,
    )
    server = AppServer(env, workdir, "server").start()
    try:
        yield server.url
    finally:
        server.stop()


def wait_until_settled(page):
    page.wait_for_function(
        """() => {
        const replies = document.querySelectorAll(".message-assistant");
        const last = replies[replies.length - 1];
        return last && last.dataset.status !== "streaming" && !document.getElementById("send-button").hidden;
    }""",
        timeout=DONE,
    )


def dollars(text: str) -> float:
    return float(re.search(r"\$(\d+\.\d+)", text).group(1))


def header_cost(page) -> float:
    return dollars(page.locator("#conversation-cost").inner_text())


def message_costs(page) -> list[float]:
    return [dollars(text) for text in page.locator(".message-assistant .message-stats").all_inner_texts()]


def test_a_continued_reply_is_counted_once_in_the_header(page, server_url):
    sign_up_and_start_a_chat(page, server_url, "continuer")
    send(page, "Tell me everything about B-trees.")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)
    wait_until_settled(page)

    reply = page.locator(LAST_REPLY)
    note = reply.locator(".length-note")
    assert note.is_visible() and note.inner_text() == "Stopped at the length limit."
    continue_button = reply.locator(".action-continue")
    assert continue_button.is_visible()
    assert note.evaluate("(note) => note.nextElementSibling.classList.contains('action-continue')")
    first_part = message_costs(page)
    assert header_cost(page) == sum(first_part) > 0

    continue_button.click()
    page.wait_for_selector(".message-assistant[data-status=streaming]", timeout=DONE)
    wait_until_settled(page)

    (continued,) = message_costs(page)
    assert continued > first_part[0], "a continued reply costs its first part and its continuation"
    assert header_cost(page) == continued, "the header replaces the reply's cost, it does not add it again"
    page.reload()
    page.wait_for_selector(".message-assistant[data-status=complete]")
    assert header_cost(page) == continued == sum(message_costs(page))


def test_a_long_prompt_reads_as_input_with_its_cached_part(page, server_url):
    sign_up_and_start_a_chat(page, server_url, "longprompt")
    prompt = ("Here is a long document to read carefully, sentence after sentence. " * 270)[:18_000]

    send(page, prompt)
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)

    stats = page.locator(LAST_REPLY).locator(".message-stats").inner_text()
    tokens_in = re.search(r"([\d,]+) in \(([\d,]+) (cached|written to cache)", stats)
    assert tokens_in, f"input with its cached part: {stats}"
    total, cached = (int(group.replace(",", "")) for group in tokens_in.group(1, 2))
    assert total >= cached > 3_000, "an 18,000-character prompt is thousands of input tokens, not 0"
    assert " out" in stats


def test_the_composer_shows_the_system_prompt_thinking_and_the_models_description(page, server_url):
    sign_up_and_start_a_chat(page, server_url, "describer")
    # The settings are the conversation's: shown once the first message has created it.
    assert page.locator("#settings-summary").is_hidden()
    send(page, "Hello")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)

    summary = page.locator("#settings-summary")
    assert summary.inner_text() == "System prompt: none · Thinking: Off"
    summary.click()
    dialog = page.locator("#settings-dialog")
    assert dialog.is_visible()
    dialog.locator("textarea").fill("You are a terse reviewer.\nAlways cite line numbers.")
    dialog.locator("select").select_option("high")
    dialog.locator("button[type=submit]").click()
    page.wait_for_selector("#chat")
    summary = page.locator("#settings-summary").inner_text()
    assert summary == "System prompt: You are a terse reviewer. · Thinking: High"

    page.select_option("#model-select", "claude-haiku-4-5")
    description = page.locator("#model-description").inner_text()
    assert description.startswith("Claude Haiku 4.5: The fastest and cheapest")
    assert "$1 in / $5 out per million tokens" in description and "images, PDFs" in description
    page.select_option("#model-select", "auto")
    assert page.locator("#model-description").inner_text().startswith("Auto: Picks a model for each message")


def test_the_ledger_fits_a_laptop_screen(page, server_url):
    page.goto(f"{server_url}/accounts/login/")
    page.fill("#id_username", ADMIN)
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server_url}/")
    page.wait_for_selector("#chat")
    send(page, "What is a B-tree?")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)

    page.goto(f"{server_url}/admin/chat/apicall/")

    widths = page.evaluate("""() => ({
        viewport: document.documentElement.clientWidth,
        table: document.getElementById("result_list").getBoundingClientRect().right,
        cost: document.querySelector("#result_list .column-cost_shown").getBoundingClientRect().right,
        latency: document.querySelector("#result_list .column-latency").getBoundingClientRect().right,
        results: document.querySelector("#changelist .results").getBoundingClientRect().right,
    })""")
    assert widths["table"] <= widths["viewport"], widths
    assert widths["table"] <= widths["results"], f"the list scrolls sideways in its box: {widths}"
    assert max(widths["cost"], widths["latency"]) <= min(widths["viewport"], widths["results"]), widths
    cost = page.locator("#result_list tbody td.field-cost_shown").first.inner_text()
    assert re.fullmatch(r"\$\d+\.\d{4,6}", cost), cost
