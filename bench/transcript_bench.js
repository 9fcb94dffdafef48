// The transcript mode of bench/bench_render.py: the chat page's own transcript.js (and its imports) on the bench
// page, rendering one streaming reply whose frames the bench applies as the page applies delta frames
// (frames.js applyParts), then renders at once (renderTranscriptNow: the views, the composer, the scroll).
import { chat } from "/static/chat/state.js";
import { createView, renderTranscriptNow } from "/static/chat/transcript.js";

const PART_FIELDS = { thinking: "thinking", tool_use: "partial_json", tool_result: "content" };

chat.root = document.getElementById("chat");
chat.list = document.getElementById("message-list");
chat.scroller = document.getElementById("messages");
chat.input = document.getElementById("composer-input");
chat.sendButton = document.getElementById("send-button");
chat.stopButton = document.getElementById("stop-button");
chat.modelSelect = document.getElementById("model-select");
chat.path = [{ id: 1, versions: [1] }];
chat.pathIndex = new Map([[1, 0]]);
const view = createView({ id: 1, role: "assistant", status: "streaming", seq: 0, content: [], notices: [] });
chat.views.set(1, view);

// Applies one frame's parts, then renders the transcript as the page's animation frame does.
window.benchTranscriptFrame = (parts) => {
  const content = view.message.content;
  for (const part of parts) {
    if (!content[part.block]) {
      const { block: _index, text: _text, ...opening } = part;
      content[part.block] = opening;
    }
    const block = content[part.block];
    const field = PART_FIELDS[block.type] || "text";
    block[field] = (block[field] || "") + part.text;
  }
  chat.dirty.add(view);
  renderTranscriptNow();
};
window.benchTranscriptReady = true;
