// Editing a message of the path: Save sends `edit`, whose `tree` frame puts the new version and its reply on the
// path in place of this message and what followed it (which stay, as the other version). `close` ends the
// editing (transcript.js's `setEditing`).

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
  window.requestAnimationFrame(() => input.focus());
  return form;
}
