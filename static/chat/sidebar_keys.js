/**
 * The sidebar's conversations from the keyboard: one Tab stop per conversation (its link), and the arrow keys
 * for the rest, as in the WAI-ARIA APG's layout grid: Right and Left move between a conversation's link and
 * its Rename, Pin, Archive and Delete buttons, Up and Down to the conversation above or below (keeping the
 * column), Home and End to the first and last conversation, Escape from an action back to its link.
 *
 * The list keeps its native semantics (links in lists under date headings, in a navigation landmark): screen
 * reader users browse it as a list of links and still find each action button there with the virtual cursor,
 * since the buttons only leave the Tab order (tabindex="-1"), never the page. A mouse or a finger uses them
 * as before. Without this module the buttons stay ordinary Tab stops, so nothing needs it to work.
 *
 * It talks to the page only through the DOM (#conversation-list, .conversation-item, .conversation-link,
 * .conversation-actions); sidebar.js owns what the buttons do (rename, confirm before delete).
 */

const LIST_ID = "conversation-list";
const ITEM = ".conversation-item";
const STOPS = ".conversation-link, .conversation-actions button";

function stopsOf(item) {
  return [...item.querySelectorAll(STOPS)].filter((stop) => !stop.hidden && !stop.closest("[hidden]"));
}

function itemsOf(list) {
  return [...list.querySelectorAll(ITEM)].filter((item) => stopsOf(item).length > 0);
}

/** The action buttons leave the Tab order; the links stay in it (one stop per conversation). */
function takeActionsOutOfTabOrder(list) {
  for (const button of list.querySelectorAll(".conversation-actions button")) {
    button.tabIndex = -1;
  }
}

function moveFocus(list, from, key) {
  const item = from.closest(ITEM);
  const stops = stopsOf(item);
  const column = stops.indexOf(from);
  const items = itemsOf(list);
  const row = items.indexOf(item);
  switch (key) {
    case "ArrowRight":
      return stops[Math.min(column + 1, stops.length - 1)];
    case "ArrowLeft":
      return stops[Math.max(column - 1, 0)];
    case "ArrowDown":
    case "ArrowUp": {
      const next = items[row + (key === "ArrowDown" ? 1 : -1)];
      if (!next) return null;
      const nextStops = stopsOf(next);
      return nextStops[Math.min(column, nextStops.length - 1)];
    }
    case "Home":
      return stopsOf(items[0])[0];
    case "End":
      return stopsOf(items[items.length - 1])[0];
    case "Escape":
      return column > 0 ? stops[0] : null;
    default:
      return null;
  }
}

function initSidebarKeys() {
  const list = document.getElementById(LIST_ID);
  if (!list) return;
  takeActionsOutOfTabOrder(list);
  // sidebar.js may swap items' contents (a rename's input); any button it adds leaves the Tab order too.
  const observer = new MutationObserver(() => takeActionsOutOfTabOrder(list));
  observer.observe(list, { childList: true, subtree: true });

  list.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    const from = event.target.closest(STOPS);
    // The rename input and anything else that takes typing keeps its keys.
    if (!from || from !== event.target) return;
    const to = moveFocus(list, from, event.key);
    if (!to) return;
    event.preventDefault();
    to.focus();
  });
}

initSidebarKeys();
