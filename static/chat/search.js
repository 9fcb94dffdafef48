// Search in the sidebar (docs/search.md): the box at the top of the sidebar asks `GET /search/?q=` as the user
// types and lists what it finds; a result opens its conversation at the message (`?message=<id>`), and on such
// a page that message is scrolled into view and marked for a moment.
//
// A native ES module on its own: it needs nothing from the chat page's other modules, only the sidebar's markup
// (templates/chat/_sidebar.html) and the transcript's `article.message[data-message-id]`. The server marks the
// matches in each snippet with <mark> after escaping the rest (search/selectors.py), so a snippet is the one
// thing inserted as HTML; every other field goes in as text.

const DEBOUNCE_MS = 200;
const MAX_QUERY_CHARS = 200; // as search/selectors.py MAX_QUERY_CHARS
const FIND_MESSAGE_MS = 10000;

function initSearch() {
  const input = document.getElementById("sidebar-search-input");
  const list = document.getElementById("sidebar-search-results");
  const status = document.getElementById("sidebar-search-status");
  if (!input || !list || !status) return;

  let timer = null;
  let asked = ""; // the query of the request whose answer is awaited; a later one makes an earlier answer stale
  let controller = null;
  let active = -1;

  const options = () => [...list.querySelectorAll("[role=option]")];

  function clear() {
    clearTimeout(timer);
    controller?.abort();
    asked = "";
    list.replaceChildren();
    list.hidden = true;
    status.textContent = "";
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function select(index) {
    const all = options();
    if (!all.length) return;
    active = (index + all.length) % all.length;
    all.forEach((option, i) => option.setAttribute("aria-selected", String(i === active)));
    input.setAttribute("aria-activedescendant", all[active].id);
    all[active].scrollIntoView({ block: "nearest" });
  }

  function show(results) {
    list.replaceChildren(...results.map(resultOption));
    list.hidden = results.length === 0;
    input.setAttribute("aria-expanded", String(results.length > 0));
    input.removeAttribute("aria-activedescendant");
    active = -1;
    status.textContent = results.length
      ? `${results.length} ${results.length === 1 ? "result" : "results"}`
      : "Nothing found";
  }

  async function ask(query) {
    controller?.abort();
    controller = new AbortController();
    asked = query;
    try {
      const response = await fetch(`${input.dataset.searchUrl}?q=${encodeURIComponent(query)}`, {
        headers: { Accept: "application/json" },
        signal: controller.signal,
        credentials: "same-origin",
      });
      const body = await response.json();
      if (query !== asked) return;
      if (!response.ok) {
        list.replaceChildren();
        list.hidden = true;
        input.setAttribute("aria-expanded", "false");
        status.textContent = body.error || "The search failed.";
        return;
      }
      show(body.results);
    } catch (error) {
      if (error.name !== "AbortError" && query === asked) status.textContent = "The search failed.";
    }
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    const query = input.value.trim();
    if (!query) {
      clear();
      return;
    }
    if (query.length > MAX_QUERY_CHARS) {
      status.textContent = `A search can be at most ${MAX_QUERY_CHARS} characters long.`;
      return;
    }
    timer = setTimeout(() => ask(query), DEBOUNCE_MS);
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const count = options().length;
      if (!count) return;
      event.preventDefault();
      const down = event.key === "ArrowDown";
      select(active === -1 ? (down ? 0 : count - 1) : active + (down ? 1 : -1));
    } else if (event.key === "Enter") {
      const chosen = options()[active === -1 ? 0 : active];
      if (!chosen) return;
      event.preventDefault();
      window.location.assign(chosen.querySelector("a").href);
    } else if (event.key === "Escape" && input.value) {
      event.preventDefault();
      event.stopPropagation();
      input.value = "";
      clear();
    }
  });
}

function resultOption(result, index) {
  const option = document.createElement("li");
  option.className = "search-result";
  option.id = `search-result-${index}`;
  option.setAttribute("role", "option");
  option.setAttribute("aria-selected", "false");
  const link = document.createElement("a");
  link.className = "search-result-link";
  link.href = result.url;
  link.tabIndex = -1; // the box keeps the focus; Up and Down choose, Enter opens
  const title = document.createElement("span");
  title.className = "search-result-title";
  // A title hit's snippet is its title with the matches marked (escaped by the server, only <mark> added).
  if (result.message === null) title.innerHTML = result.snippet;
  else title.textContent = result.title;
  if (result.archived) {
    const archived = document.createElement("span");
    archived.className = "search-result-archived";
    archived.textContent = "Archived";
    title.append(" ", archived);
  }
  link.append(title);
  if (result.message !== null) {
    const snippet = document.createElement("span");
    snippet.className = "search-result-snippet";
    snippet.innerHTML = result.snippet; // escaped by the server, with only <mark> added
    link.append(snippet);
  }
  const date = document.createElement("time");
  date.className = "search-result-date";
  date.dateTime = result.date;
  date.textContent = new Date(result.date).toLocaleDateString();
  link.append(date);
  option.append(link);
  return option;
}

// On `/conversations/<id>/?message=<mid>`: the server put that message on the path it rendered (without storing
// it: the page's socket sends the `switch` once it opens, socket.js); bring it into view and mark it briefly. The transcript is built from the page's tree data by the chat modules, which run
// before this one; should it come later, it is waited for, a while.
function showLinkedMessage() {
  const id = new URLSearchParams(window.location.search).get("message");
  if (!id || !/^\d+$/.test(id)) return;
  const selector = `article.message[data-message-id="${id}"]`;
  // The class stays; its animation (chat.css) is what fades.
  const mark = (article) => {
    article.scrollIntoView({ block: "center" });
    article.classList.add("is-search-hit");
    // The reader came for this message: the transcript stops following its end (transcript.js), though the
    // message may sit within a few lines of it, until they send or jump to the latest.
    document.getElementById("message-list")?.setAttribute("data-linked-message", id);
  };
  const found = document.querySelector(selector);
  if (found) {
    mark(found);
    return;
  }
  const list = document.getElementById("message-list");
  if (!list) return;
  const observer = new MutationObserver(() => {
    const article = document.querySelector(selector);
    if (!article) return;
    observer.disconnect();
    mark(article);
  });
  observer.observe(list, { childList: true, subtree: true });
  setTimeout(() => observer.disconnect(), FIND_MESSAGE_MS);
}

initSearch();
showLinkedMessage();
