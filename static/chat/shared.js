/*
 * A shared conversation (shares/views.py `share_detail`): the transcript, read-only, rendered from the message
 * payloads the page embeds (`share-data`), with the chat page's rendering (static/chat/render.js): replies
 * as markdown sanitized by DOMPurify with code highlighted, user text as text, attachments as links to the
 * share's own file URLs. No socket, no composer: nothing here sends anything.
 *
 * Plain browser JavaScript with no build step; the vendored marked, DOMPurify and highlight.js scripts and
 * render.js are loaded before this one (all `defer`, so in document order). Nothing runs inline, so the page works under the strict
 * Content-Security-Policy.
 */
"use strict";

(function () {
  const { element, renderMarkdown, copyCode, renderAttachments, renderToolStep } = window.ChatRender;

  function renderUserBody(body, message) {
    if ((message.attachments || []).length) body.append(renderAttachments(message.attachments));
    for (const block of message.content) {
      if (block.type === "text") body.append(element("div", "user-text", block.text));
    }
  }

  function renderAssistantBody(body, message, modelNames) {
    if (message.route_reason) {
      const model = modelNames[message.model] || message.model;
      body.append(element("p", "message-notice route-note", `Auto chose ${model}: ${message.route_reason}.`));
    }
    for (const notice of message.notices || []) body.append(element("p", "message-notice", notice));
    const results = new Map();
    for (const block of message.content) if (block.type === "tool_result") results.set(block.tool_use_id, block);
    for (const block of message.content) {
      if (block.type === "text") {
        const container = element("div", "markdown");
        renderMarkdown(container, block.text || "");
        body.append(container);
      } else if (block.type === "thinking") {
        const details = element("details", "thinking");
        details.append(element("summary", "", "Thought process"), element("div", "thinking-text", block.thinking || ""));
        body.append(details);
      } else if (block.type === "tool_use") {
        body.append(renderToolStep(block, results.get(block.id)));
      }
    }
  }

  const STATUS_LABELS = {
    streaming: "Being written",
    stopped: "Stopped",
    failed: "Failed",
    interrupted: "Interrupted",
  };

  function renderFooter(footer, message, modelNames) {
    if (message.role !== "assistant") return;
    const label = STATUS_LABELS[message.status];
    if (label) {
      footer.append(element("span", `status-badge status-${message.status}`, label));
      if (message.error) footer.append(element("span", "message-error", message.error));
    }
    if (message.model) footer.append(element("span", "message-stats", modelNames[message.model] || message.model));
  }

  function renderMessage(message, modelNames) {
    const article = element("article", `message message-${message.role}`);
    article.dataset.messageId = message.id;
    article.dataset.status = message.status;
    if (message.role === "assistant") article.append(element("div", "message-author", "Claude"));
    const body = element("div", "message-body");
    const footer = element("footer", "message-meta");
    if (message.role === "assistant") renderAssistantBody(body, message, modelNames);
    else renderUserBody(body, message);
    renderFooter(footer, message, modelNames);
    article.append(body, footer);
    return article;
  }

  function initShared() {
    const data = JSON.parse(document.getElementById("share-data").textContent);
    const list = document.getElementById("message-list");
    const modelNames = data.model_names || {};
    for (const message of data.messages) list.append(renderMessage(message, modelNames));
    document.getElementById("messages-empty").hidden = data.messages.length > 0;
    list.addEventListener("click", (event) => {
      const copy = event.target.closest(".copy-code");
      if (copy) copyCode(copy);
    });
  }

  initShared();
})();
