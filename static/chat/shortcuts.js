// Keyboard shortcuts for the chat page, as claude.ai and ChatGPT users know them, and their help dialog
// (templates/chat/_shortcuts_dialog.html). The page is reached only through the DOM: the buttons and forms it
// already has are clicked or submitted, so a shortcut does exactly what its button does.
//
// Chosen not to clash with the browser or with text editing: the Ctrl (⌘ on a Mac) combinations all need
// Shift or are Ctrl+K and Ctrl+/, which no text field uses, and they work while typing; "?" works only outside
// text fields, so typing a question mark types one. Esc stops a streaming reply unless something else owns
// Esc at that moment: an open dialog, the sidebar drawer, an inline editor (rename, edit a message).

const IS_MAC = /mac|iphone|ipad/i.test(navigator.userAgentData?.platform || navigator.platform || "");

// A Mac's shortcuts use ⌘, where Ctrl is the text editing keys' (Ctrl+K deletes to the end of the line).
function withMod(event) {
  return IS_MAC ? event.metaKey && !event.ctrlKey : event.ctrlKey && !event.metaKey;
}

function isTextField(target) {
  return target instanceof Element && (target.isContentEditable || target.matches("input, textarea, select"));
}

function visible(element) {
  return element !== null && !element.hidden && !element.disabled;
}

// The sidebar's New chat, clicked as by the mouse.
function newChat() {
  const link = document.querySelector("#sidebar .new-chat");
  if (!link) return false;
  link.click();
  return true;
}

// The sidebar's search box, when the page has one. On a narrow screen the sidebar is a drawer, opened first
// by its own button so that the box can take the focus.
const SEARCH_BOX = "#sidebar-search-input";

function focusSearch() {
  const search = document.querySelector(SEARCH_BOX);
  if (!search) return false;
  // The menu button is shown only where the sidebar is a drawer.
  const menu = document.getElementById("menu-button");
  if (menu && menu.getClientRects().length && menu.getAttribute("aria-expanded") !== "true") menu.click();
  search.focus();
  search.select();
  return true;
}

function focusComposer() {
  const input = document.getElementById("composer-input");
  if (!input) return false;
  input.focus();
  return true;
}

function stopReply() {
  const stop = document.getElementById("stop-button");
  if (!visible(stop)) return false;
  stop.click();
  return true;
}

// The newest reply's own Copy button (hidden while that reply streams: then the one before it), so the copy
// is what a click would copy and the button says "Copied".
function copyLastReply() {
  const buttons = document.querySelectorAll("#message-list .message-assistant button[data-action=copy]:not([hidden])");
  const button = buttons[buttons.length - 1];
  if (!button) return false;
  button.click();
  return true;
}

// Esc belongs to whatever is open or being edited; only when nothing is does it stop the reply.
function escapeIsTaken(target) {
  if (document.querySelector("dialog[open]")) return true;
  if (document.querySelector(".app.sidebar-open")) return true;
  if (target instanceof Element && target.closest(".conversation-actions")) return true; // back to its link
  return isTextField(target) && target.id !== "composer-input";
}

function initHelp() {
  const dialog = document.getElementById("shortcuts-dialog");
  const button = document.getElementById("shortcuts-button");
  if (!dialog) return () => false;
  if (IS_MAC) for (const key of dialog.querySelectorAll(".shortcut-mod")) key.textContent = "⌘";
  for (const row of dialog.querySelectorAll("[data-requires]")) {
    row.hidden = !document.querySelector(row.dataset.requires);
  }
  // The element that had the focus gets it back on close (Esc, the Close button), as for any dialog.
  let opener = null;
  dialog.addEventListener("close", () => {
    if (opener && opener.isConnected) opener.focus();
    opener = null;
  });
  function open() {
    if (dialog.open) return true;
    opener = document.activeElement;
    dialog.showModal();
    return true;
  }
  if (button) {
    button.hidden = false;
    button.addEventListener("click", open);
  }
  return open;
}

function onKeydown(event, openHelp) {
  if (event.isComposing || event.repeat) return;
  const { key } = event;
  const plain = !event.ctrlKey && !event.metaKey && !event.altKey;
  const dialogOpen = document.querySelector("dialog[open]") !== null;
  let done = false;
  if (key === "Escape" && plain) {
    if (event.shiftKey) done = !dialogOpen && focusComposer();
    else if (!escapeIsTaken(event.target)) stopReply(); // left to the browser too: nothing else wanted this Esc
  } else if (dialogOpen) {
    return; // a modal dialog has the keyboard
  } else if (withMod(event) && !event.altKey) {
    const lower = key.toLowerCase();
    if (event.shiftKey && lower === "o") done = newChat();
    else if (event.shiftKey && lower === "c") done = copyLastReply();
    else if (!event.shiftKey && lower === "k") done = focusSearch();
    else if (!event.shiftKey && (key === "/" || event.code === "Slash")) done = openHelp();
  } else if (key === "?" && plain && !isTextField(event.target)) {
    done = openHelp();
  }
  // Only a shortcut that did something takes the key from the browser: without a search box, Ctrl+K is the
  // browser's again.
  if (done) event.preventDefault();
}

const openHelp = initHelp();
// Capturing: the page's own Esc handlers (the drawer's, the editors') run later and close what they own, so the
// state read here is the one the key was pressed in.
document.addEventListener("keydown", (event) => onKeydown(event, openHelp), { capture: true });
