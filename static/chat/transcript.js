// The transcript: one view per message of the active path, holding the message object from the server, the last
// applied sequence number and its DOM element; how each is rendered, and when. Rendering is batched: every
// change marks its view dirty (`scheduleRender`), and one animation frame renders them all.

import { createActions } from "./actions.js";
import { updateComposer } from "./composer.js";
import { renderEditor } from "./editor.js";
import { renderFooter } from "./footer.js";
import { integerFormat } from "./format.js";
import { modelName } from "./picker.js";
import { sendFrame } from "./socket.js";
import { BOTTOM_SLACK_PX, chat, isStreaming } from "./state.js";
import { mcpResult, mcpStepBlock } from "./steps_mcp.js";
import { memoryStepRelabel } from "./steps_memory.js";
import { isServerResult, keptServerStep } from "./steps_server.js";

const { element, renderMarkdown, setChildren, renderAttachments, renderToolStep, toolInput } = window.ChatRender;

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

// The greeting shown while the transcript is empty, aria-busy (screen readers announce the reply once, when it is
// done) and the composer buttons all follow the transcript.
export function updateTranscriptState() {
  document.getElementById("messages-empty").hidden = chat.views.size > 0;
  chat.list.setAttribute("aria-busy", String(isStreaming()));
  updateComposer();
  updateContextGauge();
}

function renderDirtyViews() {
  chat.frameRequested = false;
  // Measured before the DOM grows: follow the reply only if the reader was already at the bottom (or has just
  // sent), and had not come for a linked message (search.js), which the first render must leave in view.
  const pinned = (chat.forceScroll || isScrolledToBottom()) && !chat.list.hasAttribute("data-linked-message");
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
  const parts = keptNotices(view);
  const results = new Map();
  for (const block of message.content) {
    if (block.type === "tool_result" || isServerResult(block)) results.set(block.tool_use_id, block);
  }
  // Each block's node stays in the body from frame to frame, kept by the block's index: a text block's container
  // (renderMarkdown rebuilds only what changed in it, and a diagram's frame taken out of the document would
  // reload), a thinking block (only its text grows) and a tool step (rebuilt only when its input or result
  // changed). So a frame costs what the growing block costs, and a selection in any other block survives it.
  const kept = view.blocks || (view.blocks = new Map());
  view.caret?.remove();
  // Consecutive text blocks are one markdown text, with the citations' markers (citations.js), kept by the
  // index of the run's first block.
  const runs = window.ChatCitations.textRuns(message.content);
  message.content.forEach((block, index) => {
    let node = null;
    if (block.type === "text") {
      if (runs.has(index)) node = keptMarkdown(kept, index, runs.get(index));
      else kept.delete(index);
    } else if (block.type === "thinking") {
      node = keptThinking(view, kept, index, block, streaming && index === message.content.length - 1);
    } else if (block.type === "tool_use") {
      node = keptToolStep(view, kept, index, block, results.get(block.id), streaming);
    } else if (block.type === "mcp_tool_use") {
      const result = results.get(block.id);
      node = keptToolStep(view, kept, index, mcpStepBlock(block), result && mcpResult(result), streaming);
    } else if (block.type === "server_tool_use") {
      node = keptServerStep(view, kept, index, block, results.get(block.id), streaming);
    } else kept.delete(index);
    if (node) parts.push(node);
  });
  for (const index of kept.keys()) if (index >= message.content.length) kept.delete(index);
  const shows = streaming && showsAnything(message);
  if (streaming && !shows) parts.push(typingDots(view));
  if (message.status === "queued") parts.push(queuedNote(view));
  setChildren(body, parts);
  if (shows) placeCaret(view);
}

// The notices above the answer (why Auto chose the model, a fallback, history left out), each kept while its
// text stays the same.
function keptNotices(view) {
  const { message } = view;
  const wanted = (message.notices || []).map((notice) => ["message-notice", notice]);
  if (message.route_reason) {
    const reason = `Auto chose ${modelName(message.model)}: ${message.route_reason}.`;
    wanted.unshift(["message-notice route-note", reason]);
  }
  const before = view.notices || new Map();
  view.notices = new Map();
  return wanted.map(([className, text], index) => {
    const key = `${index} ${className} ${text}`;
    const node = before.get(key) || element("p", className, text);
    view.notices.set(key, node);
    return node;
  });
}

// The node kept for block `index` if it was made for a block of this type, or a new one.
function keptFor(kept, index, type, make) {
  let entry = kept.get(index);
  if (!entry || entry.type !== type) {
    entry = { type, ...make() };
    kept.set(index, entry);
  }
  return entry;
}

function keptMarkdown(kept, index, text) {
  const entry = keptFor(kept, index, "text", () => ({ node: element("div", "markdown") }));
  renderMarkdown(entry.node, text);
  return entry.node;
}

// A citation marker's popover and link: one set of listeners on the transcript (citations.js).
export function initCitations() {
  window.ChatCitations.installCitations(chat.list, {
    messageFor: (marker) => chat.views.get(Number(marker.closest("article")?.dataset.messageId))?.message,
  });
}

// Thinking is shown collapsed, above the answer; the open/closed choice (one for the view) survives a snapshot
// that rebuilds it. While the reply streams, the text only grows: the new part is appended to the one text node,
// so the cost is the delta's and a selection in the text stays.
function keptThinking(view, kept, index, block, inProgress) {
  const entry = keptFor(kept, index, "thinking", () => {
    const node = element("details", "thinking");
    node.open = Boolean(view.thinkingOpen);
    node.addEventListener("toggle", () => (view.thinkingOpen = node.open));
    const summary = element("summary");
    const text = document.createTextNode("");
    const holder = element("div", "thinking-text");
    holder.append(text);
    node.append(summary, holder);
    return { node, summary, text, shown: "" };
  });
  const text = block.thinking || "";
  if (text !== entry.shown) {
    if (text.length > entry.shown.length && text.startsWith(entry.shown)) {
      entry.text.appendData(text.slice(entry.shown.length));
    } else entry.text.data = text;
    entry.shown = text;
  }
  const label = inProgress ? "Thinking…" : "Thought process";
  if (entry.summary.textContent !== label) entry.summary.textContent = label;
  return entry.node;
}

// A tool step is rebuilt only when what it shows changed: its input (the JSON text grows while it streams), its
// result, or its state (a call without a result is running while the reply streams, not run once it is over).
// The open ones stay open (`openSteps`). A snapshot (a `message` frame) brings new objects: their input is then
// compared by the text the step shows, once.
function keptToolStep(view, kept, index, block, result, streaming) {
  const input = block.partial_json !== undefined ? block.partial_json : block.input;
  let state = streaming ? "running" : "skipped";
  if (result) state = result.is_error ? "error" : "done";
  const content = result ? result.content : undefined;
  let entry = kept.get(index);
  if (entry && entry.type !== "tool_use") entry = null;
  const text = entry && entry.shown.input === input ? entry.shown.text : toolInput(block).text;
  const shown = { input, text, state, content };
  if (entry && entry.shown.text === text && entry.shown.state === state && entry.shown.content === content) {
    entry.shown = shown;
    return entry.node;
  }
  const openSteps = view.openSteps || (view.openSteps = new Set());
  const node = memoryStepRelabel(renderToolStep(block, result, { streaming, openSteps }), block);
  kept.set(index, { type: "tool_use", node, shown });
  return node;
}

// Whether a streaming reply shows anything yet (decided from the message, not by reading the body's text): a
// notice, a thinking block or a tool step (each has a visible summary), or a text block with a non-blank
// character. Before that, typing dots; after, a caret.
function showsAnything(message) {
  if (message.route_reason || (message.notices || []).length) return true;
  const shows = (block) =>
    block.type === "thinking" || block.type === "tool_use" || block.type === "server_tool_use" ||
    block.type === "mcp_tool_use" ||
    (block.type === "text" && /\S/.test(block.text || ""));
  return message.content.some(shows);
}

// A half-price reply waiting in a Message Batch: what to expect, and a way out. Cancel goes over the socket; the
// reply's next frame (stopped, or the answer if it was ready) replaces this.
function queuedNote(view) {
  if (!view.queued) {
    const note = element("div", "queued-note");
    note.append(element("p", "queued-text", "Queued: answer within 24 h (usually under an hour)"));
    const cancel = element("button", "btn btn-secondary queued-cancel", "Cancel");
    cancel.type = "button";
    cancel.addEventListener("click", () => {
      if (sendFrame({ type: "cancel", message: view.message.id })) cancel.disabled = true;
    });
    note.append(cancel);
    view.queued = note;
  }
  return view.queued;
}

function typingDots(view) {
  if (!view.dots) {
    view.dots = element("span", "typing-dots");
    view.dots.setAttribute("aria-hidden", "true");
    view.dots.append(element("span"), element("span"), element("span"));
  }
  return view.dots;
}

// The caret goes at the end of the last paragraph or list item: down the last children only, never a scan of the
// whole reply. One caret per view, moved from frame to frame.
function placeCaret(view) {
  let host = view.body;
  while (host.lastElementChild && CARET_CONTAINERS.has(host.lastElementChild.tagName)) {
    host = host.lastElementChild;
  }
  if (!view.caret) {
    view.caret = element("span", "caret");
    view.caret.setAttribute("aria-hidden", "true");
  }
  host.append(view.caret);
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
