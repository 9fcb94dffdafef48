// The composer: the growing text box, Send and Stop, and which of the page's controls are on
// (`updateComposer`, run after every change they depend on).

import { updateActions } from "./actions.js";
import { isConnected, sendFrame } from "./socket.js";
import { chat, isStreaming } from "./state.js";
import { readyAttachmentIds, removeUpload } from "./uploads.js";

const COMPOSER_MAX_HEIGHT_PX = 240;

let onFirstSend = () => {};

// `firstSend`: what sending does on a new chat, which has no conversation (and no socket) until its first
// message creates one (main.js, new_chat.js).
export function initComposer({ firstSend }) {
  onFirstSend = firstSend;
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
}

export function updateComposer() {
  const streaming = isStreaming();
  chat.sendButton.hidden = streaming;
  chat.stopButton.hidden = !streaming;
  if (!streaming) chat.stopRequested = false;
  chat.stopButton.disabled = chat.stopRequested || !isConnected();
  // A new chat sends without a socket (its first message creates the conversation), once at a time.
  const canSend = chat.root.dataset.conversationId === "" ? !chat.creating : isConnected() && !chat.creating;
  // Attachments still uploading hold the send back; attachments alone (no text) make a message.
  const uploading = chat.uploads.some((upload) => upload.status === "uploading");
  const empty = chat.input.value.trim() === "" && readyAttachmentIds().length === 0;
  chat.sendButton.disabled = streaming || chat.pendingSend !== null || !canSend || uploading || empty;
  updateActions();
}

// The server echoed our message: the draft is now in the transcript. If the user kept typing meanwhile, their
// new text is not ours to clear. The attachments it carried leave the composer, and so do refused files, whose
// reasons were on show; uploads added meanwhile stay.
export function acceptSentDraft(message) {
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
  chat.list.removeAttribute("data-linked-message");
}

function growComposer() {
  chat.input.style.height = "auto";
  chat.input.style.height = Math.min(chat.input.scrollHeight, COMPOSER_MAX_HEIGHT_PX) + "px";
}

export function sendDraft() {
  if (chat.sendButton.disabled) return;
  if (chat.root.dataset.conversationId === "") {
    onFirstSend();
    return;
  }
  const text = chat.input.value.trim();
  const attachments = readyAttachmentIds();
  // "Not urgent: half price" is asked for each send, never kept: it is off again once the message is sent.
  const toggle = document.getElementById("batch-toggle");
  const batch = Boolean(toggle && toggle.checked);
  if (sendFrame({ type: "send", text, model: chat.modelSelect.value, attachments, batch })) {
    chat.pendingSend = text;
    if (batch) {
      toggle.checked = false;
      askToNotify();
    }
    updateComposer();
  }
}

// The first half-price send is when a notification for its answer starts to make sense: ask then, once.
function askToNotify() {
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
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
  // During IME composition Enter confirms the candidate; keyCode 229 covers browsers that fire keydown after
  // compositionend.
  if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  sendDraft();
}
