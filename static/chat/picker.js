// The model picker. Under the composer, the chosen model's description: what it is good at, its price, what it
// supports (the option's `data-description`, from chat/llm/catalog.py).

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
  line.replaceChildren(name, `: ${option.dataset.description || ""}`);
}

export function modelName(modelId) {
  const option = [...chat.modelSelect.options].find((candidate) => candidate.value === modelId);
  return option ? option.textContent : modelId;
}
