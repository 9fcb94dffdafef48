// The chat page's start-up: the sidebar on every page, and on the chat page the transcript (from the page's tree
// data), the composer and its attachments, and the conversation's socket; on a new chat (`/`, no conversation
// yet) the socket waits for the first message, which creates the conversation (new_chat.js).
//
// Native ES modules with no build step, loaded with `<script type="module">` after the vendored marked,
// DOMPurify, highlight.js and KaTeX scripts and static/chat/render.js (`window.ChatRender`, shared with the
// shared page): those are classic `defer` scripts, and module scripts run after them, in document order.
// Nothing here runs inline, so the page works under a strict Content-Security-Policy.

import { initActionClicks } from "./action_clicks.js";
import { initCacheStatus } from "./cache.js";
import { initComposer, sendDraft, updateComposer } from "./composer.js";
import { initDrawer } from "./drawer.js";
import { applyTreeFrame, handleFrame, resumeSilentReplies } from "./frames.js";
import { becomeConversation, createConversation, isNewChat } from "./new_chat.js";
import { showNotice } from "./notices.js";
import { initModelPicker } from "./picker.js";
import { initSettingsDialog } from "./settings_dialog.js";
import { initSidebar } from "./sidebar.js";
import { isConnected, startSocket } from "./socket.js";
import { chat } from "./state.js";
import { initCitations, renderTranscriptNow } from "./transcript.js";
import { initAttachments } from "./uploads.js";

const SILENCE_CHECK_MS = 2000;

function initChat(root) {
  chat.root = root;
  chat.list = document.getElementById("message-list");
  chat.scroller = document.getElementById("messages");
  chat.input = document.getElementById("composer-input");
  chat.sendButton = document.getElementById("send-button");
  chat.stopButton = document.getElementById("stop-button");
  chat.modelSelect = document.getElementById("model-select");
  initModelPicker();

  applyTreeFrame(JSON.parse(document.getElementById("tree-data").textContent));
  renderTranscriptNow();

  initComposer({ firstSend: startConversation });
  initAttachments(root, updateComposer);
  initSettingsDialog();
  initCacheStatus();
  initActionClicks();
  initCitations();
  if (!isNewChat()) openSocket();
  setInterval(resumeSilentReplies, SILENCE_CHECK_MS);
  updateComposer();
  chat.input.focus();
}

function openSocket() {
  startSocket({ onFrame: handleFrame, onChange: onConnectionChange, onOpen: sendFirstMessage });
}

// A new chat's first message: create the conversation, become its page, and send the draft once its socket
// opens. If any step fails the draft stays in the composer as it is, and sending again retries: the retry names
// the conversation an earlier try got, which the server reuses while it is still empty.
async function startConversation() {
  chat.creating = true;
  updateComposer();
  try {
    becomeConversation(await createConversation(chat.modelSelect.value));
  } catch (error) {
    chat.creating = false;
    updateComposer();
    showNotice(`Could not start the conversation: ${error.message}`);
    return;
  }
  openSocket();
}

function sendFirstMessage() {
  if (!chat.creating) return;
  chat.creating = false;
  updateComposer();
  sendDraft();
}

// A socket that closes before it first opened leaves the first message unsent, in the composer: Send works
// again once the page has reconnected.
function onConnectionChange() {
  if (chat.creating && !isConnected()) chat.creating = false;
  updateComposer();
}

initSidebar();
initDrawer();
const root = document.getElementById("chat");
if (root) initChat(root);
