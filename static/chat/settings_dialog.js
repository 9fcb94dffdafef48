// The conversation's settings dialog (system prompt, thinking, cache TTL): a plain form posted to
// `conversation_settings`, opened from the header's Settings button and from the line under the composer that
// shows both. While the prompt cache is warm, changing the system prompt or the thinking says inline what the
// rewrite of the cached prefix will cost (cache.js); Save still saves.

import { rewriteWarning } from "./cache.js";

// The fields whose change breaks the cached prefix (the TTL does not: it changes how long, not what, is cached).
const PREFIX_FIELDS = ["system_prompt", "thinking"];

export function initSettingsDialog() {
  const dialog = document.getElementById("settings-dialog");
  const form = dialog.querySelector("form");
  const open = () => {
    fitThinking(form);
    showRewriteWarning(form);
    dialog.showModal();
  };
  document.getElementById("settings-button").addEventListener("click", open);
  document.getElementById("settings-summary").addEventListener("click", open);
  dialog.querySelector(".dialog-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("model-select")?.addEventListener("change", () => fitThinking(form));
  form.addEventListener("input", () => showRewriteWarning(form));
  form.addEventListener("change", () => showRewriteWarning(form));
}

// The thinking levels the chosen model takes, labelled its way (chat/llm/request.py `thinking_choices`, on the
// picker's option): effort levels, token budgets, or only Off. A level it does not take is not offered; one
// stored from another model stays selected, marked as unused, since the request leaves it out.
export function fitThinking(form) {
  const select = form.elements.thinking;
  const model = document.getElementById("model-select")?.selectedOptions[0];
  if (!select || !model?.dataset.thinking) return;
  const offered = new Map(JSON.parse(model.dataset.thinking));
  for (const option of select.options) {
    option.dataset.name ||= option.textContent; // the level's own name, before any model's label
    const label = offered.get(option.value);
    option.hidden = label === undefined && !option.selected;
    option.disabled = label === undefined;
    option.textContent = label ?? `${option.dataset.name}: not used by this model`;
  }
}

function showRewriteWarning(form) {
  const warning = document.getElementById("cache-warning");
  const changed = PREFIX_FIELDS.some((name) => isChanged(form.elements[name]));
  warning.textContent = changed ? rewriteWarning() : "";
  warning.hidden = !warning.textContent;
}

function isChanged(field) {
  if (!field) return false;
  if (field.tagName === "SELECT") return [...field.options].some((option) => option.selected !== option.defaultSelected);
  return field.value.trim() !== field.defaultValue.trim(); // the server stores the prompt stripped
}
