// The transcript: one view per message of the active path, holding the message object from the server, the last
// applied sequence number and its DOM element; how each is rendered, and when. Rendering is batched: every
// change marks its view dirty (`scheduleRender`), and one animation frame renders them all.

import { createActions } from "./actions.js";
import { updateComposer } from "./composer.js";
import { renderEditor } from "./editor.js";
import { renderFooter } from "./footer.js";
import { integerFormat } from "./format.js";
import { modelName } from "./picker.js";
import { chat, isStreaming } from "./state.js";

const { element, renderMarkdown, setChildren, renderAttachments, renderToolStep } = window.ChatRender;

const BOTTOM_SLACK_PX = 48;
// While streaming: a caret at the end of the last paragraph or list item, or typing dots before any text.
const CARET_CONTAINERS = new Set(["DIV", "P", "UL", "OL", "LI", "BLOCKQUOTE", "H1", "H2", "H3", "H4", "H5", "H6"]);

export function createView(message) {
  const article = element("article", `message message-${message.role}`);
  article.dataset.messageId = message.id;
  if (message.role === "assistant") article.append(element("div", "message-author", "Claude"));
  const body = element("div", "message-body");
  const footer = element("footer", "message-meta");
  const view = { message, lastSeq: message.seq, element: article, body, footer, editing: false };
  view.actions = createActions(view);
  article.append(body, footer, view.actions);
  // Measured before the article makes the page taller: a reader at the bottom keeps following when a reply
  // arrives in a later frame than the message it answers.
  chat.forceScroll ||= isScrolledToBottom();
  placeOnPath(article, message.id);
  return view;
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
export function orderTranscript() {
  let next = chat.list.firstElementChild;
  for (const { id } of chat.path) {
    const view = chat.views.get(id);
    if (!view) continue;
    if (view.element === next) next = next.nextElementSibling;
    else chat.list.insertBefore(view.element, next);
  }
}

export function setEditing(view, editing) {
  view.editing = editing;
  chat.revision += 1;
  scheduleRender(view);
}

// A burst of deltas costs one markdown pass per frame at most.
export function scheduleRender(view) {
  chat.dirty.add(view);
  if (chat.frameRequested) return;
  chat.frameRequested = true;
  window.requestAnimationFrame(renderDirtyViews);
}

// At start-up: what the page's tree data put in the transcript, at once, scrolled to the end.
export function renderTranscriptNow() {
  for (const view of chat.dirty) renderView(view);
  chat.dirty.clear();
  updateTranscriptState();
  scrollToBottom();
}

// The empty-state greeting, aria-busy (screen readers announce the reply once, when it is done) and the
// composer buttons all follow the transcript.
export function updateTranscriptState() {
  document.getElementById("messages-empty").hidden = chat.views.size > 0;
  chat.list.setAttribute("aria-busy", String(isStreaming()));
  updateComposer();
  updateContextGauge();
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

function isScrolledToBottom() {
  const { scrollTop, scrollHeight, clientHeight } = chat.scroller;
  return scrollHeight - scrollTop - clientHeight <= BOTTOM_SLACK_PX;
}

function scrollToBottom() {
  chat.scroller.scrollTop = chat.scroller.scrollHeight;
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
    view.body.append(renderEditor(view, () => setEditing(view, false)));
    return;
  }
  for (const block of view.message.content) {
    if (block.type === "text") view.body.append(element("div", "user-text", block.text));
  }
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
  // A text block's container stays in the body from frame to frame: renderMarkdown rebuilds only what changed in
  // it, and a diagram's frame taken out of the document would reload.
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
