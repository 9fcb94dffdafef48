// Frames from the server (docs/protocol.md, "Server to client"): `handleFrame` applies one to the page, and
// `applyTreeFrame` is also how the page's own tree data is applied at start-up. `resumeSilentReplies` asks
// again for a streaming reply that went quiet.

import { cacheWarmthUpdate } from "./cache.js";
import { acceptSentDraft, updateComposer } from "./composer.js";
import { formatCost } from "./format.js";
import { showNotice } from "./notices.js";
import { describeModel, offerSuccessor } from "./picker.js";
import { applyTitle } from "./sidebar.js";
import { requestResume } from "./socket.js";
import { chat } from "./state.js";
import { createView, orderTranscript, scheduleRender, updateTranscriptState } from "./transcript.js";

// A streaming reply that has been silent for a while is asked for again (docs/protocol.md): its final frame may
// have been dropped, and a lost final frame leaves no sequence gap to notice.
const SILENT_REPLY_MS = 10000;

// Content blocks keep their text where the Messages API does: `thinking` for thinking, the input's JSON as it
// streams in `partial_json` for a tool_use, `content` for a tool_result, `text` otherwise. The part that opens a
// tool block also carries its `id` and `name`, or `tool_use_id` and `is_error`.
const PART_FIELDS = { thinking: "thinking", tool_use: "partial_json", tool_result: "content", mcp_tool_use: "partial_json", server_tool_use: "partial_json" };

const FRAME_HANDLERS = {
  message: onMessageFrame,
  delta: onDeltaFrame,
  conversation: onConversationFrame,
  tree: applyTreeFrame,
  error: onErrorFrame,
};

export function handleFrame(frame) {
  const handler = FRAME_HANDLERS[frame.type];
  if (handler) handler(frame);
}

// A queued (half-price) reply is asked for every `data-check-ms` too: the batch worker is another process, and
// without a shared channel layer (Redis) its frame cannot reach this page (docs/batches.md).
function silentAfter(status) {
  if (status === "streaming") return SILENT_REPLY_MS;
  const toggle = document.getElementById("batch-toggle");
  if (status === "queued" && toggle) return Number(toggle.dataset.checkMs) || SILENT_REPLY_MS;
  return null;
}

export function resumeSilentReplies() {
  for (const view of chat.views.values()) {
    const after = silentAfter(view.message.status);
    if (after === null || Date.now() - view.heardAt < after) continue;
    view.heardAt = Date.now();
    chat.pendingResume.delete(view.message.id);
    requestResume(view.message.id);
  }
}

// The active path changed (a switch, a new version, a deleted branch, from this tab or another): the transcript
// becomes exactly the path. Views that stay are neither rebuilt nor re-rendered; the frame's `messages` replace
// or add views; a path message the page has no copy of is asked for with `resume`.
export function applyTreeFrame(frame) {
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

// A message the page meets settled for the first time (another version's reply after a switch) was in the total
// already; one met streaming is new, and holds nothing yet. `stored`: a payload read from the database (the
// page's tree data, a `tree` frame), whose cost the total holds even while the reply streams again.
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
  if (message.cache && message.cache.warmth) cacheWarmthUpdate(message.cache.warmth);
  if (!chat.pathIndex.has(message.id)) {
    // A `send` extends the path with no `tree` frame: its messages answer the path's last one. Anything else (an
    // edit's new version, heard before its `tree` frame) waits for the frame that puts it on the path.
    const last = chat.path.length ? chat.path[chat.path.length - 1].id : null;
    if (message.parent !== last) {
      chat.offPath.set(message.id, message);
      return;
    }
    chat.path.push({ id: message.id, versions: [message.id] });
    chat.pathIndex.set(message.id, chat.path.length - 1);
  }
  const isNew = !chat.views.has(message.id);
  const wasQueued = !isNew && chat.views.get(message.id).message.status === "queued";
  const view = upsertMessage(message);
  if (wasQueued && message.status !== "queued") notifyQueuedReply(message);
  if (isNew && message.role === "user" && chat.pendingSend !== null) acceptSentDraft(message);
  scheduleRender(view);
}

// A half-price reply has landed (or ended): a browser notification, when the user allowed them.
function notifyQueuedReply(message) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const title = message.status === "complete" ? "Your half-price reply is ready" : "Your half-price reply ended";
  new Notification(title, { body: document.getElementById("chat-title").textContent, tag: `reply-${message.id}` });
}

// A snapshot older than the deltas already applied to a streaming reply would take text back.
function isBehind(message, view) {
  return message.status === "streaming" && message.seq < view.lastSeq;
}

// The version arrows replace the message they sit on: keep the keyboard on the same control of the message that
// took its place on the path.
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

function applyParts(content, parts) {
  for (const part of parts) {
    if (!content[part.block]) {
      const { block: _index, text: _text, citations: _citations, ...opening } = part;
      content[part.block] = opening;
    }
    const block = content[part.block];
    const field = PART_FIELDS[block.type] || "text";
    block[field] = (block[field] || "") + part.text;
    if (part.citations) block.citations = [...(block.citations || []), ...part.citations]; // docs/protocol.md
  }
}

// The model picker follows only a frame that carries `model` (a `send`'s): the title the model writes comes as
// {id, title} seconds after the reply, when the user may have picked another model already (docs/protocol.md).
function onConversationFrame(frame) {
  const conversation = frame.conversation;
  applyTitle(conversation.id, conversation.title);
  if (conversation.model !== undefined && String(conversation.id) === chat.root.dataset.conversationId) {
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
  if (frame.code === "model_retired") offerSuccessor(frame);
  else showNotice(frame.detail || `Error: ${frame.code}`);
}
