/*
 * How a message's parts look, for the two pages that show messages: the chat page (static/chat/chat.js) and a
 * shared conversation (static/chat/shared.js). One global, `ChatRender`, so both render replies the same way
 * and a fix to the sanitizing reaches both.
 *
 * Replies are markdown turned into HTML by marked, with anything active removed by DOMPurify and code coloured
 * by highlight.js (the vendored scripts, loaded before this one). Plain browser JavaScript with no build step,
 * a classic script loaded (`defer`) before the page's own; nothing runs inline, so the pages work under the
 * strict Content-Security-Policy.
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

  function createMarkdown() {
    DOMPurify.addHook("afterSanitizeAttributes", hardenLinks);
    return new marked.Marked({
      gfm: true,
      renderer: {
        // Raw HTML in a reply is shown as text, the way the user or the model typed it: a reply quoting
        // `<img onerror=...>` must display it, not run it.
        html: ({ text }) => escapeHtml(text),
        // Remote images would load without a click and can carry data out in their URL (a prompt injection
        // in an uploaded document could ask for that), so an image becomes a plain link.
        image: ({ href, text }) => `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`,
      },
    });
  }

  let markdown = null;

  function renderMarkdown(container, text) {
    markdown = markdown || createMarkdown();
    container.innerHTML = DOMPurify.sanitize(markdown.parse(text), SANITIZE_OPTIONS);
    for (const code of container.querySelectorAll("pre > code")) highlightCode(code);
  }

  function highlightCode(code) {
    // A language highlight.js does not know would log an error; auto-detection is the better fallback.
    const languageClass = [...code.classList].find((name) => name.startsWith("language-"));
    if (languageClass && !hljs.getLanguage(languageClass.slice("language-".length))) {
      code.classList.remove(languageClass);
    }
    hljs.highlightElement(code);
    const copy = element("button", "copy-code", "Copy");
    copy.type = "button";
    copy.setAttribute("aria-label", "Copy code");
    code.parentElement.prepend(copy);
  }

  // The pages call this for a click on a code block's "Copy" button (one listener on the transcript).
  async function copyCode(button) {
    const code = button.parentElement.querySelector("code");
    try {
      await navigator.clipboard.writeText(code.textContent);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    window.setTimeout(() => (button.textContent = "Copy"), 1500);
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
    // While the input streams it is JSON text (`partial_json`); once the response is complete, an object.
    const input = block.partial_json !== undefined ? block.partial_json : block.input || {};
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
    const shownInput = typeof input === "string" ? input : JSON.stringify(input, null, 2);
    details.append(summary, element("div", "tool-label", "Input"), element("pre", "tool-io", shownInput));
    if (result) {
      const label = result.is_error ? "Error" : "Result";
      details.append(element("div", "tool-label", label), element("pre", "tool-io", result.content || ""));
    }
    return details;
  }

  function firstLine(text) {
    const line = String(text || "").split("\n")[0];
    return line.length > 60 ? line.slice(0, 59) + "…" : line;
  }

  return { element, renderMarkdown, copyCode, renderAttachments, renderToolStep };
})();
