/*
 * Citations in replies (chat/citations.py; docs/claude.md, "Citations"): a numbered marker after each cited
 * span, the cited text in a popover on hover, focus and tap, and a link to the source: a PDF at its page, a
 * text document with the passage highlighted, a web page.
 *
 * With citations the API cuts a reply into many text blocks, one per cited span, each with its `citations`. A
 * run of consecutive text blocks is rendered as one markdown text (`textRuns`), so a sentence with a cited span
 * in the middle stays one paragraph, and each cited block's text is followed by its markers, written as
 * markdown links to `#citation-N`: they go through the same sanitizing as the rest of the reply, and stay
 * where renderMarkdown put them (a marker for a span is there as soon as its citation arrived, which the
 * stream sends before the span's text). What a marker shows is looked up when it is used (`installCitations`:
 * one set of listeners for the whole transcript), so rendering costs no work per marker.
 *
 * A classic script (no module), loaded (`defer`) after render.js, for both pages that show replies: the chat
 * page (transcript.js) and a shared conversation (shared.js). One global, `ChatCitations`.
 */
"use strict";

window.ChatCitations = (function () {
  const MARKER_PREFIX = "#citation-";
  const CITED_TEXT_CHARS = 400;

  // Every citation of a message, in the order the markers number them (1-based: the marker of
  // `citations[n - 1]` reads [n]).
  function messageCitations(message) {
    const all = [];
    for (const block of message.content || []) {
      if (block.type === "text" && block.citations) all.push(...block.citations);
    }
    return all;
  }

  // The markdown of each run of consecutive text blocks, by the index of its first block. A run of one block
  // without citations is the block's text as it is (no copy: most replies are that).
  function textRuns(content) {
    const runs = new Map();
    let number = 0;
    let start = -1;
    let pieces = [];
    const close = () => {
      if (start >= 0) runs.set(start, pieces.length === 1 ? pieces[0] : pieces.join(""));
      start = -1;
      pieces = [];
    };
    content.forEach((block, index) => {
      if (block.type !== "text") {
        close();
        return;
      }
      if (start < 0) start = index;
      const text = block.text || "";
      const cited = block.citations || [];
      if (!cited.length) {
        pieces.push(text);
        return;
      }
      let markers = "";
      for (let count = 0; count < cited.length; count += 1) {
        number += 1;
        markers += `[\\[${number}\\]](${MARKER_PREFIX}${number})`;
      }
      // The markers go after the span's last visible character, before a paragraph break that ends it.
      const trailing = /\s*$/.exec(text)[0];
      pieces.push(text.slice(0, text.length - trailing.length) + markers + trailing);
    });
    close();
    return runs;
  }

  function isMarker(node) {
    return node instanceof Element && node.matches(`a[href^="${MARKER_PREFIX}"]`);
  }

  function markerNumber(marker) {
    return Number(marker.getAttribute("href").slice(MARKER_PREFIX.length));
  }

  // Where a citation's link goes on the chat page: the owner-checked views of chat/attachments/urls.py.
  function ownerSourceUrl(citation) {
    if (citation.type === "web_search_result_location") return webUrl(citation.url);
    if (!Number.isInteger(citation.attachment) || citation.attachment <= 0) return null; // what we stored, or nothing
    const base = `/attachments/${citation.attachment}/`;
    if (citation.type === "page_location") return `${base}view/#page=${Number(citation.start_page_number) || 1}`;
    if (citation.type === "char_location") {
      const start = Number(citation.start_char_index) || 0;
      const end = Number(citation.end_char_index) || start;
      return `${base}passage/?start=${start}&end=${end}#passage`;
    }
    return base;
  }

  // Only web pages: a citation is what the model sent, and a link must never run anything here.
  function webUrl(url) {
    try {
      const parsed = new URL(url);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch {
      return null;
    }
  }

  function sourceName(citation) {
    if (citation.type === "web_search_result_location") return citation.title || citation.url || "a web page";
    const name = citation.document_title || `document ${(Number(citation.document_index) || 0) + 1}`;
    if (citation.type === "page_location") {
      const first = Number(citation.start_page_number) || 1;
      const last = Math.max(first, (Number(citation.end_page_number) || first + 1) - 1); // the end is exclusive
      return first === last ? `${name}, page ${first}` : `${name}, pages ${first}–${last}`;
    }
    return name;
  }

  function linkLabel(citation) {
    if (citation.type === "web_search_result_location") return "Open the page";
    if (citation.type === "page_location") return `Open page ${Number(citation.start_page_number) || 1}`;
    if (citation.type === "char_location") return "Open the passage";
    return "Open the document";
  }

  // One popover for the page, moved to the marker in use. `messageFor(marker)` gives the marker's message;
  // `sourceUrl(citation)` its link (or null: no link).
  function installCitations(root, { messageFor, sourceUrl = ownerSourceUrl }) {
    const popover = document.createElement("div");
    popover.className = "citation-popover";
    popover.id = "citation-popover";
    popover.setAttribute("role", "tooltip");
    popover.hidden = true;
    document.body.append(popover);
    let current = null; // the marker shown
    let pinned = false; // opened by a click or tap: stays until closed
    let hideTimer = null;
    let returning = false;

    function citationOf(marker) {
      const message = messageFor(marker);
      return message ? messageCitations(message)[markerNumber(marker) - 1] : undefined;
    }

    function show(marker) {
      const citation = citationOf(marker);
      if (!citation) return false;
      clearTimeout(hideTimer);
      if (current && current !== marker) release(current);
      current = marker;
      const number = markerNumber(marker);
      const quote = document.createElement("blockquote");
      quote.className = "citation-text";
      const cited = citation.cited_text || "";
      quote.textContent = cited.length > CITED_TEXT_CHARS ? `${cited.slice(0, CITED_TEXT_CHARS)}…` : cited;
      const source = document.createElement("p");
      source.className = "citation-source";
      source.textContent = `[${number}] ${sourceName(citation)}`;
      popover.replaceChildren(quote, source);
      const url = sourceUrl(citation);
      if (url) {
        const link = document.createElement("a");
        link.className = "citation-link";
        link.href = url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        link.textContent = linkLabel(citation);
        popover.append(link);
      }
      popover.setAttribute("role", "tooltip");
      popover.removeAttribute("aria-label");
      marker.setAttribute("aria-label", `Citation ${number}: ${sourceName(citation)}`);
      marker.setAttribute("aria-describedby", popover.id);
      marker.setAttribute("aria-expanded", "true");
      marker.classList.add("citation-marker");
      popover.hidden = false;
      place(marker);
      return true;
    }

    function place(marker) {
      const box = marker.getBoundingClientRect();
      const width = Math.min(360, window.innerWidth - 16);
      popover.style.width = `${width}px`;
      const left = Math.max(8, Math.min(box.left, window.innerWidth - width - 8));
      popover.style.left = `${left + window.scrollX}px`;
      const below = box.bottom + 6;
      const height = popover.offsetHeight;
      const top = below + height > window.innerHeight && box.top > height + 6 ? box.top - height - 6 : below;
      popover.style.top = `${top + window.scrollY}px`;
    }

    function release(marker) {
      marker.setAttribute("aria-expanded", "false");
      marker.removeAttribute("aria-describedby");
    }

    function hide() {
      clearTimeout(hideTimer);
      if (current) release(current);
      current = null;
      pinned = false;
      popover.hidden = true;
    }

    function hideSoon() {
      if (pinned) return;
      clearTimeout(hideTimer);
      hideTimer = setTimeout(hide, 250); // time to move the pointer onto the popover's link
    }

    root.addEventListener("mouseover", (event) => {
      if (isMarker(event.target) && !pinned) show(event.target);
    });
    root.addEventListener("mouseout", (event) => {
      if (isMarker(event.target)) hideSoon();
    });
    root.addEventListener("focusin", (event) => {
      if (isMarker(event.target) && !pinned && !returning) show(event.target);
    });
    root.addEventListener("focusout", (event) => {
      if (isMarker(event.target) && !popover.contains(event.relatedTarget)) hideSoon();
    });
    // A click or a tap pins the popover (a phone has no hover) and puts its link next in the Tab order.
    root.addEventListener("click", (event) => {
      const marker = event.target instanceof Element ? event.target.closest(`a[href^="${MARKER_PREFIX}"]`) : null;
      if (!marker) return;
      event.preventDefault();
      if (pinned && current === marker) {
        hide();
        return;
      }
      if (show(marker)) {
        pinned = true;
        // Pinned, it holds a link to use: a small non-modal dialog rather than a tooltip.
        popover.setAttribute("role", "dialog");
        popover.setAttribute("aria-label", marker.getAttribute("aria-label"));
        popover.querySelector(".citation-link")?.focus();
      }
    });
    popover.addEventListener("mouseover", () => clearTimeout(hideTimer));
    popover.addEventListener("mouseout", hideSoon);
    popover.addEventListener("focusout", (event) => {
      if (!popover.contains(event.relatedTarget) && event.relatedTarget !== current) hide();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || popover.hidden) return;
      const marker = current;
      hide();
      returning = true; // the focus goes back to the marker without opening the popover again
      marker?.focus();
      returning = false;
    });
    document.addEventListener("click", (event) => {
      if (pinned && !popover.contains(event.target) && !isMarker(event.target)) hide();
    });
    return { hide };
  }

  return { textRuns, messageCitations, installCitations, ownerSourceUrl, webUrl };
})();
