"""What one streamed frame of a reply costs the page's main thread, against the reply's length, in real Chromium.

    .venv/bin/python bench/bench_render.py [--render static/chat/render.js] [--kb 64] [--seed 1]
    .venv/bin/python bench/bench_render.py --transcript [static/chat/transcript.js] [--kb 64] [--seed 1]

The page is the renderer the chat and shared pages load (the vendored marked, DOMPurify, highlight.js and KaTeX,
then `--render`, static/chat/render.js by default) on a bare HTML page with the chat page's stylesheets, served by
a tiny local http.server from the repository (the scripts as files, under `script-src 'self'`). A generated reply
(headings, paragraphs with inline maths, bullet and nested lists, an ordered list, a table, fenced code with a
language and without, display maths, a quote) is streamed into one `.markdown` container to `--kb` KB in chunks
of 40-100 characters, one `ChatRender.renderMarkdown(container, text)` per animation frame, as the chat page
calls it.

Per frame, the renderer process's main-thread CPU time (DevTools' `Performance.getMetrics` `ThreadTime`, in
thread ticks: the time the thread ran, not the time it waited for a core): "render call" is the call and the
layout it forces (the chat page reads the scroll position right after), "whole frame" adds the browser's own
style, layout and paint up to the next animation frame. "wall" is performance.now() around the call alone, and a
PerformanceObserver counts long tasks (over 50 ms); both are wall-clock time, which on a loaded machine includes
waiting for a core, so "frames over 50 ms CPU" counts the frames that would be long tasks on an idle one. Each
row: the frames within the last 2 KB below that length (median, worst); the counts are over the whole stretch
since the previous row. What measuring alone costs (frames that render nothing) is printed below the table.
`--json` writes every frame's numbers (script, style and layout time too).

`--transcript` measures the chat page's transcript instead (static/chat/transcript.js with its imports, or the
file given, served in its place; bench/transcript_bench.js drives it): one streaming reply of `--kb` KB in all,
three eighths of it a thinking block, then 20 calculator steps (their input JSON in two frames, each result of
about 1 KB in one), then an answer of the generated markdown above, each in chunks of 40-100 characters. Each
frame applies its parts as frames.js applies a delta frame and renders the transcript at once
(`renderTranscriptNow`: the reply, the composer, the scroll to the end). The rows' "reply length" is the
reply's whole length (thinking, tool steps and answer).

To measure an older renderer: `git show HEAD:static/chat/render.js > /tmp/render_before.js` and pass
`--render /tmp/render_before.js`.
"""

import argparse
import functools
import http.server
import json
import random
import statistics
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

# The browser tests' Chromium and its flags.
from test_browser import launch_chromium

MARKS_KB = (4, 8, 16, 24, 32, 40, 48, 56, 64)
WINDOW = 2048  # the frames within this many characters below a mark make its row

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>render bench</title>
<link rel="stylesheet" href="/static/chat/chat.css">
<link rel="stylesheet" href="/static/vendor/highlightjs-11.12.0/github.min.css">
<link rel="stylesheet" href="/static/vendor/katex-0.19.1/katex.min.css">
<script src="/static/vendor/marked-18.2.1/marked.umd.js" defer></script>
<script src="/static/vendor/dompurify-3.4.18/purify.min.js" defer></script>
<script src="/static/vendor/highlightjs-11.12.0/highlight.min.js" defer></script>
<script src="/static/vendor/katex-0.19.1/katex.min.js" defer></script>
<script src="/bench/render.js" defer></script>
</head><body><main class="message-body"><div class="markdown" id="reply"></div></main></body></html>
"""

# The elements of the chat page that transcript.js and the modules it imports work on.
TRANSCRIPT_PAGE = PAGE.replace(
    '<script src="/bench/render.js" defer></script>',
    '<script src="/bench/render.js" defer></script>\n<script type="module" src="/bench/transcript_bench.js"></script>',
).replace(
    '<main class="message-body"><div class="markdown" id="reply"></div></main>',
    '<main class="chat" id="chat" data-conversation-id="1"><div class="messages" id="messages">'
    '<p id="messages-empty" hidden>Empty</p><div id="message-list" role="log"></div></div>'
    '<form id="composer"><textarea id="composer-input"></textarea><button id="send-button">Send</button>'
    '<button id="stop-button">Stop</button></form><select id="model-select"></select>'
    '<p id="model-description"></p><div id="context-gauge" hidden><meter></meter>'
    '<span class="context-gauge-text"></span></div></main>',
)
TOOL_STEPS = 20
RENDER_TRANSCRIPT = """(frame) => {
    const start = performance.now();
    if (frame) benchTranscriptFrame(frame.parts);
    const rendered = performance.now();
    document.getElementById("message-list").offsetHeight;
    return { length: frame ? frame.length : 0, start, render: rendered - start, frame: performance.now() - start };
}"""

SETUP = """(text) => {
    window.benchText = text;
    window.benchLongTasks = [];
    new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) benchLongTasks.push({ start: entry.startTime, duration: entry.duration });
    }).observe({ type: "longtask", buffered: true });
}"""

# One frame: wait for the next animation frame (in which the browser does the style, layout and paint the last
# render left), then render the text so far and lay it out, as the chat page does in its frame callback.
NEXT_FRAME = "() => new Promise((resolve) => requestAnimationFrame(() => resolve()))"
RENDER = """(cut) => {
    const container = document.getElementById("reply");
    const start = performance.now();
    if (cut) ChatRender.renderMarkdown(container, benchText.slice(0, cut));
    const rendered = performance.now();
    container.offsetHeight;
    return { length: cut, start, render: rendered - start, frame: performance.now() - start };
}"""


def section(index: int, rng: random.Random) -> str:
    """About 1.2 KB of a reply: every kind of block the renderer treats differently."""
    word = ["latency", "budget", "socket", "ledger", "cache", "thread", "frame", "token"][index % 8]
    language = ["python", "javascript", "sql", "bash"][index % 4]
    code = {
        "python": f"def {word}_total(items):\n    total = 0\n    for item in items:\n        total += item.cost * {index}\n    return total\n",
        "javascript": f"function {word}(list) {{\n  const seen = new Map();\n  for (const x of list) seen.set(x.id, x);\n  return [...seen.values()].slice(0, {index});\n}}\n",
        "sql": f"SELECT user_id, SUM(cost) AS total\nFROM ledger\nWHERE kind = '{word}' AND id > {index}\nGROUP BY user_id\nORDER BY total DESC;\n",
        "bash": f"for f in logs/*.txt; do\n  grep -c '{word}' \"$f\"\ndone | sort -n | tail -{index % 9 + 1}\n",
    }[language]
    rows = "\n".join(f"| {word}-{row} | {rng.randint(1, 999)} ms | {rng.random():.3f} |" for row in range(4))
    return (
        f"## {index + 1}. The {word}\n\n"
        f"The **{word}** grows with $n^{{{index % 5 + 2}}}$ while the cost of a frame stays at $O(1)$; see "
        f"[the notes](https://example.com/{word}) and `{word}_total()` for the details, which matter more than "
        f"they look when the reply is long and the reader is scrolling.\n\n"
        f"- first, the {word} is measured\n- then it is *compared* with the target\n"
        f"  - nested: $\\alpha_{index} + \\beta$\n  - nested again, with `code`\n- and last, reported\n\n"
        f"1. Open the page\n2. Stream the reply\n3. Read the table\n\n"
        f"| name | time | share |\n| --- | ---: | ---: |\n{rows}\n\n"
        f"```{language}\n{code}```\n\n"
        f"```\nplain output {index}\n{word}: {rng.randint(1000, 9999)} ok\n```\n\n"
        f"$$\n\\sum_{{k=1}}^{{{index + 2}}} k^2 = \\frac{{n(n+1)(2n+1)}}{{6}}\n$$\n\n"
        f"> A quote about the {word}, with a [link](https://example.com/q{index}) in it.\n\n"
    )


def reply(size: int, seed: int) -> str:
    rng = random.Random(seed)
    parts, length, index = [], 0, 0
    while length < size:
        parts.append(section(index, rng))
        length += len(parts[-1])
        index += 1
    return "".join(parts)[:size]


def transcript_frames(size: int, seed: int) -> list[dict]:
    """The frames of one reply that thinks, calls the calculator TOOL_STEPS times and answers: each frame's
    `parts` (as a delta frame carries them) and the reply's whole length after it."""
    rng = random.Random(seed + 2)
    frames, length = [], 0

    def stream(block: int, opening: dict, text: str, pieces: list[int] | None = None):
        nonlocal length
        previous = 0
        for cut in pieces or cuts(len(text), seed + block):
            length += cut - previous
            frames.append(
                {"parts": [{"block": block, **opening, "text": text[previous:cut]}], "length": length}
            )
            previous = cut

    thinking_size = size * 3 // 8
    thinking = " ".join(
        rng.choice(["I", "will", "check", "the", "sum", "first", "then", "each", "term", "again"])
        for _ in range(thinking_size // 4)
    )[:thinking_size]
    stream(0, {"type": "thinking"}, thinking)
    block = 1
    result_size = size // 4 // TOOL_STEPS
    for step in range(TOOL_STEPS):
        tool_id = f"toolu_bench_{step}"
        arguments = json.dumps({"expression": f"{rng.randint(10, 99)}*{rng.randint(10, 99)}+{step}"})
        stream(
            block,
            {"type": "tool_use", "id": tool_id, "name": "calculator"},
            arguments,
            [len(arguments) // 2, len(arguments)],
        )
        result = "\n".join(f"line {n}: {rng.randint(0, 10**9)}" for n in range(result_size // 16))[
            :result_size
        ]
        stream(block + 1, {"type": "tool_result", "tool_use_id": tool_id}, result, [len(result)])
        block += 2
    answer = reply(size - length, seed)
    stream(block, {"type": "text"}, answer)
    return frames


def cuts(size: int, seed: int) -> list[int]:
    rng = random.Random(seed + 1)
    positions, position = [], 0
    while position < size:
        position = min(size, position + rng.randint(40, 100))
        positions.append(position)
    return positions


class Handler(http.server.SimpleHTTPRequestHandler):
    """The repository's static files, the bench page at /, and the renderer under test at /bench/render.js."""

    def __init__(self, *args, render: Path, transcript: Path | None, **kwargs):
        self.render = render
        self.transcript = transcript
        super().__init__(*args, directory=str(ROOT), **kwargs)

    def do_GET(self):
        if self.path == "/":
            return self.reply(
                (TRANSCRIPT_PAGE if self.transcript else PAGE).encode(), "text/html; charset=utf-8"
            )
        if self.path == "/bench/render.js":
            return self.reply(self.render.read_bytes(), "text/javascript; charset=utf-8")
        if self.path == "/bench/transcript_bench.js":
            return self.reply(
                (ROOT / "bench/transcript_bench.js").read_bytes(), "text/javascript; charset=utf-8"
            )
        if self.transcript and self.path == "/static/chat/transcript.js":
            return self.reply(self.transcript.read_bytes(), "text/javascript; charset=utf-8")
        if not self.path.startswith("/static/"):
            return self.reply(b"", "text/plain")  # the favicon: nothing, rather than an error in the page
        return super().do_GET()

    def end_headers(self):
        self.send_header("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'")
        super().end_headers()

    def reply(self, body: bytes, content_type: str):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def run(render: Path, size: int, seed: int, transcript: Path | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    handler = functools.partial(Handler, render=render, transcript=transcript)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    text = reply(size, seed)
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.set_default_timeout(600_000)
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            page.wait_for_function("() => window.ChatRender && window.katex && window.hljs")
            if transcript:
                page.wait_for_function("() => window.benchTranscriptReady")
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
            page.evaluate(SETUP, text)
            steps = transcript_frames(size, seed) if transcript else cuts(size, seed)
            render_call = RENDER_TRANSCRIPT if transcript else RENDER
            result = {"idle": [stream(page, cdp, 0, render_call) for _ in range(30)]}
            result["frames"] = [stream(page, cdp, step, render_call) for step in steps]
            result["idleAfter"] = [stream(page, cdp, 0, render_call) for _ in range(30)]
            if transcript:
                shown = page.evaluate(
                    "() => [document.querySelectorAll('#message-list details.thinking').length,"
                    " document.querySelectorAll('#message-list details.tool-step.tool-done').length]"
                )
                if shown != [1, TOOL_STEPS]:
                    raise SystemExit(f"the reply did not render its thinking and {TOOL_STEPS} steps: {shown}")
            page.wait_for_timeout(200)
            result["longTasks"] = page.evaluate("benchLongTasks")
            browser.close()
    finally:
        server.shutdown()
    if errors:
        raise SystemExit(f"errors in the page: {errors}")
    return result


METRICS = {
    "ThreadTime": "cpu",
    "ScriptDuration": "script",
    "RecalcStyleDuration": "style",
    "LayoutDuration": "layout",
}


def thread_times(cdp) -> dict:
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return {METRICS[metric["name"]]: metric["value"] for metric in metrics if metric["name"] in METRICS}


def stream(page, cdp, cut, render_call: str = RENDER) -> dict:
    """One frame, with the main thread's CPU time (thread ticks: the time the thread ran, not the time it waited
    for a core, which on a loaded machine is most of the wall-clock time): `call` for the render call and the
    layout it forces, `cpu` for the whole frame (the call, then the browser's style, layout and paint up to the
    next animation frame); script, style and layout are parts of `cpu`."""
    start = thread_times(cdp)
    page.evaluate(NEXT_FRAME)
    before = thread_times(cdp)
    frame = page.evaluate(render_call, cut)
    after = thread_times(cdp)
    frame["call"] = (after["cpu"] - before["cpu"]) * 1000
    page.evaluate(NEXT_FRAME)
    end = thread_times(cdp)
    frame.update({name: (end[name] - start[name]) * 1000 for name in end})
    return frame


def table(result: dict) -> str:
    frames, long_tasks = result["frames"], result["longTasks"]
    lines = [
        (
            "| reply length | frames | render call: CPU median | CPU max | wall median"
            " | whole frame: CPU median | CPU max | frames over 50 ms CPU | long tasks (wall) |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    previous = 0
    for mark in MARKS_KB:
        end = mark * 1024
        window = [frame for frame in frames if end - WINDOW < frame["length"] <= end]
        if not window:
            break
        stretch = [frame for frame in frames if previous < frame["length"] <= end]
        first, last = stretch[0]["start"], stretch[-1]["start"] + stretch[-1]["frame"]
        tasks = [
            task for task in long_tasks if first <= task["start"] + task["duration"] and task["start"] <= last
        ]
        worst = f" (worst {max(task['duration'] for task in tasks):.0f} ms)" if tasks else ""
        median = {
            name: statistics.median(frame[name] for frame in window) for name in ("call", "render", "cpu")
        }
        most = {name: max(frame[name] for frame in window) for name in ("call", "cpu")}
        lines.append(
            f"| {mark} KB | {len(window)} | {median['call']:.1f} ms | {most['call']:.1f} ms | {median['render']:.1f} ms"
            f" | {median['cpu']:.1f} ms | {most['cpu']:.1f} ms | {sum(f['cpu'] > 50 for f in stretch)}"
            f" | {len(tasks)}{worst} |"
        )
        previous = end
    idle = {name: statistics.median(frame[name] for frame in result["idle"]) for name in ("call", "cpu")}
    lines.append("")
    lines.append(
        f"{len(frames)} frames; render calls {sum(f['call'] for f in frames) / 1000:.1f} s of main-thread CPU in all,"
        f" the worst {max(f['call'] for f in frames):.1f} ms; whole frames {sum(f['cpu'] for f in frames) / 1000:.1f} s,"
        f" the worst {max(f['cpu'] for f in frames):.1f} ms; {len(long_tasks)} long tasks. Measuring alone (frames"
        f" that render nothing) costs {idle['call']:.1f} ms a call and {idle['cpu']:.1f} ms a frame."
    )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", type=Path, default=ROOT / "static/chat/render.js")
    parser.add_argument("--kb", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--transcript",
        type=Path,
        nargs="?",
        const=ROOT / "static/chat/transcript.js",
        help="measure the chat page's transcript (this transcript.js) on a reply with thinking and tool steps",
    )
    parser.add_argument("--json", type=Path, help="also write every frame's numbers here")
    args = parser.parse_args()
    transcript = args.transcript.resolve() if args.transcript else None
    result = run(args.render.resolve(), args.kb * 1024, args.seed, transcript)
    if args.json:
        args.json.write_text(json.dumps(result))
    print(table(result))


if __name__ == "__main__":
    main()
