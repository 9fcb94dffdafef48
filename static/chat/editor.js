// Editing a message of the path: Save sends `edit`, whose `tree` frame puts the new version and its reply on the
// path in place of this message and what followed it (which stay, as the other version). `close` ends the
// editing (transcript.js's `setEditing`).

import { rewriteWarning } from "./cache.js";
import { sendFrame } from "./socket.js";
import { chat } from "./state.js";

const { element } = window.ChatRender;

export function renderEditor(view, close) {
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
  cancel.addEventListener("click", close);
  // Esc cancels every inline edit, as it does a rename.
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.isComposing) {
      event.preventDefault();
      close();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (sendFrame({ type: "edit", message: view.message.id, text, model: chat.modelSelect.value })) close();
  });
  const buttons = element("div", "message-editor-buttons");
  buttons.append(cancel, save);
  form.append(input, buttons);
  const warning = editWarning(view);
  if (warning) form.append(element("p", "cache-warning", warning));
  window.requestAnimationFrame(() => input.focus());
  return form;
}

// Editing an early message (any but the last user message) sends a new history from it on: what was cached
// after the reply before it is written again. That reply's input and output are the part of the prefix that
// stays; none before the first message.
function editWarning(view) {
  const index = chat.pathIndex.get(view.message.id);
  const laterUser = chat.path.slice(index + 1).some(({ id }) => chat.views.get(id)?.message.role === "user");
  if (!laterUser) return "";
  const before = index > 0 ? chat.views.get(chat.path[index - 1].id)?.message.usage : null;
  const kept = before
    ? ["input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens"]
        .reduce((sum, kind) => sum + (before[kind] || 0), 0)
    : 0;
  return rewriteWarning(kept);
}
