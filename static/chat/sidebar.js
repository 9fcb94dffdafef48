// The sidebar: inline rename (pencil button, or double-click on the open conversation, in the sidebar or the
// header) and delete with confirm; and the conversation's title wherever it shows.

import { readCookie } from "./csrf.js";
import { showNotice } from "./notices.js";

const { element } = window.ChatRender;

// Conversation titles appear in the sidebar, the header and the document title; one function keeps them in
// step.
export function applyTitle(conversationId, title) {
  const shown = title || "New chat";
  const id = String(conversationId);
  for (const item of document.querySelectorAll(".conversation-item")) {
    if (item.dataset.conversationId !== id) continue;
    item.dataset.title = title;
    item.querySelector(".conversation-title").textContent = shown;
    // Each action's label is its title (Rename, Pin or Unpin, Archive, Delete) and the conversation's.
    for (const button of item.querySelectorAll(".conversation-actions .icon-button")) {
      button.setAttribute("aria-label", `${button.title} “${shown}”`);
    }
  }
  const chat = document.getElementById("chat");
  if (chat && chat.dataset.conversationId === id) {
    document.getElementById("chat-title").textContent = shown;
    document.title = `${shown} · Claude chat`;
  }
}

export function initSidebar() {
  const list = document.getElementById("conversation-list");
  if (!list) return;

  list.addEventListener("click", (event) => {
    const renameButton = event.target.closest(".rename-button");
    if (renameButton) {
      startRename(renameButton.closest(".conversation-item"));
      return;
    }
    // The open conversation is already on screen: a click on it must not reload the page, so that a
    // double-click can rename it.
    const link = event.target.closest(".conversation-link");
    if (link && link.closest(".is-current")) event.preventDefault();
  });

  list.addEventListener("dblclick", (event) => {
    const item = event.target.closest(".conversation-item.is-current");
    if (item && event.target.closest(".conversation-link")) startRename(item);
  });

  list.addEventListener("submit", (event) => {
    const form = event.target.closest(".delete-form");
    if (!form) return;
    const title = form.closest(".conversation-item").dataset.title || "New chat";
    if (!window.confirm(`Delete “${title}”? This cannot be undone.`)) event.preventDefault();
  });

  // Looked up at the click: a new chat gets its entry when its first message creates it (new_chat.js).
  document.getElementById("chat-title")?.addEventListener("dblclick", () => {
    const current = list.querySelector(".conversation-item.is-current");
    if (current) startRename(current);
  });
}

function startRename(item) {
  if (item.querySelector(".rename-input")) return;
  const link = item.querySelector(".conversation-link");
  const input = element("input", "rename-input");
  input.type = "text";
  input.maxLength = 200;
  input.value = item.dataset.title;
  input.setAttribute("aria-label", "Conversation title");
  link.hidden = true;
  item.prepend(input);
  input.focus();
  input.select();

  let finished = false;
  function finish(save) {
    // Removing the input blurs it, which would call finish a second time.
    if (finished) return;
    finished = true;
    const title = input.value.trim();
    input.remove();
    link.hidden = false;
    link.focus();
    if (save && title !== item.dataset.title) saveTitle(item, title);
  }

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(false));
}

async function saveTitle(item, title) {
  const conversationId = item.dataset.conversationId;
  const previous = item.dataset.title;
  // Optimistic: put it back if the server refuses. A blank title is left to the server, which refuses it with
  // the reason shown below, so the page never shows a blank one meanwhile.
  if (title) applyTitle(conversationId, title);
  try {
    const response = await fetch(item.dataset.renameUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": readCookie("csrftoken"), "X-Requested-With": "fetch" },
      body: new URLSearchParams({ title }),
    });
    if (response.status === 400) throw new Error(await response.text());
    if (!response.ok) throw new Error(`HTTP ${response.status}. Please try again.`);
  } catch (error) {
    applyTitle(conversationId, previous);
    showNotice(`Could not rename the conversation: ${error.message}`);
  }
}
