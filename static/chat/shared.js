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
    // The steps of server tools, MCP servers and the memory tool (shared_steps.js); without it, client tools only.
    const steps = window.ChatSteps;
    const results = new Map();
    for (const block of message.content) {
      const result = block.type === "tool_result" || (steps && steps.isServerResult(block));
      if (result) results.set(block.tool_use_id, block);
    }
    const runs = window.ChatCitations.textRuns(message.content); // consecutive text blocks, with citation markers
    message.content.forEach((block, index) => {
      if (block.type === "text") {
        if (!runs.has(index)) return;
        const container = element("div", "markdown");
        renderMarkdown(container, runs.get(index));
        body.append(container);
      } else if (block.type === "thinking") {
        const details = element("details", "thinking");
        details.append(element("summary", "", "Thought process"), element("div", "thinking-text", block.thinking || ""));
        body.append(details);
      } else if (block.type === "tool_use") {
        const step = renderToolStep(block, results.get(block.id));
        body.append(steps ? steps.memoryStepRelabel(step, block) : step);
      } else if (steps && block.type === "server_tool_use") {
        body.append(steps.sharedServerStep(block, results.get(block.id)));
      } else if (steps && block.type === "mcp_tool_use") {
        const result = results.get(block.id);
        body.append(renderToolStep(steps.mcpStepBlock(block), result && steps.mcpResult(result)));
      }
    });
  }

  // A citation of a shared reply links to the share's copy of the document it cites (a PDF at its page), or to
  // the web page; the share serves no passage view.
  function sharedSourceUrl(messages) {
    const urls = new Map();
    for (const message of messages) for (const attachment of message.attachments || []) urls.set(attachment.id, attachment.url);
    return (citation) => {
      if (citation.type === "web_search_result_location") return window.ChatCitations.webUrl(citation.url);
      const url = urls.get(citation.attachment);
      if (!url) return null;
      return citation.type === "page_location" ? `${url}#page=${Number(citation.start_page_number) || 1}` : url;
    };
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
    const byId = new Map(data.messages.map((message) => [String(message.id), message]));
    window.ChatCitations.installCitations(list, {
      messageFor: (marker) => byId.get(marker.closest("article")?.dataset.messageId),
      sourceUrl: sharedSourceUrl(data.messages),
    });
    document.getElementById("messages-empty").hidden = data.messages.length > 0;
    list.addEventListener("click", (event) => {
      const copy = event.target.closest(".copy-code");
      if (copy) copyCode(copy);
    });
  }

  initShared();
})();
