/*
 * The diagram frame (templates/chat/diagram.html, chat/views.py `diagram_frame`): draws one mermaid diagram.
 *
 * The page that frames it (static/chat/render.js) loads it with sandbox="allow-scripts", so this document has
 * an opaque origin: it cannot read that page, its cookies or its storage, whatever mermaid makes of a reply.
 * It says "ready", takes the source from the first "render" message of its parent, and answers "rendered"
 * with the height it needs (again when a resize changes it) or "failed" with mermaid's reason.
 */
"use strict";

(function () {
  const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
  // "strict": labels are text (no HTML), and click handlers and links in the source are ignored.
  mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: dark ? "dark" : "default" });
  const shown = document.getElementById("diagram");
  let started = false;

  function tell(message) {
    // The parent is this site's page; the frame's own origin is opaque, its URL's is the site's.
    window.parent.postMessage(message, location.origin);
  }

  async function draw(source) {
    try {
      const { svg } = await mermaid.render("diagram-svg", source);
      shown.innerHTML = svg;
      new ResizeObserver(() => tell({ type: "rendered", height: document.documentElement.scrollHeight })).observe(
        shown,
      );
    } catch (error) {
      tell({ type: "failed", error: String((error && error.message) || error) });
    }
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent || started) return;
    const { type, source } = event.data || {};
    if (type !== "render" || typeof source !== "string") return;
    started = true;
    draw(source);
  });
  tell({ type: "ready" });
})();
