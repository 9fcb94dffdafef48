"""Maths, diagrams and copying in a real browser: KaTeX typesets TeX with its backslashes intact, ```mermaid
blocks are drawn in their sandboxed frame (or show their source and mermaid's reason), and Copy puts a message's
Markdown or a code block's code on the clipboard.

It reuses test_browser.py's server and browser (Debian's Chromium, a DEBUG server on a throwaway database, the
offline model, whose reply quotes the question: the maths and diagrams typed arrive back in a real reply).
"""

import pytest
from test_browser import browser, send, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model
LAST_REPLY = ".message-assistant >> nth=-1"
EULER = r"$e^{i\pi}+1=0$"
DIAGRAM = "```mermaid\ngraph TD\n  Start[Question] --> Finish[Answer]\n```"
BROKEN_DIAGRAM = "```mermaid\nthis is not a diagram at all\n```"


@pytest.fixture
def page(browser):  # noqa: F811
    """A fresh profile that may use the clipboard, on a touch screen (no hover); every console message kept,
    the diagram frames' included, and uncaught page errors fail the test."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, has_touch=True, permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors, page.console_seen = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: page.console_seen.append(message.text))
    yield page
    context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


def clipboard(page) -> str:
    return page.evaluate("navigator.clipboard.readText()")


def refused(page) -> list[str]:
    """What the Content-Security-Policy refused, in the page or its frames (Chromium says so on the console)."""
    return [text for text in page.console_seen if "Content Security Policy" in text or "Refused to" in text]


def ask(page, text):
    send(page, text)
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)
    return page.locator(LAST_REPLY)


def test_katex_renders_the_maths_of_a_reply_with_its_backslashes_intact(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "mathematician")
    reply = ask(page, f"Euler: {EULER} and money: $5 or $10")

    maths = reply.locator(".markdown .katex")
    assert maths.count() == 1, "one formula; the prices stay text"
    assert maths.locator("annotation[encoding='application/x-tex']").text_content() == r"e^{i\pi}+1=0"
    assert "π" in maths.locator(".katex-html").inner_text(), "\\pi was typeset, not eaten by markdown"
    assert "$5 or $10" in reply.locator(".markdown blockquote").inner_text()
    assert page.locator(".message-user .user-text").inner_text() == f"Euler: {EULER} and money: $5 or $10"
    assert refused(page) == []


def test_the_renderer_handles_every_delimiter_invalid_tex_and_an_unfinished_block(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "typesetter")
    rendered = page.evaluate(
        r"""() => {
        const shown = (text) => {
            const container = document.createElement("div");
            ChatRender.renderMarkdown(container, text);
            return {
                inline: container.querySelectorAll(".katex:not(.katex-display .katex)").length,
                display: container.querySelectorAll(".katex-display").length,
                errors: [...container.querySelectorAll(".math-error")].map((node) => [node.textContent, node.title]),
                tex: [...container.querySelectorAll("annotation")].map((node) => node.textContent),
                text: container.textContent,
                links: container.querySelectorAll("a").length,
            };
        };
        return {
            delimiters: shown(
                "Inline \\(\\{a_1, a_2\\}\\) and $x_1 * y_2 * z$.\n\n$$\n\\sum_{k=1}^n k\n$$\n\n\\[\\sqrt{2}\\]"
            ),
            invalid: shown("Broken: $\\frac{1$ and fine: $y$"),
            streaming: shown("Almost:\n\n$$\n\\int_0^1 x\\,dx"),
            finished: shown("Almost:\n\n$$\n\\int_0^1 x\\,dx\n$$"),
            code: shown("`$x$` and\n\n```\n$$y$$\n```"),
            escaped: shown("A dollar: \\$3 and \\$4"),
            untrusted: shown("$\\href{javascript:alert(1)}{x}$ and $\\url{https://example.com}$"),
        };
    }"""
    )
    delimiters = rendered["delimiters"]
    assert (delimiters["inline"], delimiters["display"]) == (2, 2)
    assert delimiters["tex"] == [r"\{a_1, a_2\}", "x_1 * y_2 * z", r"\sum_{k=1}^n k", r"\sqrt{2}"]
    assert rendered["invalid"]["inline"] == 1, "the valid formula beside it still renders"
    [(source, reason)] = rendered["invalid"]["errors"]
    assert source == r"$\frac{1$" and "KaTeX parse error" in reason
    assert rendered["streaming"]["display"] == 0 and "$$" in rendered["streaming"]["text"], "stays text"
    assert rendered["finished"]["display"] == 1 and rendered["finished"]["tex"] == [r"\int_0^1 x\,dx"]
    assert rendered["code"]["tex"] == [] and "$x$" in rendered["code"]["text"] and "$$y$$" in rendered["code"]["text"]
    assert rendered["escaped"]["tex"] == [] and "$3 and $4" in rendered["escaped"]["text"]
    assert rendered["untrusted"]["links"] == 0, "KaTeX's \\href and \\url are refused (trust: false)"


def test_a_mermaid_block_is_drawn_as_an_svg_inside_its_sandboxed_frame(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "diagrammer")
    page.evaluate(
        """() => {
        window.__diagramLoads = 0;
        const counted = (event) => event.target.matches && event.target.matches("iframe.diagram-frame");
        document.addEventListener("load", (event) => counted(event) && (window.__diagramLoads += 1), true);
    }"""
    )
    reply = ask(page, DIAGRAM)

    frame = reply.locator("iframe.diagram-frame")
    assert frame.get_attribute("sandbox") == "allow-scripts", "no allow-same-origin: an opaque origin"
    svg = page.frame_locator(f"{LAST_REPLY} >> iframe.diagram-frame").locator("svg")
    svg.wait_for()
    assert "Question" in svg.text_content() and "Answer" in svg.text_content()
    page.wait_for_function(
        "() => document.querySelector('.message-assistant:last-child iframe.diagram-frame').offsetHeight > 40"
    )
    assert reply.locator(".diagram pre").is_hidden(), "the source is not shown beside a drawn diagram"
    assert page.evaluate("window.__diagramLoads") == 1, "drawn once: the frames after it kept the frame in place"
    assert page.evaluate(
        """() => {
        const frame = document.querySelector("iframe.diagram-frame");
        try { return frame.contentDocument === null; } catch { return true; }
    }"""
    ), "the page cannot reach into the frame, nor the frame into the page"
    assert refused(page) == [], "the frame's policy allows what mermaid needs, and the page's is untouched"

    page.reload()
    page.frame_locator(f"{LAST_REPLY} >> iframe.diagram-frame").locator("svg").wait_for()


def test_a_broken_mermaid_block_shows_its_source_and_the_error(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "scribbler")
    reply = ask(page, BROKEN_DIAGRAM)

    error = reply.locator(".diagram-error")
    error.wait_for()
    assert "could not be drawn" in error.inner_text()
    assert reply.locator("iframe.diagram-frame").count() == 0
    source = reply.locator(".diagram pre code")
    assert source.is_visible() and source.inner_text() == "this is not a diagram at all"


def test_copy_puts_a_message_and_a_reply_on_the_clipboard_as_markdown_without_tool_steps(
    page, server_url  # noqa: F811
):
    sign_up_and_start_a_chat(page, server_url, "copier")
    question = "what is 17*23, **exactly**?"
    reply = ask(page, question)
    conversation_id = page.locator("#chat").get_attribute("data-conversation-id")
    exported = page.request.get(f"{server_url}/conversations/{conversation_id}/export.json").json()
    content = exported["messages"][-1]["content"]
    assert {"text", "tool_use", "tool_result"} <= {block["type"] for block in content}
    written = "\n\n".join(block["text"] for block in content if block["type"] == "text")

    copy = reply.locator(".message-actions .action-copy")
    assert copy.is_visible(), "shown without hover on a touch screen"
    copy.click()
    page.wait_for_function("() => document.querySelector('.message-assistant .action-copy').textContent === 'Copied'")
    assert clipboard(page) == written
    assert "391" not in clipboard(page).split("\n\n")[0], "the tool's input and result are not copied"

    page.locator(".message-user .action-copy").click()
    assert clipboard(page) == question


def test_a_code_block_shows_its_language_and_a_copy_button_a_touch_user_can_see(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "coder")
    reply = ask(page, "show me some code")

    block = reply.locator(".markdown pre").first
    assert block.locator(".code-language").inner_text() == "python"
    copy = block.locator(".copy-code")
    assert copy.is_visible() and copy.evaluate("(button) => getComputedStyle(button).opacity") == "1"
    assert copy.get_attribute("aria-label") == "Copy python code"
    copy.tap()
    assert clipboard(page) == block.locator("code").inner_text()
    assert clipboard(page).startswith("received = {")


def test_the_shared_page_renders_maths_and_diagrams_too(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "sharesmaths")
    ask(page, f"{EULER}\n\n{DIAGRAM}")
    conversation_id = page.locator("#chat").get_attribute("data-conversation-id")
    page.goto(f"{server_url}/conversations/{conversation_id}/shares/")
    page.select_option("#id_audience", "signed_in")
    page.get_by_role("button", name="Share").click()
    page.goto(page.get_by_label("Link to share 1").input_value())

    reply = page.locator(".message-assistant")
    reply.wait_for()
    annotation = reply.locator(".katex annotation[encoding='application/x-tex']")
    assert annotation.text_content() == r"e^{i\pi}+1=0"
    page.frame_locator(".message-assistant iframe.diagram-frame").locator("svg").wait_for()
    assert refused(page) == []
