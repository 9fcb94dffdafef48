"""Incremental markdown rendering in a real browser: a reply streamed into ChatRender.renderMarkdown piece by piece
keeps its finished blocks' nodes (and a selection in them), highlights a code block once its fence closes, and at
every frame shows exactly what rendering the whole text at once shows.

The chat page's transcript (static/chat/transcript.js) keeps a reply's thinking block and tool steps the same
way: one test streams a reply that thinks and calls the calculator through the real page.

It reuses test_browser.py's server and browser. The page is the server's login page (no sign-up needed) with the
chat page's scripts added from the server's static files, under the server's own Content-Security-Policy: the
renderer under test is the file the chat and shared pages load.
"""

import random

import pytest
from test_browser import browser, page, send, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

SCRIPTS = [
    "vendor/marked-18.2.1/marked.umd.js",
    "vendor/dompurify-3.4.18/purify.min.js",
    "vendor/highlightjs-11.12.0/highlight.min.js",
    "vendor/katex-0.19.1/katex.min.js",
    "chat/render.js",
]

# Every kind of block, and the cases where a later line changes an earlier block: a paragraph a heading could
# interrupt, a loose ordered list whose next item arrives after a blank line, a setext heading, a table, a
# reference-style link used before its definition, display maths, code with and without a language.
CORPUS = r"""# A reply with everything

Intro paragraph with **bold**, `code`, $x^2$ inline and a [reference link][docs] used before its definition.
A second line of the same paragraph.
## A heading right under it

1. first item

2. second item, loose
   - nested bullet with \(\alpha\)
   - another nested one

3. third item

Setext heading
--------------

| name | value |
| --- | ---: |
| alpha | 1 |
| beta | 2 |

> A quote with a [link](https://example.com/quote)
continued lazily.

```python
def total(items):
    return sum(item.cost for item in items)
```

```
plain text, no language
```

$$
\sum_{k=1}^n k = \frac{n(n+1)}{2}
$$

- a list
- that stays tight
  and wraps

12 is a number, and this paragraph follows the list.

    indented code

    after a blank line inside it

Money: $5 or $10, and \$3.

[docs]: https://example.com/docs "The docs"

The end, with www.example.com as a bare link.
"""

HOSTILE = """Hello <img src=x onerror="window.__xss=1"> and <script>window.__xss=2</script>

<a href="javascript:window.__xss=3">raw link</a> then https://example.com/bare

[click](javascript:window.__xss=4) and ![pixel](https://evil.example/p.png?c=1)

<style>body { display: none }</style>

<details open><summary>raw</summary>text</details>

<iframe src="https://evil.example/"></iframe>

```html
<img src=x onerror="window.__xss=5">
```
"""

STREAM = """({ text, cuts, check }) => {
    const container = document.createElement("div");
    container.className = "streamed";
    document.body.append(container);
    const fresh = (prefix) => {
        const other = document.createElement("div");
        ChatRender.renderMarkdown(other, prefix);
        return other.innerHTML;
    };
    const differences = [];
    for (const cut of cuts) {
        ChatRender.renderMarkdown(container, text.slice(0, cut));
        if (check && container.innerHTML !== fresh(text.slice(0, cut))) differences.push(cut);
    }
    return { differences, html: container.innerHTML, whole: fresh(text) };
}"""


@pytest.fixture
def renderer(page, server_url):  # noqa: F811
    page.goto(f"{server_url}/accounts/login/")
    for script in SCRIPTS:
        page.add_script_tag(url=f"{server_url}/static/{script}")
    page.wait_for_function("() => window.ChatRender && window.katex && window.hljs")
    return page


def pieces(text: str, seed: int, largest: int) -> list[int]:
    rng = random.Random(seed)
    cuts, position = [], 0
    while position < len(text):
        position = min(len(text), position + rng.randint(1, largest))
        cuts.append(position)
    return cuts


@pytest.mark.parametrize("seed, largest", [(1, 12), (2, 40), (3, 90)])
def test_every_frame_of_a_streamed_reply_shows_what_rendering_it_whole_shows(renderer, seed, largest):
    result = renderer.evaluate(STREAM, {"text": CORPUS, "cuts": pieces(CORPUS, seed, largest), "check": True})

    assert result["differences"] == []
    assert result["html"] == result["whole"]
    html = result["html"]
    assert '<a href="https://example.com/docs" title="The docs"' in html, (
        "the definition reached the early link"
    )
    assert html.count("<h2>") == 2 and html.count("<ol>") == 1 and html.count("<table>") == 1
    assert "katex-display" in html and 'class="hljs-keyword"' in html


def test_a_reply_streamed_one_character_at_a_time_matches_at_every_frame(renderer):
    result = renderer.evaluate(
        STREAM, {"text": CORPUS, "cuts": list(range(1, len(CORPUS) + 1)), "check": True}
    )

    assert result["differences"] == []


# Lines that change what the lines before them are, joined at random and streamed a character at a time.
TRICKY_LINES = [
    "words and more words",
    "# h",
    "#h",
    "- item",
    "1. item",
    "2. item",
    "3) x",
    "  - nested",
    "   lazy",
    "```py",
    "```",
    "~~~",
    "    code",
    "\tcode",
    "> quote",
    "| a | b |",
    "|---|---|",
    "| 1 | 2 |",
    "$$",
    "x^2",
    "\\[",
    "\\]",
    "[a]: https://e.com/a",
    "[a]",
    "[b][a] ref",
    "[A]: https://e.com/A2 'T'",
    "[constructor]",
    "<div>",
    "</div>",
    "<!--",
    "-->",
    "<a href=x>",
    "</a>",
    "https://x.com",
    "---",
    "===",
    "***",
    "",
    "",
    "",
    "   ",
    "*emph",
    "**b**",
    "$5",
    "$x$ and $y$",
    "* star",
    "+ plus",
    "12",
    "12.",
    "<pre>",
    "</pre>",
    "- [ ] task",
]


@pytest.mark.parametrize("seed", range(6))
def test_random_lines_streamed_one_character_at_a_time_match_at_every_frame(renderer, seed):
    rng = random.Random(seed)
    text = "\n".join(rng.choice(TRICKY_LINES) for _ in range(40))
    result = renderer.evaluate(STREAM, {"text": text, "cuts": list(range(1, len(text) + 1)), "check": True})

    assert result["differences"] == [], text


def test_a_finished_block_keeps_its_node_and_a_selection_in_it_while_the_reply_streams_on(renderer):
    kept = renderer.evaluate(
        """(text) => {
        const container = document.createElement("div");
        document.body.append(container);
        let shown = "";
        const stream = (more) => { shown += more; ChatRender.renderMarkdown(container, shown); };
        stream("First paragraph, finished.\\n\\nSecond");
        const first = container.firstElementChild;
        first.__tagged = "kept";
        const words = first.firstChild;
        getSelection().setBaseAndExtent(words, 6, words, 15);
        for (const piece of text.match(/[\\s\\S]{1,30}/g)) stream(piece);
        return {
            same: container.firstElementChild === first && first.__tagged === "kept",
            connected: words.isConnected,
            selected: getSelection().toString(),
            blocks: container.children.length,
        };
    }""",
        " paragraph grows.\n\n" + CORPUS,
    )

    assert kept["same"] and kept["connected"]
    assert kept["selected"] == "paragraph"
    assert kept["blocks"] > 15


def test_a_code_block_is_highlighted_once_its_fence_closes_and_never_while_it_streams(renderer):
    states = renderer.evaluate(
        """() => {
        const container = document.createElement("div");
        document.body.append(container);
        const state = (text) => {
            ChatRender.renderMarkdown(container, text);
            const code = container.querySelector("pre code");
            return {
                open: code.parentElement.classList.contains("code-open"),
                spans: code.querySelectorAll("[class^=hljs-]").length,
                text: code.textContent,
                label: (container.querySelector(".code-language") || {}).textContent || "",
            };
        };
        const opening = "Code:\\n\\n```python\\ndef f(x):\\n    return x + 1\\n";
        return {
            streaming: state(opening),
            closed: state(opening + "```"),
            after: state(opening + "```\\n\\nAnd text after it."),
            plainStreaming: state("Code:\\n\\n```\\ndef f(x):\\n    return x"),
            plainClosed: state("Code:\\n\\n```\\ndef f(x):\\n    return x\\n```\\n\\nAfter."),
        };
    }"""
    )

    streaming, closed, after = states["streaming"], states["closed"], states["after"]
    assert streaming["open"] and streaming["spans"] == 0 and streaming["label"] == "python"
    assert streaming["text"] == "def f(x):\n    return x + 1\n"
    assert not closed["open"] and closed["spans"] > 0 and closed["text"] == streaming["text"]
    assert after["spans"] == closed["spans"]
    assert states["plainStreaming"]["spans"] == 0
    assert states["plainClosed"]["spans"] == 0 and not states["plainClosed"]["open"], (
        "no language: never guessed"
    )


def test_a_text_that_does_not_continue_the_last_one_starts_over(renderer):
    result = renderer.evaluate(
        """() => {
        const container = document.createElement("div");
        ChatRender.renderMarkdown(container, "One.\\n\\nTwo.\\n\\nThree");
        const kept = container.firstElementChild;
        ChatRender.renderMarkdown(container, "One.\\n\\nAnother two.\\n\\nThree");
        const fresh = document.createElement("div");
        ChatRender.renderMarkdown(fresh, "One.\\n\\nAnother two.\\n\\nThree");
        return { html: container.innerHTML, fresh: fresh.innerHTML, kept: container.firstElementChild === kept };
    }"""
    )

    assert result["html"] == result["fresh"]
    assert result["kept"], "a block whose HTML did not change keeps its node across a restart"


def test_hostile_input_streamed_in_pieces_stays_inert(renderer):
    result = renderer.evaluate(STREAM, {"text": HOSTILE, "cuts": pieces(HOSTILE, 4, 25), "check": True})
    found = renderer.evaluate(
        """() => ({
        xss: window.__xss,
        active: document.querySelectorAll(".streamed :is(img, script, style, iframe, details, form)").length,
        links: document.querySelectorAll(".streamed a").length,
        scriptLinks: [...document.querySelectorAll(".streamed a")].filter((a) => /^javascript:/i.test(a.getAttribute("href") || "")).length,
        unsafeLinks: [...document.querySelectorAll(".streamed a[href]")].filter((a) => a.rel !== "noopener noreferrer").length,
        styled: document.querySelectorAll(".streamed [style]").length,
    })"""
    )

    assert result["differences"] == []
    assert found == {"xss": None, "active": 0, "links": 3, "scriptLinks": 0, "unsafeLinks": 0, "styled": 0}
    assert "&lt;img src=x onerror" in result["html"], "raw HTML is shown as text"
    assert '<a href="https://example.com/bare"' in result["html"], (
        "links: the bare URL, the image, javascript: stripped"
    )


# The offline model thinks when the conversation asks for it, calls the calculator for "17*23", and quotes the
# question in its answer: its thinking quotes the first line, the answer every line, so both stream for seconds.
THINKING_QUESTION = (
    "What is 17*23? "
    + "Think it over slowly and say every step of it. " * 16
    + "\n"
    + "\n".join(["Then quote this line back to me, word for word, as it is."] * 30)
)
STREAMING_REPLY = ".message-assistant[data-status=streaming]"

# Selects `start`..`end` of the text node under `selector` in the streaming reply (its first text node when
# `end` is null: all of it), and keeps the reply, the block and the node in `window.__kept`.
SELECT = """({ selector, start, end }) => {
    const reply = document.querySelector(".message-assistant[data-status=streaming]");
    const block = reply.querySelector(selector);
    const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
    const text = walker.nextNode();
    const range = document.createRange();
    range.setStart(text, start);
    range.setEnd(text, end === null ? text.data.length : end);
    const selection = document.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    window.__kept = { reply, block, text };
    return { selected: selection.toString(), length: reply.querySelector(".message-body").textContent.length };
}"""

# What is left of the kept block and the selection in it.
KEPT = """(selector) => {
    const { reply, block, text } = window.__kept;
    const selection = document.getSelection();
    const range = selection.rangeCount ? selection.getRangeAt(0) : null;
    return {
        sameBlock: reply.querySelector(selector) === block && block.isConnected,
        sameText: block.contains(text),
        open: block.closest("details").open,
        selected: selection.toString(),
        inBlock: Boolean(range) && block.contains(range.startContainer) && block.contains(range.endContainer),
        status: reply.dataset.status,
        length: reply.querySelector(".message-body").textContent.length,
    };
}"""


def grown_past(tab, length):
    tab.wait_for_function(
        "length => window.__kept.reply.querySelector('.message-body').textContent.length > length", arg=length
    )


def test_a_selection_in_a_streaming_replys_thinking_and_tool_step_survives_the_frames_after(page, server_url):  # noqa: F811
    """Thinking and tool steps are kept by block index (static/chat/transcript.js): thinking text grows in its one
    text node, and a step is rebuilt only when its input, result or state changes; so the frames that follow
    leave their nodes, and a selection in them, in place."""
    sign_up_and_start_a_chat(page, server_url, "keepsthinking")
    send(page, "Hello")
    page.wait_for_selector(".message-assistant[data-status=complete] .action-regenerate")
    # Thinking is a conversation's setting, so from its second message on.
    page.click("#settings-button")
    page.locator("#settings-dialog select").select_option("high")
    page.locator("#settings-dialog button[type=submit]").click()
    page.wait_for_selector(".message-assistant[data-status=complete] .action-regenerate")
    send(page, THINKING_QUESTION)

    # The thinking block while it streams: opened, part of its text selected.
    page.wait_for_function(
        """() => {
        const text = document.querySelector(
            ".message-assistant[data-status=streaming] details.thinking .thinking-text");
        return text && text.textContent.length >= 60;
    }"""
    )
    page.locator(STREAMING_REPLY).locator("details.thinking summary").first.click()
    picked = page.evaluate(SELECT, {"selector": "details.thinking .thinking-text", "start": 5, "end": 45})
    assert len(picked["selected"]) == 40
    # More frames: the thinking goes on, then the calculator's step comes, with its result.
    page.locator(STREAMING_REPLY).locator("details.tool-step.tool-done").wait_for(timeout=30_000)
    kept = page.evaluate(KEPT, "details.thinking .thinking-text")
    assert kept["length"] > picked["length"] + 100, "frames were rendered after the selection"
    assert kept["sameBlock"] and kept["sameText"] and kept["open"], "the thinking block is the same node"
    assert kept["selected"] == picked["selected"] and kept["inBlock"], "the selection in the thinking stays"

    # The calculator's step, opened, its result selected; the answer then streams on to the end.
    page.locator(STREAMING_REPLY).locator("details.tool-step summary").click()
    picked = page.evaluate(
        SELECT, {"selector": "details.tool-step .tool-io:last-child", "start": 0, "end": None}
    )
    assert picked["selected"] == "391"
    grown_past(page, picked["length"] + 200)
    kept = page.evaluate(KEPT, "details.tool-step .tool-io:last-child")
    assert kept["status"] == "streaming", "still streaming: the frames checked are a streaming reply's"
    assert kept["sameBlock"] and kept["sameText"] and kept["open"], (
        "the tool step is the same node, still open"
    )
    assert kept["selected"] == "391" and kept["inBlock"], "the selection in the tool step stays"

    # The reply's last frame and snapshot show the step as it was: it stays too.
    page.wait_for_selector(".message-assistant[data-status=complete] .action-regenerate", timeout=30_000)
    kept = page.evaluate(KEPT, "details.tool-step .tool-io:last-child")
    assert kept["status"] == "complete"
    assert kept["sameBlock"] and kept["open"] and kept["selected"] == "391" and kept["inBlock"]
    assert page.locator(".message-assistant").last.locator("details.thinking").count() == 2
