/*
 * How a message's parts look, for the two pages that show messages: the chat page (static/chat/transcript.js) and
 * a shared conversation (static/chat/shared.js). One global, `ChatRender`, so both render replies the same way
 * and a fix to the sanitizing reaches both.
 *
 * Replies are markdown turned into HTML by marked, with anything active removed by DOMPurify, code coloured
 * by highlight.js, maths typeset by KaTeX and ```mermaid blocks drawn in a sandboxed frame (the vendored
 * scripts, loaded before this one; mermaid only inside that frame, templates/chat/diagram.html). Plain browser
 * JavaScript with no build step, a classic script loaded (`defer`) before the page's own; nothing runs inline,
 * so the pages work under the strict Content-Security-Policy.
 */
"use strict";

window.ChatRender = (function () {
  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function escapeHtml(text) {
    return text
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;");
  }

  // Links in replies open in a new tab without handing the page to the target, and without a referrer: on a
  // shared page the Referer would carry the share's token.
  function hardenLinks(node) {
    if (node.tagName === "A" && node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  }

  const SANITIZE_OPTIONS = {
    USE_PROFILES: { html: true }, // no SVG or MathML
    FORBID_TAGS: ["style", "img", "form"],
    FORBID_ATTR: ["style"],
    ALLOW_DATA_ATTR: false,
  };

  // KaTeX's own output, typeset after the markdown was sanitized: its spans, the MathML that screen readers
  // read (with the TeX as its annotation, which DOMPurify's MathML profile leaves out), the SVG of stretchy
  // symbols, and the inline styles it sets through the DOM (which the CSP allows, unlike `style` attributes in
  // markup). `trust: false` already refuses \href, \url and \html*.
  const MATH_SANITIZE_OPTIONS = {
    USE_PROFILES: { html: true, mathMl: true, svg: true },
    ADD_TAGS: ["semantics", "annotation"],
    ADD_ATTR: ["encoding"],
    FORBID_TAGS: ["style", "img", "form", "a"],
    ALLOW_DATA_ATTR: false,
    IN_PLACE: true,
  };
  const KATEX_OPTIONS = { throwOnError: true, trust: false, strict: "ignore", output: "htmlAndMathml" };

  // Maths is taken out of the markdown before marked's own rules see it: they would eat TeX's backslashes
  // (`\{` becomes `{`, `\\` becomes `\`) and read `_` and `*` as emphasis. Both delimiters must be there, so
  // while a reply streams an unfinished `$$` block stays text until its closing `$$` arrives. A `$` opens
  // inline maths only before a non-space and closes only after one, and not before a digit: "$5 and $10"
  // stays money. The kind names the delimiters, to show the source as typed when it is not valid TeX.
  const MATH_DELIMITERS = {
    dollars: ["$$", "$$"],
    brackets: ["\\[", "\\]"],
    parens: ["\\(", "\\)"],
    dollar: ["$", "$"],
  };
  // Display maths holds no blank line (TeX refuses one there too): a blank line ends a block, which is what lets
  // renderMarkdown keep the blocks before it as they are.
  const BLOCK_MATH = /^ {0,3}(?:\$\$((?:(?!\n[ \t]*\n)[\s\S])+?)\$\$|\\\[((?:(?!\n[ \t]*\n)[\s\S])+?)\\\])[ \t]*(?:\n+|$)/;
  const INLINE_MATH =
    /^(?:\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|\\\(([\s\S]+?)\\\)|\$(?![\s$])((?:\\[\s\S]|[^\\$\n])+?)(?<!\s)\$(?!\d))/;
  const MATH_KINDS = Object.keys(MATH_DELIMITERS); // in the order of the patterns' groups

  function mathToken(type, match) {
    const group = match.slice(1).findIndex((text) => text !== undefined);
    const kind = MATH_KINDS[group];
    return { type, raw: match[0], text: match[group + 1].trim(), kind };
  }

  function mathHtml(tag, display, { text, kind }) {
    const classes = `math math-${kind}${display ? " math-display" : ""}`;
    return `<${tag} class="${classes}">${escapeHtml(text)}</${tag}>`;
  }

  const MATH_EXTENSIONS = [
    {
      name: "blockMath",
      level: "block",
      tokenizer(src) {
        const match = BLOCK_MATH.exec(src);
        return match ? mathToken("blockMath", match) : undefined;
      },
      renderer: (token) => mathHtml("div", true, token) + "\n",
    },
    {
      name: "inlineMath",
      level: "inline",
      start(src) {
        const index = src.search(/\$|\\[([]/);
        return index < 0 ? undefined : index;
      },
      tokenizer(src) {
        const match = INLINE_MATH.exec(src);
        return match ? mathToken("inlineMath", match) : undefined;
      },
      renderer: (token) => mathHtml("span", token.kind === "dollars" || token.kind === "brackets", token),
    },
  ];

  // Whether a fenced code block has its closing fence yet: while a reply streams, the block grows until it does.
  function fenceClosed(raw) {
    const fence = /^ {0,3}(`{3,}|~{3,})/.exec(raw);
    if (!fence) return true; // an indented block has no fence to wait for
    const lines = raw.trimEnd().split("\n");
    const closing = new RegExp(`^ {0,3}${fence[1][0] === "`" ? "`" : "~"}{${fence[1].length},}[ \\t]*$`);
    return lines.length > 1 && closing.test(lines[lines.length - 1]);
  }

  function createMarkdown() {
    DOMPurify.addHook("afterSanitizeAttributes", hardenLinks);
    const markdown = new marked.Marked({
      gfm: true,
      renderer: {
        // Raw HTML in a reply is shown as text, the way the user or the model typed it: a reply quoting
        // `<img onerror=...>` must display it, not run it.
        html: ({ text }) => escapeHtml(text),
        // Remote images would load without a click and can carry data out in their URL (a prompt injection
        // in an uploaded document could ask for that), so an image becomes a plain link.
        image: ({ href, text }) => `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`,
        // A fence still waiting for its closing line is `.code-open`: shown as typed, never highlighted (the
        // highlighter would redo the whole block every frame, and guess wrong on half a line). A finished
        // ```mermaid block becomes a diagram (`renderDiagram`); any other is marked's own code block (false).
        code: ({ lang, raw, text }) => {
          const language = (lang || "").match(/^\S*/)[0];
          if (!fenceClosed(raw)) {
            const label = language ? ` class="language-${escapeHtml(language)}"` : "";
            return `<pre class="code-open"><code${label}>${escapeHtml(text.replace(/\n$/, ""))}\n</code></pre>\n`;
          }
          if (language !== "mermaid") return false;
          return `<div class="diagram"><pre><code class="language-mermaid">${escapeHtml(text)}</code></pre></div>\n`;
        },
      },
    });
    markdown.use({ extensions: MATH_EXTENSIONS });
    return markdown;
  }

  let markdown = null;
  const builtFrom = new WeakMap(); // a rendered top-level node -> the sanitized HTML it was built from
  const streams = new WeakMap(); // a container -> what is committed in it (`renderMarkdown`)

  // Renders `text` into `container`, incrementally: called again with a longer `text` (a streaming reply, once
  // per frame), it renders only what is new. The text is cut into top-level blocks by marked's lexer; the blocks
  // before the last one are finished ("committed"): each is sanitized and enhanced (code highlighted, maths
  // typeset, a diagram's frame made) once, and its nodes stay in the document untouched from then on, so a
  // selection or the focus (a Copy button) inside them survive the frames after. Each call lexes only the
  // text after the committed part, and re-renders only the growing tail. A `text` that does not start with the
  // committed text (an edit, a regenerate, another snapshot) starts over; so does a new or changed reference
  // definition ("[1]: https://...") that an earlier block may use. Either way a node whose HTML did not change
  // is kept, as it is in the tail, so a diagram's frame is not reloaded (a frame taken out of the document is).
  // The result is always what rendering the whole `text` at once gives.
  function renderMarkdown(container, text) {
    markdown = markdown || createMarkdown();
    text = text.replace(/\r\n?/g, "\n"); // as marked's lexer does, so that token lengths are offsets in `text`
    let state = streams.get(container);
    if (!state || !text.startsWith(state.source) || container.childNodes.length !== state.kept + state.tail.length) {
      state = newStream(container);
    }
    const lexer = new markdown.Lexer(markdown.defaults);
    Object.assign(lexer.tokens.links, state.links);
    lexer.state.inLink = state.inLink;
    const tokens = lexer.lex(text.slice(state.source.length));
    if (state.source && linksChanged(state, lexer.tokens.links)) {
      streams.delete(container);
      return renderMarkdown(container, text);
    }
    state.applied = Object.assign(Object.create(null), lexer.tokens.links);

    const settled = committedCount(tokens);
    const nodes = [];
    let settledNodes = 0;
    tokens.forEach((token, index) => {
      for (const node of blockNodes(token)) {
        const old = state.tail[nodes.length];
        nodes.push(old && builtFrom.get(old) === builtFrom.get(node) ? old : enhanced(node));
      }
      if (index < settled) settledNodes = nodes.length;
    });
    replaceTail(container, state.tail, nodes);

    const committed = tokens.slice(0, settled);
    state.source += committed.map((token) => token.raw).join("");
    for (const token of committed) collectDefinitions(token, state.links);
    state.inLink = inLinkAfter(committed, state.inLink);
    state.kept += settledNodes;
    state.tail = nodes.slice(settledNodes);
  }

  function newStream(container) {
    const state = {
      source: "", // the committed text: always a prefix of the text rendered
      kept: 0, // how many of the container's first children render it
      tail: [...container.childNodes], // the children after them (at a restart, all: kept if unchanged)
      links: Object.create(null), // the reference definitions in the committed text, the first of each label
      applied: Object.create(null), // every definition the committed blocks were rendered with
      inLink: false, // the lexer's state after the committed text (an unclosed raw <a> stops autolinks)
    };
    streams.set(container, state);
    return state;
  }

  // How many of `tokens` are finished. The last block is not: it may still grow. Nor is anything that a later
  // line could still join: a block is finished only where a blank line ends it (a line can continue the
  // paragraph above it, or turn it into a heading or a table), and a list stays open while the block after it is
  // the last one (its first line, "2" becoming "2.", can still continue the list). "space" tokens hold the blank
  // lines; a fence or a raw HTML block still open runs to the end of the text, so it is the last block.
  function committedCount(tokens) {
    let last = tokens.length - 1;
    while (last >= 0 && tokens[last].type === "space") last -= 1;
    let before = last - 1;
    while (before >= 0 && tokens[before].type === "space") before -= 1;
    const limit = before >= 0 && tokens[before].type === "list" ? before : last;
    let count = 0;
    for (let index = 0; index < limit; index += 1) {
      if (/\n[ \t]*\n[ \t]*$/.test(tokens[index].raw)) count = index + 1;
    }
    return count;
  }

  // A definition the committed blocks did not see, or saw with another URL, may change how one of them renders
  // (an earlier "[text][1]" becomes a link): start over when one appears whose label the committed text mentions.
  // A definition that is still being written changes on every frame, so this is checked against what was
  // applied, not only against the committed definitions.
  function linksChanged(state, links) {
    const changed = new Set();
    for (const label of Object.keys(links)) {
      const was = state.applied[label];
      if (!was || was.href !== links[label].href || was.title !== links[label].title) changed.add(label);
    }
    for (const label of Object.keys(state.applied)) if (!links[label]) changed.add(label);
    if (!changed.size) return false;
    const folded = state.source.replace(/\s+/g, " ").toLowerCase();
    return [...changed].some((label) => folded.includes(label));
  }

  function collectDefinitions(token, links) {
    markdown.walkTokens([token], (child) => {
      if (child.type === "def" && !links[child.tag]) links[child.tag] = { href: child.href, title: child.title };
    });
  }

  // marked's lexer carries one thing from a block to the next: whether a raw `<a>` is still open (no bare URL is
  // made a link inside one). Raw HTML tokens record it; a markdown link puts it back as it found it.
  function inLinkAfter(tokens, inLink) {
    for (const token of tokens) {
      if (token.type === "html" && token.block === false) inLink = token.inLink;
      else if (token.type !== "link") for (const children of childTokens(token)) inLink = inLinkAfter(children, inLink);
    }
    return inLink;
  }

  function childTokens(token) {
    if (token.type === "list") return token.items.map((item) => item.tokens);
    if (token.type === "table") return [...token.header, ...token.rows.flat()].map((cell) => cell.tokens);
    return token.tokens ? [token.tokens] : [];
  }

  // One block's nodes, sanitized (DOMPurify on this block's HTML only), each remembering the HTML it came from.
  function blockNodes(token) {
    const html = markdown.parser([token]);
    if (!html) return [];
    const fragment = DOMPurify.sanitize(html, { ...SANITIZE_OPTIONS, RETURN_DOM_FRAGMENT: true });
    return [...fragment.childNodes].map((node) => {
      builtFrom.set(node, node.nodeType === Node.ELEMENT_NODE ? node.outerHTML : node.textContent);
      return node;
    });
  }

  function enhanced(node) {
    if (node.nodeType === Node.ELEMENT_NODE) enhance(node);
    return node;
  }

  // Puts `nodes` in place of `old` at the end of `container`, moving none of those that stay.
  function replaceTail(container, old, nodes) {
    const wanted = new Set(nodes);
    for (const node of old) if (!wanted.has(node)) node.remove();
    let cursor = old.find((node) => wanted.has(node)) || null;
    for (const node of nodes) {
      if (node === cursor) cursor = cursor.nextSibling;
      else container.insertBefore(node, cursor);
    }
  }

  // Makes `nodes` the children of `parent`, in order, without moving those already there in that order.
  function setChildren(parent, nodes) {
    const wanted = new Set(nodes);
    for (const child of [...parent.childNodes]) if (!wanted.has(child)) child.remove();
    let cursor = parent.firstChild;
    for (const node of nodes) {
      if (node === cursor) cursor = cursor.nextSibling;
      else parent.insertBefore(node, cursor);
    }
  }

  function within(root, selector) {
    return [...(root.matches(selector) ? [root] : []), ...root.querySelectorAll(selector)];
  }

  function enhance(root) {
    for (const code of within(root, "pre > code")) decorateCode(code);
    for (const math of within(root, ".math")) typeset(math);
    for (const diagram of within(root, ".diagram")) renderDiagram(diagram);
  }

  // Invalid TeX shows its source as typed, with KaTeX's reason on hover; it never throws.
  function typeset(node) {
    const tex = node.textContent;
    const display = node.classList.contains("math-display");
    try {
      katex.render(tex, node, { ...KATEX_OPTIONS, displayMode: display });
      DOMPurify.sanitize(node, MATH_SANITIZE_OPTIONS);
    } catch (error) {
      const kind = MATH_KINDS.find((name) => node.classList.contains(`math-${name}`));
      const [open, close] = MATH_DELIMITERS[kind];
      node.textContent = `${open}${tex}${close}`;
      node.classList.add("math-error");
      node.title = error instanceof katex.ParseError ? error.message : "This maths could not be shown";
    }
  }

  // A code block's language as a label, and a Copy button that is always shown (a touch screen has no hover).
  // Only a finished block in a language highlight.js knows is highlighted, once; a block without a language, or
  // in one it does not know, is shown plain (styled as a highlighted one): guessing the language means trying
  // all 36 on the whole block, which is most of what a long reply used to cost, and often guesses wrong.
  function decorateCode(code) {
    const languageClass = [...code.classList].find((name) => name.startsWith("language-"));
    const language = languageClass ? languageClass.slice("language-".length) : "";
    const finished = !code.parentElement.classList.contains("code-open");
    if (finished && language && language !== "mermaid" && hljs.getLanguage(language)) hljs.highlightElement(code);
    else if (language !== "mermaid") code.classList.add("hljs");
    // A wide line scrolls inside the block: a Tab stop lets the keyboard scroll it too (WCAG 2.1.1).
    code.tabIndex = 0;
    const copy = element("button", "copy-code", "Copy");
    copy.type = "button";
    copy.setAttribute("aria-label", language ? `Copy ${language} code` : "Copy code");
    code.parentElement.prepend(copy);
    if (language) code.parentElement.prepend(element("span", "code-language", language));
  }

  // The pages call this for a click on a code block's "Copy" button (one listener on the transcript).
  function copyCode(button) {
    return copyText(button, button.parentElement.querySelector("code").textContent);
  }

  // Copies `text`, and says so on the button for a moment.
  async function copyText(button, text) {
    const label = (button.dataset.label ||= button.textContent);
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    window.setTimeout(() => (button.textContent = label), 1500);
  }

  // A message as Markdown, the way it was written: its text blocks, without thinking or tool steps.
  function messageMarkdown(message) {
    return message.content
      .filter((block) => block.type === "text" && block.text)
      .map((block) => block.text)
      .join("\n\n");
  }

  // Diagrams are drawn by mermaid in a frame of their own (templates/chat/diagram.html): a sandbox without
  // allow-same-origin, so nothing mermaid makes of a reply can reach this page, its cookies or its socket, and
  // this page's strict policy stays as it is (mermaid needs inline styles). The frame asks for its source with
  // "ready", gets it by postMessage, and answers "rendered" with its height or "failed" with mermaid's reason,
  // when the source is shown instead.
  const DIAGRAM_MAX_HEIGHT = 4000;

  function renderDiagram(diagram) {
    const source = diagram.querySelector("pre");
    const url = document.querySelector('meta[name="chat-diagram-url"]');
    if (!url) return; // a page without the frame shows the source
    listenToDiagrams();
    const frame = element("iframe", "diagram-frame");
    frame.setAttribute("sandbox", "allow-scripts");
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.title = "Diagram";
    frame.src = url.content;
    source.hidden = true;
    const error = element("p", "diagram-error");
    error.hidden = true;
    diagram.prepend(frame, error);
  }

  let listening = false;

  function listenToDiagrams() {
    if (listening) return;
    listening = true;
    window.addEventListener("message", (event) => {
      const frame = [...document.querySelectorAll("iframe.diagram-frame")].find(
        (candidate) => candidate.contentWindow === event.source,
      );
      if (!frame || !event.data || typeof event.data !== "object") return;
      const diagram = frame.parentElement;
      const { type, height, error } = event.data;
      if (type === "ready") {
        event.source.postMessage({ type: "render", source: diagram.querySelector("pre code").textContent }, "*");
      } else if (type === "rendered" && Number.isFinite(height)) {
        frame.style.height = `${Math.min(Math.max(Math.ceil(height), 1), DIAGRAM_MAX_HEIGHT)}px`;
      } else if (type === "failed") {
        frame.remove();
        const shown = diagram.querySelector(".diagram-error");
        shown.textContent = `This diagram could not be drawn: ${String(error || "unknown error").slice(0, 500)}`;
        shown.hidden = false;
        diagram.querySelector("pre").hidden = false;
      }
    });
  }

  // Each attachment links to the URL its payload names (the owner-checked file, or the share's own); images
  // show their thumbnail.
  function renderAttachments(attachments) {
    const list = element("div", "attachments");
    for (const attachment of attachments) {
      const link = element("a", `attachment attachment-${attachment.kind}`);
      link.href = attachment.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.title = attachment.name;
      if (attachment.thumbnail_url) {
        const thumbnail = element("img", "attachment-thumbnail");
        thumbnail.src = attachment.thumbnail_url;
        thumbnail.alt = "";
        link.append(thumbnail);
      }
      link.append(element("span", "attachment-name", attachment.name));
      list.append(link);
    }
    return list;
  }

  // A tool call and its result, collapsed to one line ("calculator · 17*23 → 391"); open, the input and the
  // whole result. Results are text from the tools, shown as text. `streaming`: the reply is still being
  // written (a call without a result is running, not skipped). `openSteps`: a Set of the call ids left open,
  // kept by the caller so that a re-render while streaming keeps them open.
  function renderToolStep(block, result, { streaming = false, openSteps = null } = {}) {
    const { input, text: shownInput } = toolInput(block);
    const argument = typeof input === "string" ? input : Object.values(input).join(", ");
    let state = "running";
    if (result) state = result.is_error ? "error" : "done";
    else if (!streaming) state = "skipped";
    const details = element("details", `tool-step tool-${state}`);
    details.dataset.toolName = block.name || "";
    if (openSteps) {
      details.open = openSteps.has(block.id);
      details.addEventListener("toggle", () => (details.open ? openSteps.add(block.id) : openSteps.delete(block.id)));
    }
    const summary = element("summary", "tool-summary");
    summary.append(element("span", "tool-name", block.name || "tool"));
    if (argument) summary.append(element("span", "tool-argument", argument));
    const outcome = {
      running: "running…",
      done: `→ ${result && firstLine(result.content)}`,
      error: "failed",
      skipped: "not run",
    }[state];
    summary.append(element("span", "tool-outcome", outcome));
    details.append(summary, element("div", "tool-label", "Input"), element("pre", "tool-io", shownInput));
    if (result) {
      const label = result.is_error ? "Error" : "Result";
      details.append(element("div", "tool-label", label), element("pre", "tool-io", result.content || ""));
    }
    return details;
  }

  // A tool call's input, and its text as the step shows it. While the input streams it is JSON text
  // (`partial_json`), shown as it came until it parses; once it is whole (or from a snapshot, an object), the
  // object, indented: so a step looks the same before and after the reply's final snapshot.
  function toolInput(block) {
    let input = block.partial_json !== undefined ? block.partial_json : block.input || {};
    if (typeof input === "string") {
      try {
        const parsed = JSON.parse(input);
        if (parsed && typeof parsed === "object") input = parsed;
      } catch {
        // not whole yet: shown as it is
      }
    }
    return { input, text: typeof input === "string" ? input : JSON.stringify(input, null, 2) };
  }

  function firstLine(text) {
    const line = String(text || "").split("\n")[0];
    return line.length > 60 ? line.slice(0, 59) + "…" : line;
  }

  return {
    element,
    renderMarkdown,
    setChildren,
    copyCode,
    copyText,
    messageMarkdown,
    renderAttachments,
    renderToolStep,
    toolInput,
  };
})();
