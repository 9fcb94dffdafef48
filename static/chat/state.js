// The chat page's shared state: the elements every part of the page works on, the transcript's views and the
// active path, the socket, the composer's draft and attachments. Each module owns the fields it writes (named
// beside each field); the others only read them.

// How far from the transcript's end a reader still counts as "at the bottom" (the page follows a streaming reply
// from there: transcript.js; the "Jump to latest" button goes: jump.js).
export const BOTTOM_SLACK_PX = 48;

export const chat = {
  root: null,
  list: null,
  scroller: null,
  input: null,
  sendButton: null,
  stopButton: null,
  modelSelect: null,
  // The transcript (transcript.js, frames.js): one view per message of the active path (the conversation is a
  // tree of versions; the page shows one path from the root to a leaf, as the server's `tree` frames set it).
  views: new Map(), // message id -> {message, lastSeq, element, body, footer, actions}; only for the path
  path: [], // the active path, root first: {id, versions}, versions being its siblings' ids and its own, oldest first
  pathIndex: new Map(), // message id -> its index in `path`
  treeVersion: 0, // the `version` of the last tree frame applied: an older one (from another process) is ignored
  offPath: new Map(), // messages heard of before the `tree` frame that puts them on the path (an edit's new message)
  revision: 0, // bumped by every change the message actions depend on (the path, a message, an editor)
  actionsShown: "", // the revision and state the message actions were last updated for (actions.js)
  switching: false, // a `switch` went out and its `tree` frame has not come back: the arrows wait for it
  dirty: new Set(), // views to re-render at the next animation frame
  frameRequested: false,
  forceScroll: false,
  // The socket (socket.js).
  socket: null,
  reconnectAttempt: 0,
  leaving: false,
  pendingResume: new Set(), // message ids a `resume` was sent for and no snapshot came back yet
  costCounted: new Map(), // message id -> the cost of it that the header's conversation cost holds (frames.js)
  // The composer (composer.js, uploads.js).
  pendingSend: null, // the text of a `send` the server has neither echoed nor refused
  creating: false, // a new chat's first message is creating its conversation and opening its socket (main.js)
  stopRequested: false, // a `stop` went out for the reply that is streaming
  uploads: [], // the composer's attachments: {file, status, progress, attachment, error, request, ...}
};

export function isStreaming() {
  for (const view of chat.views.values()) if (view.message.status === "streaming") return true;
  return false;
}
