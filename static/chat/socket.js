// The conversation's socket (docs/protocol.md): connect, reconnect with exponential backoff and jitter, resume
// what was streaming. Frames go to the handler `startSocket` is given; `onChange` runs whenever what the
// controls depend on changed (the connection opened or closed), and `onOpen` (optional) after each opening.

import { chat } from "./state.js";

const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 10000;
// Close codes that reconnecting cannot cure (docs/protocol.md): the session ended, or too many tabs.
const SESSION_ENDED_CLOSE = 4401;

let handlers = { onFrame: () => {}, onChange: () => {}, onOpen: () => {} };

export function startSocket({ onFrame, onChange, onOpen = () => {} }) {
  handlers = { onFrame, onChange, onOpen };
  // Leaving the page closes the socket: that is not a connection problem to report or repair. A page restored
  // from the back/forward cache comes back with its socket closed.
  window.addEventListener("pagehide", () => (chat.leaving = true));
  window.addEventListener("pageshow", (event) => {
    chat.leaving = false;
    if (event.persisted && chat.socket === null) connect();
  });
  connect();
}

export function isConnected() {
  return chat.socket !== null && chat.socket.readyState === WebSocket.OPEN;
}

export function sendFrame(frame) {
  if (!isConnected()) return false;
  chat.socket.send(JSON.stringify(frame));
  return true;
}

// One outstanding `resume` per message.
export function requestResume(messageId) {
  if (chat.pendingResume.has(messageId)) return;
  if (sendFrame({ type: "resume", message: messageId })) chat.pendingResume.add(messageId);
}

function socketUrl() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${chat.root.dataset.wsPath}`;
}

function connect() {
  const socket = new WebSocket(socketUrl());
  chat.socket = socket;
  socket.addEventListener("open", onSocketOpen);
  socket.addEventListener("message", onSocketMessage);
  socket.addEventListener("close", onSocketClose);
}

function onSocketMessage(event) {
  let frame;
  try {
    frame = JSON.parse(event.data);
  } catch {
    return;
  }
  handlers.onFrame(frame);
}

function onSocketOpen() {
  chat.reconnectAttempt = 0;
  document.getElementById("connection-banner").hidden = true;
  // Whatever was in flight on the old socket is gone with it.
  chat.pendingResume.clear();
  chat.stopRequested = false;
  chat.switching = false;
  // A search hit's page (`?message=`) shows the branch through that message without having stored it (the GET
  // changes nothing): the first opening asks for it with a `switch`, which stores it and sends every tab of the
  // conversation the `tree` frame. Only once: should the switch be refused (`busy`), the `tree` asked next
  // brings back the path as it is stored.
  const through = chat.root.dataset.switchMessage;
  if (through) {
    delete chat.root.dataset.switchMessage;
    sendFrame({ type: "switch", message: Number(through) });
  }
  // A switch or a deleted branch made in another tab while this socket was away reached only the sockets that
  // were open: ask for the path as it is now (the answer is a `tree` frame).
  sendFrame({ type: "tree" });
  for (const { id } of chat.path) {
    const view = chat.views.get(id);
    if (!view || view.message.status === "streaming") requestResume(id);
  }
  handlers.onChange();
  handlers.onOpen();
}

function onSocketClose(event) {
  chat.socket = null;
  if (event.code === SESSION_ENDED_CLOSE) {
    window.location.assign(`/accounts/login/?next=${encodeURIComponent(window.location.pathname)}`);
    return;
  }
  // A send on the old socket may or may not have reached the server; the draft is still in the composer.
  chat.pendingSend = null;
  handlers.onChange();
  if (chat.leaving) return;
  document.getElementById("connection-banner").hidden = false;
  const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** chat.reconnectAttempt);
  chat.reconnectAttempt += 1;
  // Full jitter between half and all of the ceiling, so many tabs do not reconnect in lockstep.
  window.setTimeout(connect, ceiling / 2 + Math.random() * (ceiling / 2));
}
