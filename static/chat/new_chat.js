// A new chat (`/`): the page opens on a ready composer with no conversation yet (`data-conversation-id=""`, no
// socket). The first message creates the conversation: `createConversation` asks `conversation_create`, which
// makes a new one each time except when told the id an earlier try of this page got back (`conversation=<id>`:
// reused while still empty), so a retried first message makes no second one and another tab's never lands in
// this page's; `becomeConversation` turns this page into that conversation's page, as if it had been
// loaded at `/conversations/<id>/`: its ids and addresses, the header tools that need a conversation, the
// sidebar entry. main.js then starts the socket and sends the draft once it opens.

import { readCookie } from "./csrf.js";
import { chat } from "./state.js";

export function isNewChat() {
  return chat.root.dataset.conversationId === "";
}

// The conversation's id and addresses (chat/views.py `_conversation_urls`). Throws an Error whose message says
// why, for the page to show; the draft is not touched here.
// The id the last answer gave, sent with a retry.
let created = null;

export async function createConversation(model) {
  const fields = created === null ? { model } : { model, conversation: String(created) };
  let response;
  try {
    response = await fetch(chat.root.dataset.createUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": readCookie("csrftoken"), "X-Requested-With": "fetch" },
      body: new URLSearchParams(fields),
    });
  } catch {
    throw new Error("The server could not be reached. Please try again.");
  }
  if (response.status === 400) throw new Error(await response.text());
  // A session that ended is redirected to the login page, which is not JSON.
  const isJson = (response.headers.get("Content-Type") || "").startsWith("application/json");
  if (!response.ok || !isJson) throw new Error(`HTTP ${response.status}. Please try again.`);
  const answer = await response.json();
  created = answer.id;
  return answer;
}

export function becomeConversation(created) {
  const root = chat.root;
  root.dataset.conversationId = String(created.id);
  root.dataset.wsPath = created.ws_path;
  root.dataset.uploadUrl = created.upload_url;
  root.dataset.forkUrl = created.fork_url;
  root.dataset.modelSwitchUrl = created.model_switch_url;
  window.history.replaceState(window.history.state, "", created.url);
  // The header tools and the settings dialog, hidden and without addresses until now.
  for (const tool of document.querySelectorAll("[data-needs-conversation]")) {
    const url = tool.dataset.needsConversation && created[tool.dataset.needsConversation];
    if (tool.tagName === "FORM") tool.action = url;
    else if (url) tool.href = url;
    tool.hidden = false;
    delete tool.dataset.needsConversation;
  }
  document.getElementById("chat-title").title = "Double-click to rename";
  addSidebarEntry(created.sidebar_item);
}

// The entry goes first under "Today", after Pinned, as the server would list it.
function addSidebarEntry(html) {
  const list = document.getElementById("conversation-list");
  if (!list) return;
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  const entry = template.content.firstElementChild;
  list.querySelector(`.conversation-item[data-conversation-id="${entry.dataset.conversationId}"]`)?.remove();
  list.querySelector(".conversation-none")?.remove();
  todayGroup(list).prepend(entry);
}

function todayGroup(list) {
  for (const title of list.querySelectorAll(".conversation-group-title")) {
    if (title.textContent.trim() === "Today") return title.closest(".conversation-group").querySelector("ul");
  }
  // None yet: a heading like the server's (chat/selectors.py `sidebar_groups`), after Pinned.
  const group = document.createElement("section");
  group.className = "conversation-group";
  group.setAttribute("aria-labelledby", "conversation-group-today");
  const title = document.createElement("h2");
  title.className = "conversation-group-title";
  title.id = "conversation-group-today";
  title.textContent = "Today";
  const items = document.createElement("ul");
  items.className = "conversation-group-list";
  group.append(title, items);
  const first = list.querySelector(".conversation-group");
  const firstTitle = first && first.querySelector(".conversation-group-title").textContent.trim();
  if (firstTitle === "Pinned") first.after(group);
  else list.prepend(group);
  return items;
}
