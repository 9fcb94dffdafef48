// What a click on a message's controls does (actions.js builds them): copy, continue, regenerate, edit, delete,
// the version arrows, and a code block's Copy. Fork is a form of its own and posts itself.

import { sendFrame } from "./socket.js";
import { chat } from "./state.js";
import { setEditing } from "./transcript.js";

const { copyCode, copyText, messageMarkdown } = window.ChatRender;

export function initActionClicks() {
  chat.list.addEventListener("click", (event) => {
    const action = event.target.closest("button[data-action]");
    if (action) onMessageAction(action);
    const copy = event.target.closest(".copy-code");
    if (copy) copyCode(copy);
  });
}

function onMessageAction(button) {
  const view = chat.views.get(Number(button.closest(".message").dataset.messageId));
  if (!view) return;
  const id = view.message.id;
  const action = button.dataset.action;
  if (action === "copy") {
    copyText(button, messageMarkdown(view.message));
  } else if (action === "edit") {
    setEditing(view, true);
  } else if (action === "continue") {
    sendFrame({ type: "continue", message: id });
  } else if (action === "regenerate") {
    sendFrame({ type: "regenerate", message: id, model: chat.modelSelect.value });
  } else if (action === "delete") {
    const what = view.message.role === "user" ? "message" : "reply";
    const question = `Delete this ${what}? The later messages of this branch are deleted with it.`;
    if (window.confirm(`${question} This cannot be undone.`)) sendFrame({ type: "delete", message: id });
  } else if ((action === "previous" || action === "next") && !chat.switching) {
    // Not disabled while the switch is on its way: a disabled button loses the keyboard's focus. A second click
    // meanwhile would switch from a path that is about to change, so it is ignored instead.
    const { versions } = chat.path[chat.pathIndex.get(id)];
    const target = versions[versions.indexOf(id) + (action === "next" ? 1 : -1)];
    if (target !== undefined && sendFrame({ type: "switch", message: target })) chat.switching = true;
  }
}
