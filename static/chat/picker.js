// The model picker. Under the composer, the chosen model's description: what it is good at, its price, what it
// supports (the option's `data-description`, from chat/llm/catalog.py).

import { readCookie } from "./csrf.js";
import { showNotice } from "./notices.js";
import { chat } from "./state.js";

const { element } = window.ChatRender;

export function initModelPicker() {
  chat.modelSelect.addEventListener("change", describeModel);
  describeModel();
}

export function describeModel() {
  const line = document.getElementById("model-description");
  const option = chat.modelSelect.selectedOptions[0];
  if (!line || !option) return;
  const name = element("strong", "", option.textContent);
  // The server tools the model can use (chat/llm/server_tools.py), whether or not an admin has turned them on.
  const serverTools = option.dataset.serverTools ? ` Server tools: ${option.dataset.serverTools}.` : "";
  line.replaceChildren(name, `: ${option.dataset.description || ""}${serverTools}`);
}

export function modelName(modelId) {
  const option = [...chat.modelSelect.options].find((candidate) => candidate.value === modelId);
  return option ? option.textContent : modelId;
}

// A turn refused because the conversation's model is retired (`model_retired`, lifecycle/): a notice naming the
// successor, with a button that switches the conversation to it. It stays until used or dismissed; the draft
// stays in the composer, to be sent again once switched.
export function offerSuccessor(frame) {
  const container = document.getElementById("notices");
  const url = chat.root.dataset.modelSwitchUrl;
  if (!container || !frame.successor || !url) {
    showNotice(frame.detail);
    return;
  }
  container.querySelector(".notice-retired")?.remove();
  const notice = element("div", "notice notice-retired");
  notice.setAttribute("role", "alert");
  notice.append(element("span", "notice-text", frame.detail));
  const button = element("button", "btn btn-primary notice-action", `Switch to ${frame.successor.display_name}`);
  button.type = "button";
  button.addEventListener("click", () => switchToSuccessor(url, notice, button));
  const close = element("button", "notice-close", "×");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", () => notice.remove());
  notice.append(button, close);
  container.append(notice);
}

async function switchToSuccessor(url, notice, button) {
  button.disabled = true;
  try {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": readCookie("csrftoken"), "X-Requested-With": "fetch" },
    });
    if (response.status === 400) throw new Error(await response.text());
    if (!response.ok) throw new Error(`HTTP ${response.status}. Please try again.`);
    const switched = await response.json();
    chat.modelSelect.querySelector("option[data-lifecycle=retired]")?.remove();
    chat.modelSelect.value = switched.model;
    describeModel();
    notice.remove();
    chat.input.focus();
  } catch (error) {
    button.disabled = false;
    showNotice(`Could not switch the model: ${error.message}`);
  }
}
