/*
 * The chat page: the sidebar (rename, delete), the transcript (markdown rendered, sanitized and highlighted),
 * the conversation's active path through its tree of versions, the conversation websocket (docs/protocol.md)
 * with reconnect, and the composer with its attachments.
 *
 * Plain browser JavaScript with no build step. The vendored marked, DOMPurify and highlight.js scripts and
 * static/chat/render.js (how a message's parts look, shared with the shared page) are loaded before this one
 * (all `defer`, so in document order). Nothing here runs inline, so the page works
 * under a strict Content-Security-Policy.
 */
"use strict";

(function () {
  // ---------------------------------------------------------------------------------------------------------
  // Small helpers

  function readCookie(name) {
    const prefix = name + "=";
    for (const part of document.cookie.split(";")) {
      const trimmed = part.trim();
      if (trimmed.startsWith(prefix)) return decodeURIComponent(trimmed.slice(prefix.length));
    }
    return "";
  }

  // How a message's parts look, shared with the shared page (static/chat/render.js, loaded before this).
  const { element, renderMarkdown, setChildren, copyCode, copyText, messageMarkdown, renderAttachments, renderToolStep } =
    window.ChatRender;

  const integerFormat = new Intl.NumberFormat();

  function formatCost(cost) {
    return "$" + Number(cost).toFixed(4);
  }

  function formatDuration(milliseconds) {
    return (milliseconds / 1000).toFixed(1) + "s";
  }

  // ---------------------------------------------------------------------------------------------------------
  // Notices: errors from the server or from fetches, shown as dismissible toasts.

  const NOTICE_LIFETIME_MS = 8000;

  function showNotice(text) {
    const container = document.getElementById("notices");
    if (!container) {
      window.alert(text);
      return;
    }
    const notice = element("div", "notice");
    notice.setAttribute("role", "alert");
    notice.append(element("span", "notice-text", text));
    const close = element("button", "notice-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss");
    close.addEventListener("click", () => notice.remove());
    notice.append(close);
    container.append(notice);
    window.setTimeout(() => notice.remove(), NOTICE_LIFETIME_MS);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Conversation titles appear in the sidebar, the header and the document title; one function keeps them
  // in step.

  function applyTitle(conversationId, title) {
    const shown = title || "New chat";
    const id = String(conversationId);
    for (const item of document.querySelectorAll(".conversation-item")) {
      if (item.dataset.conversationId !== id) continue;
      item.dataset.title = title;
      item.querySelector(".conversation-title").textContent = shown;
      // Each action's label is its title (Rename, Pin or Unpin, Archive, Delete) and the conversation's.
      for (const button of item.querySelectorAll(".conversation-actions .icon-button")) {
        button.setAttribute("aria-label", `${button.title} “${shown}”`);
      }
    }
    const chat = document.getElementById("chat");
    if (chat && chat.dataset.conversationId === id) {
      document.getElementById("chat-title").textContent = shown;
      document.title = `${shown} · Claude chat`;
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Sidebar: inline rename (pencil button, or double-click on the open conversation) and delete with confirm.

  function initSidebar() {
    const list = document.getElementById("conversation-list");
    if (!list) return;

    list.addEventListener("click", (event) => {
      const renameButton = event.target.closest(".rename-button");
      if (renameButton) {
        startRename(renameButton.closest(".conversation-item"));
        return;
      }
      // The open conversation is already on screen: a click on it must not reload the page, so that a
      // double-click can rename it.
      const link = event.target.closest(".conversation-link");
      if (link && link.closest(".is-current")) event.preventDefault();
    });

    list.addEventListener("dblclick", (event) => {
      const item = event.target.closest(".conversation-item.is-current");
      if (item && event.target.closest(".conversation-link")) startRename(item);
    });

    list.addEventListener("submit", (event) => {
      const form = event.target.closest(".delete-form");
      if (!form) return;
      const title = form.closest(".conversation-item").dataset.title || "New chat";
      if (!window.confirm(`Delete “${title}”? This cannot be undone.`)) event.preventDefault();
    });

    const headerTitle = document.getElementById("chat-title");
    const current = list.querySelector(".conversation-item.is-current");
    if (headerTitle && current) headerTitle.addEventListener("dblclick", () => startRename(current));
  }

  // On a narrow screen the sidebar is a drawer behind the menu button (the CSS decides when): Escape and a tap
  // on the backdrop close it, focus moves into it on open and back to the button on close.

  function initDrawer() {
    const button = document.getElementById("menu-button");
    const sidebar = document.getElementById("sidebar");
    const backdrop = document.getElementById("sidebar-backdrop");
    if (!button || !sidebar || !backdrop) return;
    const app = sidebar.closest(".app");

    function setOpen(open, { restoreFocus = true } = {}) {
      app.classList.toggle("sidebar-open", open);
      button.setAttribute("aria-expanded", String(open));
      backdrop.hidden = !open;
      if (open) {
        const target = sidebar.querySelector("[aria-current=page]") || sidebar.querySelector("a, button");
        // The drawer becomes visible (and focusable) at once; its slide is only a transform.
        if (target) target.focus();
      } else if (restoreFocus) {
        button.focus();
      }
    }

    button.addEventListener("click", () => setOpen(button.getAttribute("aria-expanded") !== "true"));
    backdrop.addEventListener("click", () => setOpen(false));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && app.classList.contains("sidebar-open") && !sidebar.querySelector(".rename-input")) {
        setOpen(false);
      }
    });
    // Widened past the drawer's breakpoint (a rotated tablet), the sidebar is a column again.
    window.matchMedia("(max-width: 800px)").addEventListener("change", (event) => {
      if (!event.matches) setOpen(false, { restoreFocus: false });
    });
  }

  function startRename(item) {
    if (item.querySelector(".rename-input")) return;
    const link = item.querySelector(".conversation-link");
    const input = element("input", "rename-input");
    input.type = "text";
    input.maxLength = 200;
    input.value = item.dataset.title;
    input.setAttribute("aria-label", "Conversation title");
    link.hidden = true;
    item.prepend(input);
    input.focus();
    input.select();

    let finished = false;
    function finish(save) {
      // Removing the input blurs it, which would call finish a second time.
      if (finished) return;
      finished = true;
      const title = input.value.trim();
      input.remove();
      link.hidden = false;
      link.focus();
      if (save && title !== item.dataset.title) saveTitle(item, title);
    }

    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.isComposing) {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(false));
  }

  async function saveTitle(item, title) {
    const conversationId = item.dataset.conversationId;
    const previous = item.dataset.title;
    // Optimistic: put it back if the server refuses. A blank title is left to the server, which refuses it
    // with the reason shown below, so the page never shows a blank one meanwhile.
    if (title) applyTitle(conversationId, title);
    try {
      const response = await fetch(item.dataset.renameUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": readCookie("csrftoken"), "X-Requested-With": "fetch" },
        body: new URLSearchParams({ title }),
      });
      if (response.status === 400) throw new Error(await response.text());
      if (!response.ok) throw new Error(`HTTP ${response.status}. Please try again.`);
    } catch (error) {
      applyTitle(conversationId, previous);
      showNotice(`Could not rename the conversation: ${error.message}`);
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // The transcript: one view per message of the active path (the conversation is a tree of versions; the page
  // shows one path from the root to a leaf, as the server's `tree` frames set it), holding the message object
  // from the server, the last applied sequence number, and its DOM element.

  const chat = {
    root: null,
    list: null,
    scroller: null,
    input: null,
    sendButton: null,
    stopButton: null,
    modelSelect: null,
    views: new Map(), // message id -> {message, lastSeq, element, body, footer, actions}; only for the path
    path: [], // the active path, root first: {id, versions}, versions being its siblings' ids and its own, oldest first
    pathIndex: new Map(), // message id -> its index in `path`
    treeVersion: 0, // the `version` of the last tree frame applied: an older one (from another process) is ignored
    offPath: new Map(), // messages heard of before the `tree` frame that puts them on the path (an edit's new message)
    revision: 0, // bumped by every change the message actions depend on (the path, a message, an editor)
    actionsShown: "", // the revision and state the message actions were last updated for
    switching: false, // a `switch` went out and its `tree` frame has not come back: the arrows wait for it
    dirty: new Set(), // views to re-render at the next animation frame
    frameRequested: false,
    forceScroll: false,
    socket: null,
    reconnectAttempt: 0,
    leaving: false,
    pendingResume: new Set(), // message ids a `resume` was sent for and no snapshot came back yet
    costCounted: new Map(), // message id -> the cost of it that the header's conversation cost holds
    pendingSend: null, // the text of a `send` the server has neither echoed nor refused
    stopRequested: false, // a `stop` went out for the reply that is streaming
    uploads: [], // the composer's attachments: {file, status, progress, attachment, error, request, ...}
  };

  // Under the composer, the chosen model's description: what it is good at, its price, what it supports (the
  // option's `data-description`, from chat/llm/catalog.py).
  function describeModel() {
    const line = document.getElementById("model-description");
    const option = chat.modelSelect.selectedOptions[0];
    if (!line || !option) return;
    const name = element("strong", "", option.textContent);
    line.replaceChildren(name, `: ${option.dataset.description || ""}`);
  }

  function modelName(modelId) {
    const option = [...chat.modelSelect.options].find((candidate) => candidate.value === modelId);
    return option ? option.textContent : modelId;
  }

  function createView(message) {
    const article = element("article", `message message-${message.role}`);
    article.dataset.messageId = message.id;
    if (message.role === "assistant") article.append(element("div", "message-author", "Claude"));
    const body = element("div", "message-body");
    const footer = element("footer", "message-meta");
    const view = { message, lastSeq: message.seq, element: article, body, footer, editing: false };
    view.actions = createActions(view);
    article.append(body, footer, view.actions);
    placeOnPath(article, message.id);
    return view;
  }

  // Every reply of the path can be written again (a new version beside it) or forked into a new chat, and every
  // user message edited (a new version and its reply); the last message can be continued when its length limit
  // cut it; any message can be deleted with what follows it in its branch. A message with versions shows
  // "‹ 2 / 3 ›". `updateActions` shows each control only where and when it applies.
  const ACTIONS = {
    assistant: [
      ["copy", "Copy", "Copy this reply as Markdown"],
      ["continue", "Continue", "Continue this reply where it was cut off"],
      ["regenerate", "Regenerate", "Write this reply again (this version is kept)"],
      ["fork", "Fork", "Start a new chat from here"],
      ["delete", "Delete", "Delete this reply and the later messages of this branch"],
    ],
    user: [
      ["copy", "Copy", "Copy this message as Markdown"],
      ["edit", "Edit", "Edit this message and write the reply again (this version is kept)"],
      ["delete", "Delete", "Delete this message and the later messages of this branch"],
    ],
  };

  function createActions(view) {
    const actions = element("div", "message-actions");
    actions.append(createVersionSwitch(view));
    for (const [name, label, title] of ACTIONS[view.message.role] || []) {
      if (name === "continue") {
        // Just before Continue: why the reply ends mid-sentence (its `stop_reason` is `max_tokens`).
        view.lengthNote = element("span", "length-note", "Stopped at the length limit.");
        view.lengthNote.hidden = true;
        actions.append(view.lengthNote);
      }
      if (name === "fork") {
        if (chat.root.dataset.forkUrl) actions.append(createForkForm(view.message.id, label, title));
        continue;
      }
      const button = element("button", `message-action action-${name}`, label);
      button.type = "button";
      button.title = title;
      button.dataset.action = name;
      button.hidden = true;
      actions.append(button);
    }
    return actions;
  }

  function createVersionSwitch(view) {
    const versions = element("div", "message-versions");
    versions.setAttribute("role", "group");
    versions.setAttribute("aria-label", "Versions of this message");
    versions.hidden = true;
    view.previousVersion = versionButton("previous", "‹", "Previous version");
    view.versionCount = element("span", "version-count");
    view.nextVersion = versionButton("next", "›", "Next version");
    versions.append(view.previousVersion, view.versionCount, view.nextVersion);
    view.versionSwitch = versions;
    return versions;
  }

  function versionButton(action, symbol, label) {
    const button = element("button", `version-button action-${action}`, symbol);
    button.type = "button";
    button.dataset.action = action;
    button.setAttribute("aria-label", label);
    button.title = label;
    return button;
  }

  // A plain form post (the server answers with a redirect to the new conversation), with the page's CSRF token.
  function createForkForm(messageId, label, title) {
    const form = element("form", "fork-form");
    form.method = "post";
    form.action = chat.root.dataset.forkUrl;
    form.dataset.action = "fork";
    form.hidden = true;
    for (const [name, value] of [["csrfmiddlewaretoken", pageCsrfToken()], ["message", messageId]]) {
      const input = element("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    }
    const button = element("button", "message-action action-fork", label);
    button.type = "submit";
    button.title = title;
    form.append(button);
    return form;
  }

  function pageCsrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : readCookie("csrftoken");
  }

  // Runs after every render, but does its work only when something it depends on changed: the path, a
  // message (not a delta: a delta changes no action), an editor, the connection, a reply streaming.
  function updateActions() {
    const streaming = isStreaming();
    const idle = !streaming && isConnected();
    const state = `${chat.revision}:${streaming}:${idle}`;
    if (state === chat.actionsShown) return;
    chat.actionsShown = state;
    const last = chat.path.length ? chat.path[chat.path.length - 1].id : null;
    for (const { id, versions } of chat.path) {
      const view = chat.views.get(id);
      if (!view) continue;
      const { message } = view;
      const show = {
        copy: !view.editing && message.status !== "streaming",
        continue: idle && id === last && message.stop_reason === "max_tokens",
        regenerate: idle && message.role === "assistant",
        fork: !streaming && message.role === "assistant",
        edit: idle && message.role === "user" && !view.editing,
        delete: idle && !view.editing,
      };
      for (const control of view.actions.children) {
        if (control.dataset.action) control.hidden = !show[control.dataset.action];
      }
      if (view.lengthNote) view.lengthNote.hidden = message.stop_reason !== "max_tokens";
      updateVersionSwitch(view, versions, idle);
    }
  }

  function updateVersionSwitch(view, versions, enabled) {
    const index = versions.indexOf(view.message.id);
    view.versionSwitch.hidden = versions.length < 2;
    view.versionCount.textContent = `${index + 1} / ${versions.length}`;
    view.previousVersion.disabled = !enabled || index <= 0;
    view.nextVersion.disabled = !enabled || index >= versions.length - 1;
  }

  // A view goes where its message is on the path: before the next path message that is on screen.
  function placeOnPath(article, id) {
    let later = null;
    for (let index = chat.pathIndex.get(id) + 1; index < chat.path.length && !later; index += 1) {
      const view = chat.views.get(chat.path[index].id);
      if (view) later = view.element;
    }
    chat.list.insertBefore(article, later);
  }

  // After a `tree` frame: the list's children are exactly the path's views; move only those out of place.
  function orderTranscript() {
    let next = chat.list.firstElementChild;
    for (const { id } of chat.path) {
      const view = chat.views.get(id);
      if (!view) continue;
      if (view.element === next) next = next.nextElementSibling;
      else chat.list.insertBefore(view.element, next);
    }
  }

  function renderView(view) {
    const { message, element: article } = view;
    article.dataset.status = message.status;
    if (message.role === "assistant") renderAssistantBody(view);
    else renderUserBody(view);
    renderFooter(view);
  }

  // User text is never parsed as HTML or markdown: textContent plus `white-space: pre-wrap` keeps it exact.
  // Attachments come as the message's `attachments` list (the content holds only references to them).
  function renderUserBody(view) {
    view.body.replaceChildren();
    const attachments = view.message.attachments || [];
    if (attachments.length) view.body.append(renderAttachments(attachments));
    if (view.editing) {
      view.body.append(renderEditor(view));
      return;
    }
    for (const block of view.message.content) {
      if (block.type === "text") view.body.append(element("div", "user-text", block.text));
    }
  }

  // Editing a message of the path: Save sends `edit`, whose `tree` frame puts the new version and its reply on
  // the path in place of this message and what followed it (which stay, as the other version).
  function renderEditor(view) {
    const form = element("form", "message-editor");
    const input = element("textarea", "message-editor-input");
    const texts = view.message.content.filter((block) => block.type === "text").map((block) => block.text);
    input.value = texts.join("\n\n");
    input.rows = Math.min(10, input.value.split("\n").length + 1);
    input.setAttribute("aria-label", "Edit your message");
    const save = element("button", "btn btn-primary", "Save and resend");
    save.type = "submit";
    const cancel = element("button", "btn btn-secondary", "Cancel");
    cancel.type = "button";
    cancel.addEventListener("click", () => {
      setEditing(view, false);
    });
    // Esc cancels every inline edit, as it does a rename.
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !event.isComposing) {
        event.preventDefault();
        setEditing(view, false);
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (sendFrame({ type: "edit", message: view.message.id, text, model: chat.modelSelect.value })) {
        setEditing(view, false);
      }
    });
    const buttons = element("div", "message-editor-buttons");
    buttons.append(cancel, save);
    form.append(input, buttons);
    window.requestAnimationFrame(() => input.focus());
    return form;
  }

  function setEditing(view, editing) {
    view.editing = editing;
    chat.revision += 1;
    scheduleRender(view);
  }

  function renderAssistantBody(view) {
    const { body, message } = view;
    const streaming = message.status === "streaming";
    const parts = [];
    if (message.route_reason) {
      const reason = `Auto chose ${modelName(message.model)}: ${message.route_reason}.`;
      parts.push(element("p", "message-notice route-note", reason));
    }
    for (const notice of message.notices || []) parts.push(element("p", "message-notice", notice));
    const results = new Map();
    for (const block of message.content) if (block.type === "tool_result") results.set(block.tool_use_id, block);
    // A text block's container stays in the body from frame to frame: renderMarkdown rebuilds only what changed
    // in it, and a diagram's frame taken out of the document would reload.
    const containers = view.markdown || (view.markdown = new Map());
    for (const caret of body.querySelectorAll(".caret")) caret.remove();
    message.content.forEach((block, index) => {
      if (block.type === "text") {
        if (!containers.has(index)) containers.set(index, element("div", "markdown"));
        renderMarkdown(containers.get(index), block.text || "");
        parts.push(containers.get(index));
      } else if (block.type === "thinking") {
        parts.push(renderThinking(view, block.thinking || "", streaming && index === message.content.length - 1));
      } else if (block.type === "tool_use") {
        const openSteps = view.openSteps || (view.openSteps = new Set());
        parts.push(renderToolStep(block, results.get(block.id), { streaming, openSteps }));
      }
    });
    setChildren(body, parts);
    if (streaming) body.append(...streamingIndicator(body));
  }

  // Thinking is shown collapsed, above the answer; the open/closed choice survives re-renders while the reply
  // streams.
  function renderThinking(view, text, inProgress) {
    const details = element("details", "thinking");
    details.open = Boolean(view.thinkingOpen);
    const summary = element("summary", "", inProgress ? "Thinking…" : "Thought process");
    details.append(summary, element("div", "thinking-text", text));
    details.addEventListener("toggle", () => (view.thinkingOpen = details.open));
    return details;
  }

  // While streaming: a caret at the end of the last paragraph or list item, or typing dots before any text.
  const CARET_CONTAINERS = new Set(["DIV", "P", "UL", "OL", "LI", "BLOCKQUOTE", "H1", "H2", "H3", "H4", "H5", "H6"]);

  function streamingIndicator(body) {
    if (!body.textContent.trim()) {
      const dots = element("span", "typing-dots");
      dots.setAttribute("aria-hidden", "true");
      dots.append(element("span"), element("span"), element("span"));
      return [dots];
    }
    let host = body;
    while (host.lastElementChild && CARET_CONTAINERS.has(host.lastElementChild.tagName)) {
      host = host.lastElementChild;
    }
    const caret = element("span", "caret");
    caret.setAttribute("aria-hidden", "true");
    host.append(caret);
    return [];
  }

  const STATUS_LABELS = { stopped: "Stopped", failed: "Failed", interrupted: "Interrupted" };

  function renderFooter(view) {
    const { footer, message } = view;
    footer.replaceChildren();
    if (message.role !== "assistant") return;
    const label = STATUS_LABELS[message.status];
    if (label) {
      footer.append(element("span", `status-badge status-${message.status}`, label));
      if (message.error) footer.append(element("span", "message-error", message.error));
    }
    const usage = message.usage || {};
    // A reply cut off before its usage arrived (interrupted, most often) has no numbers worth showing.
    if (message.status === "streaming" || (!usage.output_tokens && !Number(message.cost))) return;
    const parts = [modelName(message.model), tokensIn(usage), `${integerFormat.format(usage.output_tokens || 0)} out`];
    parts.push(formatCost(message.cost || 0));
    if (message.duration_ms) parts.push(formatDuration(message.duration_ms));
    const stats = element("span", "message-stats", parts.join(" · "));
    stats.title = tokensInTitle(usage);
    footer.append(stats);
    if (usage.cache_read_input_tokens > 0) {
      const cached = element("span", "cache-badge", "Served from cache");
      const tokens = integerFormat.format(usage.cache_read_input_tokens);
      cached.title = `${tokens} input tokens were read from the prompt cache, at a tenth of the price`;
      footer.append(cached);
    }
  }

  // Input as the model read it: the API's `input_tokens` are only what came after the last cache breakpoint, so
  // a long prompt served from (or written to) the cache would read "0 in". Cache reads and writes are input too.
  function tokensIn(usage) {
    const [read, written] = [usage.cache_read_input_tokens || 0, usage.cache_creation_input_tokens || 0];
    const cached = [];
    if (read) cached.push(`${integerFormat.format(read)} cached`);
    if (written) cached.push(`${integerFormat.format(written)} written to cache`);
    const total = integerFormat.format((usage.input_tokens || 0) + read + written);
    return cached.length ? `${total} in (${cached.join(", ")})` : `${total} in`;
  }

  function tokensInTitle(usage) {
    const [fresh, read, written] = [usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens]
      .map((tokens) => integerFormat.format(tokens || 0));
    return `Input: ${fresh} uncached, ${read} read from the prompt cache (a tenth of the price), ${written} written to it`;
  }

  // Rendering is batched: every change marks its view dirty, and one animation frame renders them all, so a
  // burst of deltas costs one markdown pass per frame at most.
  function scheduleRender(view) {
    chat.dirty.add(view);
    if (chat.frameRequested) return;
    chat.frameRequested = true;
    window.requestAnimationFrame(renderDirtyViews);
  }

  function renderDirtyViews() {
    chat.frameRequested = false;
    // Measured before the DOM grows: follow the reply only if the reader was already at the bottom.
    const pinned = chat.forceScroll || isScrolledToBottom();
    for (const view of chat.dirty) renderView(view);
    chat.dirty.clear();
    chat.forceScroll = false;
    updateTranscriptState();
    if (pinned) scrollToBottom();
  }

  const BOTTOM_SLACK_PX = 48;

  function isScrolledToBottom() {
    const { scrollTop, scrollHeight, clientHeight } = chat.scroller;
    return scrollHeight - scrollTop - clientHeight <= BOTTOM_SLACK_PX;
  }

  function scrollToBottom() {
    chat.scroller.scrollTop = chat.scroller.scrollHeight;
  }

  function isStreaming() {
    for (const view of chat.views.values()) if (view.message.status === "streaming") return true;
    return false;
  }

  // The empty-state greeting, aria-busy (screen readers announce the reply once, when it is done) and
  // the composer buttons all follow the transcript.
  function updateTranscriptState() {
    document.getElementById("messages-empty").hidden = chat.views.size > 0;
    chat.list.setAttribute("aria-busy", String(isStreaming()));
    updateComposer();
    updateContextGauge();
  }

  // How full the context window is: the measure of the path's latest reply (its request's input plus its output).
  function updateContextGauge() {
    const gauge = document.getElementById("context-gauge");
    let context = null;
    for (let index = chat.path.length - 1; index >= 0 && !context; index -= 1) {
      const view = chat.views.get(chat.path[index].id);
      if (view && view.message.context) context = view.message.context;
    }
    gauge.hidden = !context;
    if (!context) return;
    const share = Math.min(1, context.tokens / context.window);
    const meter = gauge.querySelector("meter");
    meter.value = share;
    const [used, window] = [context.tokens, context.window].map((tokens) => integerFormat.format(tokens));
    gauge.querySelector(".context-gauge-text").textContent = `${used} of ${window} tokens (${Math.round(share * 100)}%)`;
    gauge.title = "How full the model's context window is. When it would overflow, the oldest messages are left out.";
  }

  // ---------------------------------------------------------------------------------------------------------
  // Frames from the server (docs/protocol.md, "Server to client").

  // Only for a message on the path.
  function upsertMessage(message) {
    chat.revision += 1;
    let view = chat.views.get(message.id);
    if (view) {
      view.message = message;
      view.lastSeq = message.seq;
    } else {
      view = createView(message);
      chat.views.set(message.id, view);
    }
    view.heardAt = Date.now();
    return view;
  }

  // A streaming reply that has been silent for a while is asked for again (docs/protocol.md): its final
  // frame may have been dropped, and a lost final frame leaves no sequence gap to notice.
  const SILENT_REPLY_MS = 10000;

  function resumeSilentReplies() {
    for (const view of chat.views.values()) {
      if (view.message.status !== "streaming" || Date.now() - view.heardAt < SILENT_REPLY_MS) continue;
      view.heardAt = Date.now();
      chat.pendingResume.delete(view.message.id);
      requestResume(view.message.id);
    }
  }

  // The header's conversation cost: the server's total when the page loaded, in which each message's part is
  // replaced by its new cost when a reply the page watched streaming settles. A reply's cost is the sum of its
  // ledger rows (a continued reply's earlier rows included) and a streaming snapshot says 0, so the settled cost
  // replaces what was counted for the message: added on top, a continued reply would count its first part twice.
  // Kept in micro-dollars, as the ledger stores costs, from the exact total in `data-cost`: adding to the shown,
  // rounded figure would drift from the sum of the messages' costs.
  function addToConversationCost(dollars) {
    const total = document.getElementById("conversation-cost");
    if (!total || !dollars) return;
    const micro = Math.round(Number(total.dataset.cost) * 1e6) + Math.round(dollars * 1e6);
    total.dataset.cost = String(micro / 1e6);
    total.textContent = formatCost(micro / 1e6);
  }

  // A message the page meets settled for the first time (another version's reply after a switch) was in the
  // total already; one met streaming is new, and holds nothing yet. `stored`: a payload read from the database
  // (the page's tree data, a `tree` frame), whose cost the total holds even while the reply streams again.
  function countCost(message, stored) {
    const cost = Number(message.cost) || 0;
    if (!chat.costCounted.has(message.id)) {
      chat.costCounted.set(message.id, stored || message.status !== "streaming" ? cost : 0);
    } else if (!stored && message.status !== "streaming") {
      addToConversationCost(cost - chat.costCounted.get(message.id));
      chat.costCounted.set(message.id, cost);
    }
  }

  function onMessageFrame(frame) {
    const message = frame.message;
    chat.pendingResume.delete(message.id);
    countCost(message, false);
    if (!chat.pathIndex.has(message.id)) {
      // A `send` extends the path with no `tree` frame: its messages answer the path's last one. Anything else
      // (an edit's new version, heard before its `tree` frame) waits for the frame that puts it on the path.
      const last = chat.path.length ? chat.path[chat.path.length - 1].id : null;
      if (message.parent !== last) {
        chat.offPath.set(message.id, message);
        return;
      }
      chat.path.push({ id: message.id, versions: [message.id] });
      chat.pathIndex.set(message.id, chat.path.length - 1);
    }
    const isNew = !chat.views.has(message.id);
    const view = upsertMessage(message);
    if (isNew && message.role === "user" && chat.pendingSend !== null) acceptSentDraft(message);
    scheduleRender(view);
  }

  // The active path changed (a switch, a new version, a deleted branch, from this tab or another): the
  // transcript becomes exactly the path. Views that stay are neither rebuilt nor re-rendered; the frame's
  // `messages` replace or add views; a path message the page has no copy of is asked for with `resume`.
  function onTreeFrame(frame) {
    if (frame.version < chat.treeVersion) return;
    chat.treeVersion = frame.version;
    const focused = focusedControl();
    const payloads = new Map(frame.messages.map((message) => [message.id, message]));
    for (const message of frame.messages) countCost(message, true);
    const onPath = new Set(frame.path.map((entry) => entry.id));
    for (const [id, view] of chat.views) {
      if (onPath.has(id)) continue;
      view.element.remove();
      chat.views.delete(id);
      chat.dirty.delete(view);
    }
    chat.path = frame.path;
    chat.pathIndex = new Map(frame.path.map((entry, index) => [entry.id, index]));
    chat.revision += 1;
    chat.switching = false;
    for (const { id } of frame.path) {
      const payload = payloads.get(id) || chat.offPath.get(id);
      const view = chat.views.get(id);
      if (payload && !(view && isBehind(payload, view))) {
        chat.pendingResume.delete(id);
        scheduleRender(upsertMessage(payload));
      } else if (!view) {
        requestResume(id);
      }
    }
    chat.offPath.clear();
    orderTranscript();
    updateTranscriptState();
    restoreFocus(focused);
  }

  // A snapshot older than the deltas already applied to a streaming reply would take text back.
  function isBehind(message, view) {
    return message.status === "streaming" && message.seq < view.lastSeq;
  }

  // The version arrows replace the message they sit on: keep the keyboard on the same control of the message
  // that took its place on the path.
  function focusedControl() {
    const control = document.activeElement && document.activeElement.closest(".message [data-action]");
    if (!control) return null;
    const id = Number(control.closest(".message").dataset.messageId);
    return { index: chat.pathIndex.get(id), action: control.dataset.action };
  }

  function restoreFocus(focused) {
    if (!focused || (document.activeElement && document.activeElement !== document.body)) return;
    const entry = chat.path[focused.index];
    const view = entry && chat.views.get(entry.id);
    const control = view && view.actions.querySelector(`[data-action="${focused.action}"]`);
    if (control) control.focus();
  }

  function onDeltaFrame(frame) {
    const view = chat.views.get(frame.message);
    if (!view) {
      requestResume(frame.message);
      return;
    }
    view.heardAt = Date.now();
    if (frame.seq <= view.lastSeq) return; // already in the snapshot we hold
    if (frame.seq > view.lastSeq + 1) {
      requestResume(frame.message); // frames were lost: the snapshot brings everything up to its seq
      return;
    }
    applyParts(view.message.content, frame.parts);
    view.lastSeq = frame.seq;
    scheduleRender(view);
  }

  // Content blocks keep their text where the Messages API does: `thinking` for thinking, the input's JSON as it
  // streams in `partial_json` for a tool_use, `content` for a tool_result, `text` otherwise. The part that
  // opens a tool block also carries its `id` and `name`, or `tool_use_id` and `is_error`.
  const PART_FIELDS = { thinking: "thinking", tool_use: "partial_json", tool_result: "content" };

  function applyParts(content, parts) {
    for (const part of parts) {
      if (!content[part.block]) {
        const { block: _index, text: _text, ...opening } = part;
        content[part.block] = opening;
      }
      const block = content[part.block];
      const field = PART_FIELDS[block.type] || "text";
      block[field] = (block[field] || "") + part.text;
    }
  }

  function onConversationFrame(frame) {
    const conversation = frame.conversation;
    applyTitle(conversation.id, conversation.title);
    if (conversation.model && String(conversation.id) === chat.root.dataset.conversationId) {
      chat.modelSelect.value = conversation.model;
      describeModel();
    }
  }

  function onErrorFrame(frame) {
    if (frame.message !== undefined) chat.pendingResume.delete(frame.message);
    chat.switching = false; // a refused switch (`busy`, `not_found`) leaves the path as it was
    // A refused send leaves the draft in the composer, so nothing the user typed is lost.
    if (chat.pendingSend !== null && frame.code !== "not_streaming" && frame.code !== "not_found") {
      chat.pendingSend = null;
      updateComposer();
    }
    showNotice(frame.detail || `Error: ${frame.code}`);
  }

  const FRAME_HANDLERS = {
    message: onMessageFrame,
    delta: onDeltaFrame,
    conversation: onConversationFrame,
    tree: onTreeFrame,
    error: onErrorFrame,
  };

  function onSocketFrame(event) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    const handler = FRAME_HANDLERS[frame.type];
    if (handler) handler(frame);
  }

  // ---------------------------------------------------------------------------------------------------------
  // The socket: connect, reconnect with exponential backoff and jitter, resume what was streaming.

  const RECONNECT_FIRST_MS = 500;
  const RECONNECT_MAX_MS = 10000;

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}${chat.root.dataset.wsPath}`;
  }

  function connect() {
    const socket = new WebSocket(socketUrl());
    chat.socket = socket;
    socket.addEventListener("open", onSocketOpen);
    socket.addEventListener("message", onSocketFrame);
    socket.addEventListener("close", onSocketClose);
  }

  function isConnected() {
    return chat.socket !== null && chat.socket.readyState === WebSocket.OPEN;
  }

  function sendFrame(frame) {
    if (!isConnected()) return false;
    chat.socket.send(JSON.stringify(frame));
    return true;
  }

  function onSocketOpen() {
    chat.reconnectAttempt = 0;
    document.getElementById("connection-banner").hidden = true;
    // Whatever was in flight on the old socket is gone with it.
    chat.pendingResume.clear();
    chat.stopRequested = false;
    chat.switching = false;
    // A switch or a deleted branch made in another tab while this socket was away reached only the sockets
    // that were open: ask for the path as it is now (the answer is a `tree` frame).
    sendFrame({ type: "tree" });
    for (const { id } of chat.path) {
      const view = chat.views.get(id);
      if (!view || view.message.status === "streaming") requestResume(id);
    }
    updateComposer();
  }

  // Close codes that reconnecting cannot cure (docs/protocol.md): the session ended, or too many tabs.
  const SESSION_ENDED_CLOSE = 4401;

  function onSocketClose(event) {
    chat.socket = null;
    if (event.code === SESSION_ENDED_CLOSE) {
      window.location.assign(`/accounts/login/?next=${encodeURIComponent(window.location.pathname)}`);
      return;
    }
    // A send on the old socket may or may not have reached the server; the draft is still in the composer.
    chat.pendingSend = null;
    updateComposer();
    if (chat.leaving) return;
    document.getElementById("connection-banner").hidden = false;
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** chat.reconnectAttempt);
    chat.reconnectAttempt += 1;
    // Full jitter between half and all of the ceiling, so many tabs do not reconnect in lockstep.
    window.setTimeout(connect, ceiling / 2 + Math.random() * (ceiling / 2));
  }

  function requestResume(messageId) {
    if (chat.pendingResume.has(messageId)) return;
    if (sendFrame({ type: "resume", message: messageId })) chat.pendingResume.add(messageId);
  }

  // ---------------------------------------------------------------------------------------------------------
  // The composer.

  const COMPOSER_MAX_HEIGHT_PX = 240;

  function growComposer() {
    chat.input.style.height = "auto";
    chat.input.style.height = Math.min(chat.input.scrollHeight, COMPOSER_MAX_HEIGHT_PX) + "px";
  }

  function updateComposer() {
    const streaming = isStreaming();
    chat.sendButton.hidden = streaming;
    chat.stopButton.hidden = !streaming;
    if (!streaming) chat.stopRequested = false;
    chat.stopButton.disabled = chat.stopRequested || !isConnected();
    // Attachments still uploading hold the send back; attachments alone (no text) make a message.
    const uploading = chat.uploads.some((upload) => upload.status === "uploading");
    const empty = chat.input.value.trim() === "" && readyAttachmentIds().length === 0;
    chat.sendButton.disabled = streaming || chat.pendingSend !== null || !isConnected() || uploading || empty;
    updateActions();
  }

  function sendDraft() {
    if (chat.sendButton.disabled) return;
    const text = chat.input.value.trim();
    const attachments = readyAttachmentIds();
    if (sendFrame({ type: "send", text, model: chat.modelSelect.value, attachments })) {
      chat.pendingSend = text;
      updateComposer();
    }
  }

  // The server echoed our message: the draft is now in the transcript. If the user kept typing meanwhile,
  // their new text is not ours to clear. The attachments it carried leave the composer, and so do refused
  // files, whose reasons were on show; uploads added meanwhile stay.
  function acceptSentDraft(message) {
    if (chat.input.value.trim() === chat.pendingSend) {
      chat.input.value = "";
      growComposer();
    }
    const sent = new Set((message.attachments || []).map((attachment) => attachment.id));
    for (const upload of [...chat.uploads]) {
      const wasSent = upload.attachment && sent.has(upload.attachment.id);
      if (wasSent || upload.status === "failed") removeUpload(upload);
    }
    chat.pendingSend = null;
    chat.forceScroll = true;
  }

  function stopReply() {
    // Addressed to the reply on screen: a new turn started meanwhile from another tab is not stopped.
    const streaming = [...chat.views.values()].find((view) => view.message.status === "streaming");
    if (!streaming) return;
    if (sendFrame({ type: "stop", message: streaming.message.id })) {
      chat.stopRequested = true;
      updateComposer();
      chat.input.focus(); // the Stop button is about to disappear; keep the keyboard where the next message goes
    }
  }

  function onComposerKeydown(event) {
    // During IME composition Enter confirms the candidate; keyCode 229 covers browsers that fire keydown
    // after compositionend.
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    sendDraft();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Attachments: files picked, dropped on the conversation or pasted are uploaded at once, one request per
  // file (XMLHttpRequest, for its upload progress; docs/protocol.md, "Uploading attachments"). The `send`
  // frame then names the ids the server accepted; a refused file shows the server's reason until removed.

  const MAX_ATTACHMENTS = 20; // per message, as the server enforces
  const MEGABYTE = 1024 * 1024;
  // What a browser shows in an <img> while the file uploads; the others (HEIC, TIFF) wait for the thumbnail.
  const PREVIEWABLE = new Set([
    "image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/bmp",
  ]);

  // Sizes as the server's refusals write them (chat/attachments/limits.py, `megabytes`): whole megabytes as
  // such, else rounded up to a tenth, so a file just over a limit never reads as the limit. Exact: dividing
  // by a power of two loses nothing.
  function megabytes(size) {
    if (size % MEGABYTE === 0) return `${size / MEGABYTE} MB`;
    const tenths = Math.ceil((size * 10) / MEGABYTE);
    return `${Math.floor(tenths / 10)}.${tenths % 10} MB`;
  }

  // A file over the server's limit for one file (ATTACHMENT_MAX_FILE_BYTES, from the page) is refused here,
  // with the server's sentence, before any of it is sent.
  function addFiles(files) {
    const maxFileBytes = Number(chat.root.dataset.maxFileBytes);
    for (const file of files) {
      if (chat.uploads.length >= MAX_ATTACHMENTS) {
        showNotice(`A message can carry at most ${MAX_ATTACHMENTS} attachments.`);
        break;
      }
      const upload = { file, status: "uploading", progress: 0, attachment: null, error: "", request: null };
      chat.uploads.push(upload);
      if (file.size > maxFileBytes) {
        upload.status = "failed";
        const limit = megabytes(maxFileBytes);
        upload.error = `This file is ${megabytes(file.size)}; files can be at most ${limit}.`;
        continue;
      }
      if (PREVIEWABLE.has(file.type)) upload.previewUrl = URL.createObjectURL(file);
      startUpload(upload);
    }
    renderUploads();
  }

  function startUpload(upload) {
    const request = new XMLHttpRequest();
    upload.request = request;
    request.open("POST", chat.root.dataset.uploadUrl);
    request.setRequestHeader("X-CSRFToken", readCookie("csrftoken"));
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      upload.progress = event.loaded / event.total;
      if (upload.bar) upload.bar.value = upload.progress;
    });
    request.addEventListener("load", () => finishUpload(upload, request));
    request.addEventListener("error", () => {
      finishUpload(upload, { status: 0, response: { error: "The upload failed: the connection was lost." } });
    });
    const form = new FormData();
    // A pasted screenshot may come without a name; the server only displays it anyway.
    form.append("file", upload.file, upload.file.name || "pasted image.png");
    request.send(form);
  }

  // One file may come back as several attachments (each page of a multi-page TIFF): the first is this chip,
  // the others get chips of their own right after it.
  function finishUpload(upload, request) {
    upload.request = null;
    const body = request.response || {};
    const [result, ...more] = body.files || [];
    if (request.status === 200 && result && result.attachment) {
      upload.status = "ready";
      upload.attachment = result.attachment;
      const pages = more.map((page) => ({ ...upload, previewUrl: null, attachment: page.attachment }));
      chat.uploads.splice(chat.uploads.indexOf(upload) + 1, 0, ...pages);
    } else {
      upload.status = "failed";
      const fallback = `The upload failed (HTTP ${request.status}). Reload the page and try again.`;
      upload.error = (result && result.error) || body.error || fallback;
    }
    renderUploads();
  }

  function removeUpload(upload) {
    if (upload.request) upload.request.abort();
    if (upload.previewUrl) URL.revokeObjectURL(upload.previewUrl);
    chat.uploads = chat.uploads.filter((candidate) => candidate !== upload);
    renderUploads();
  }

  function readyAttachmentIds() {
    return chat.uploads.filter((upload) => upload.status === "ready").map((upload) => upload.attachment.id);
  }

  function renderUploads() {
    const tray = document.getElementById("composer-attachments");
    tray.replaceChildren(...chat.uploads.map(renderUpload));
    tray.hidden = chat.uploads.length === 0;
    updateComposer();
  }

  // A chip per file: a preview (the server's thumbnail once processed), else an icon or "PDF", the name, then
  // a progress bar, what the server made of it (size, pages or tokens, and its note on what the model gets),
  // or its reason for refusing it; and a remove button.
  function renderUpload(upload) {
    const { attachment, status } = upload;
    const name = attachment ? attachment.name : upload.file.name || "pasted image";
    const item = element("li", `composer-attachment is-${status}`);
    item.dataset.status = status;
    const kind = attachment ? attachment.kind : null;
    const previewUrl = (attachment && attachment.thumbnail_url) || upload.previewUrl;
    if (previewUrl && status !== "failed" && (kind === null || kind === "image")) {
      const preview = element("img", "composer-attachment-preview");
      preview.src = previewUrl;
      preview.alt = "";
      item.append(preview);
    } else if (kind === "text") {
      item.append(textIcon());
    } else {
      const isPdf = upload.file.type === "application/pdf" || kind === "pdf";
      item.append(element("span", "composer-attachment-kind", isPdf ? "PDF" : "File"));
    }
    const details = element("div", "composer-attachment-details");
    details.append(element("span", "composer-attachment-name", name));
    if (status === "uploading") {
      upload.bar = element("progress", "composer-attachment-progress");
      upload.bar.max = 1;
      upload.bar.value = upload.progress;
      upload.bar.setAttribute("aria-label", `Uploading ${name}`);
      details.append(upload.bar);
    } else if (status === "failed") {
      details.append(element("span", "composer-attachment-error", upload.error));
    } else {
      details.append(element("span", "composer-attachment-meta", describeAttachment(attachment)));
      if (attachment.note) details.append(element("span", "composer-attachment-note", attachment.note));
    }
    const remove = element("button", "composer-attachment-remove", "×");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove ${name}`);
    remove.addEventListener("click", () => removeUpload(upload));
    item.append(details, remove);
    return item;
  }

  // A page with lines of text, for text documents (plain text, Markdown, code, Word), which have no preview.
  function textIcon() {
    const icon = element("span", "composer-attachment-kind is-text");
    icon.setAttribute("role", "img");
    icon.setAttribute("aria-label", "Text document");
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "22");
    svg.setAttribute("height", "22");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", "M6 2.5h8l4.5 4.5v14.5H6zM14 2.5V7h4.5M9 11h6.5M9 14h6.5M9 17h4");
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "1.6");
    path.setAttribute("stroke-linejoin", "round");
    svg.append(path);
    icon.append(svg);
    return icon;
  }

  function describeAttachment(attachment) {
    if (attachment.kind === "pdf") {
      return `${attachment.page_count} page${attachment.page_count === 1 ? "" : "s"}`;
    }
    if (attachment.kind === "text") return `${integerFormat.format(attachment.tokens)} tokens`;
    return `${attachment.width} × ${attachment.height}`;
  }

  function hasFiles(event) {
    return Boolean(event.dataTransfer) && [...event.dataTransfer.types].includes("Files");
  }

  // Drop anywhere on the conversation; a file dropped elsewhere on the page must not navigate away to it.
  // Paste (a screenshot with Ctrl+V) anywhere on the page; pasted text is left to the browser.
  function initAttachments(root) {
    const input = document.getElementById("attach-input");
    document.getElementById("attach-button").addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      addFiles([...input.files]);
      input.value = ""; // so the same file can be chosen again
    });

    let dragDepth = 0; // dragenter/dragleave fire for every child element crossed
    root.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      dragDepth += 1;
      root.classList.add("is-dropping");
    });
    root.addEventListener("dragleave", (event) => {
      if (!hasFiles(event)) return;
      dragDepth = Math.max(0, dragDepth - 1);
      if (dragDepth === 0) root.classList.remove("is-dropping");
    });
    root.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      dragDepth = 0;
      root.classList.remove("is-dropping");
      addFiles([...event.dataTransfer.files]);
    });
    for (const type of ["dragover", "drop"]) {
      window.addEventListener(type, (event) => {
        if (hasFiles(event)) event.preventDefault();
      });
    }
    document.addEventListener("paste", (event) => {
      const files = [...((event.clipboardData && event.clipboardData.files) || [])];
      if (!files.length) return;
      event.preventDefault();
      addFiles(files);
    });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Message actions (continue, regenerate, edit, delete, the version arrows) and the conversation's settings
  // dialog. Fork is a form of its own and posts itself.

  function onMessageAction(button) {
    const view = chat.views.get(Number(button.closest(".message").dataset.messageId));
    if (!view) return;
    const id = view.message.id;
    const action = button.dataset.action;
    if (action === "copy") {
      copyText(button, messageMarkdown(view.message));
    } else if (action === "edit") {
      setEditing(view, true);
    } else if (action === "continue") {
      sendFrame({ type: "continue", message: id });
    } else if (action === "regenerate") {
      sendFrame({ type: "regenerate", message: id, model: chat.modelSelect.value });
    } else if (action === "delete") {
      const what = view.message.role === "user" ? "message" : "reply";
      const question = `Delete this ${what}? The later messages of this branch are deleted with it.`;
      if (window.confirm(`${question} This cannot be undone.`)) sendFrame({ type: "delete", message: id });
    } else if ((action === "previous" || action === "next") && !chat.switching) {
      // Not disabled while the switch is on its way: a disabled button loses the keyboard's focus. A second
      // click meanwhile would switch from a path that is about to change, so it is ignored instead.
      const { versions } = chat.path[chat.pathIndex.get(id)];
      const target = versions[versions.indexOf(id) + (action === "next" ? 1 : -1)];
      if (target !== undefined && sendFrame({ type: "switch", message: target })) chat.switching = true;
    }
  }

  function initSettingsDialog() {
    const dialog = document.getElementById("settings-dialog");
    document.getElementById("settings-button").addEventListener("click", () => dialog.showModal());
    // The line under the composer (the start of the system prompt, the thinking level) opens the same dialog.
    document.getElementById("settings-summary").addEventListener("click", () => dialog.showModal());
    dialog.querySelector(".dialog-cancel").addEventListener("click", () => dialog.close());
  }

  // ---------------------------------------------------------------------------------------------------------
  // Start-up.

  function initChat(root) {
    chat.root = root;
    chat.list = document.getElementById("message-list");
    chat.scroller = document.getElementById("messages");
    chat.input = document.getElementById("composer-input");
    chat.sendButton = document.getElementById("send-button");
    chat.stopButton = document.getElementById("stop-button");
    chat.modelSelect = document.getElementById("model-select");
    chat.modelSelect.addEventListener("change", describeModel);
    describeModel();

    onTreeFrame(JSON.parse(document.getElementById("tree-data").textContent));
    for (const view of chat.dirty) renderView(view);
    chat.dirty.clear();
    updateTranscriptState();
    scrollToBottom();

    document.getElementById("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      sendDraft();
    });
    chat.input.addEventListener("keydown", onComposerKeydown);
    chat.input.addEventListener("input", () => {
      growComposer();
      updateComposer();
    });
    chat.stopButton.addEventListener("click", stopReply);
    initAttachments(root);
    initSettingsDialog();
    chat.list.addEventListener("click", (event) => {
      const action = event.target.closest("button[data-action]");
      if (action) onMessageAction(action);
      const copy = event.target.closest(".copy-code");
      if (copy) copyCode(copy);
    });
    // Leaving the page closes the socket: that is not a connection problem to report or repair. A page
    // restored from the back/forward cache comes back with its socket closed.
    window.addEventListener("pagehide", () => (chat.leaving = true));
    window.addEventListener("pageshow", (event) => {
      chat.leaving = false;
      if (event.persisted && chat.socket === null) connect();
    });

    connect();
    setInterval(resumeSilentReplies, 2000);
    chat.input.focus();
  }

  initSidebar();
  initDrawer();
  const root = document.getElementById("chat");
  if (root) initChat(root);
})();
