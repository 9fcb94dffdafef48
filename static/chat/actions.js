// The controls under each message of the path. Every reply can be written again (a new version beside it) or
// forked into a new chat, and every user message edited (a new version and its reply); the last message can be
// continued when its length limit cut it; any message can be deleted with what follows it in its branch. A
// message with versions shows "‹ 2 / 3 ›". `updateActions` shows each control only where and when it applies;
// what a click on one does is action_clicks.js.

import { pageCsrfToken } from "./csrf.js";
import { isConnected } from "./socket.js";
import { chat, isStreaming } from "./state.js";

const { element } = window.ChatRender;

const ACTIONS = {
  assistant: [
    ["copy", "Copy", "Copy this reply as Markdown"],
    ["continue", "Continue", "Continue this reply where it was cut off"],
    ["regenerate", "Regenerate", "Write this reply again (this version is kept)"],
    ["fork", "Fork", "Start a new chat from here"],
    ["delete", "Delete", "Delete this reply and the later messages of this branch"],
  ],
  user: [
    ["copy", "Copy", "Copy this message as Markdown"],
    ["edit", "Edit", "Edit this message and write the reply again (this version is kept)"],
    ["delete", "Delete", "Delete this message and the later messages of this branch"],
  ],
};

export function createActions(view) {
  const actions = element("div", "message-actions");
  actions.append(createVersionSwitch(view));
  for (const [name, label, title] of ACTIONS[view.message.role] || []) {
    if (name === "continue") {
      // Just before Continue: why the reply ends mid-sentence (its `stop_reason` is `max_tokens`).
      view.lengthNote = element("span", "length-note", "Stopped at the length limit.");
      view.lengthNote.hidden = true;
      actions.append(view.lengthNote);
    }
    if (name === "fork") {
      if (chat.root.dataset.forkUrl) actions.append(createForkForm(view.message.id, label, title));
      continue;
    }
    const button = element("button", `message-action action-${name}`, label);
    button.type = "button";
    button.title = title;
    button.dataset.action = name;
    button.hidden = true;
    actions.append(button);
  }
  return actions;
}

function createVersionSwitch(view) {
  const versions = element("div", "message-versions");
  versions.setAttribute("role", "group");
  versions.setAttribute("aria-label", "Versions of this message");
  versions.hidden = true;
  view.previousVersion = versionButton("previous", "‹", "Previous version");
  view.versionCount = element("span", "version-count");
  view.nextVersion = versionButton("next", "›", "Next version");
  versions.append(view.previousVersion, view.versionCount, view.nextVersion);
  view.versionSwitch = versions;
  return versions;
}

function versionButton(action, symbol, label) {
  const button = element("button", `version-button action-${action}`, symbol);
  button.type = "button";
  button.dataset.action = action;
  button.setAttribute("aria-label", label);
  button.title = label;
  return button;
}

// A plain form post (the server answers with a redirect to the new conversation), with the page's CSRF token.
function createForkForm(messageId, label, title) {
  const form = element("form", "fork-form");
  form.method = "post";
  form.action = chat.root.dataset.forkUrl;
  form.dataset.action = "fork";
  form.hidden = true;
  for (const [name, value] of [["csrfmiddlewaretoken", pageCsrfToken()], ["message", messageId]]) {
    const input = element("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.append(input);
  }
  const button = element("button", "message-action action-fork", label);
  button.type = "submit";
  button.title = title;
  form.append(button);
  return form;
}

// Runs after every render, but does its work only when something it depends on changed: the path, a message
// (not a delta: a delta changes no action), an editor, the connection, a reply streaming.
export function updateActions() {
  const streaming = isStreaming();
  const idle = !streaming && isConnected();
  const state = `${chat.revision}:${streaming}:${idle}`;
  if (state === chat.actionsShown) return;
  chat.actionsShown = state;
  const last = chat.path.length ? chat.path[chat.path.length - 1].id : null;
  for (const { id, versions } of chat.path) {
    const view = chat.views.get(id);
    if (!view) continue;
    const { message } = view;
    const show = {
      copy: !view.editing && message.status !== "streaming",
      continue: idle && id === last && message.stop_reason === "max_tokens",
      regenerate: idle && message.role === "assistant",
      fork: !streaming && message.role === "assistant",
      edit: idle && message.role === "user" && !view.editing,
      delete: idle && !view.editing,
    };
    for (const control of view.actions.children) {
      if (control.dataset.action) control.hidden = !show[control.dataset.action];
    }
    if (view.lengthNote) view.lengthNote.hidden = message.stop_reason !== "max_tokens";
    updateVersionSwitch(view, versions, idle);
  }
}

function updateVersionSwitch(view, versions, enabled) {
  const index = versions.indexOf(view.message.id);
  view.versionSwitch.hidden = versions.length < 2;
  view.versionCount.textContent = `${index + 1} / ${versions.length}`;
  view.previousVersion.disabled = !enabled || index <= 0;
  view.nextVersion.disabled = !enabled || index >= versions.length - 1;
}
