// Steps of the tools the API runs itself (chat/llm/server_tools.py): web search, web fetch and code execution.
// A `server_tool_use` block is the call (its input streams as JSON, like a tool_use's); its result is the block
// whose `tool_use_id` names it (`web_search_tool_result`, `web_fetch_tool_result`, `bash_code_execution_tool_result`,
// ...), which arrives whole. Both are the model's and the web's words, never trusted: everything is text, and only
// http(s) addresses become links, opening in a new tab without a referrer or a handle on this page.

const { element, toolInput } = window.ChatRender;

const LABELS = {
  web_search: "Searched the web",
  web_fetch: "Read a page",
  code_execution: "Ran code",
  bash_code_execution: "Ran a command",
  text_editor_code_execution: "Edited a file",
};
const MAX_SHOWN_RESULTS = 20;

// Whether a block is a server tool's result: shown inside its call's step, not on its own.
export function isServerResult(block) {
  return typeof block.type === "string" && block.type.endsWith("_tool_result") && block.type !== "tool_result";
}

// The step for call `block` at `index`, rebuilt only when its input, result or state changed (the open ones stay
// open, in `view.openSteps`).
export function keptServerStep(view, kept, index, block, result, streaming) {
  const input = block.partial_json !== undefined ? block.partial_json : JSON.stringify(block.input || {});
  const state = result ? (resultError(result) ? "error" : "done") : streaming ? "running" : "skipped";
  const shown = `${input}\u0000${state}`;
  const entry = kept.get(index);
  if (entry && entry.type === "server_tool_use" && entry.shown === shown && entry.result === result) return entry.node;
  const openSteps = view.openSteps || (view.openSteps = new Set());
  const node = renderServerStep(view.message.id, block, result, state, openSteps);
  kept.set(index, { type: "server_tool_use", node, shown, result });
  return node;
}

// The step on a shared conversation's page (shared.js, through shared_steps.js): the same, read-only, its produced
// files named without links (their download is the owner's alone).
export function sharedServerStep(block, result) {
  const state = result ? (resultError(result) ? "error" : "done") : "skipped";
  return renderServerStep(null, block, result, state, new Set());
}

function renderServerStep(messageId, block, result, state, openSteps) {
  const { input } = toolInput(block);
  const details = element("details", `tool-step server-step tool-${state}`);
  details.dataset.toolName = block.name || "";
  details.open = openSteps.has(block.id);
  details.addEventListener("toggle", () => (details.open ? openSteps.add(block.id) : openSteps.delete(block.id)));
  const summary = element("summary", "tool-summary");
  summary.append(element("span", "tool-name", LABELS[block.name] || block.name || "server tool"));
  const given = typeof input === "object" && input !== null ? input : {};
  // The text editor's `command` is what it does to the file (view, create, str_replace), not code to show.
  const editor = block.name === "text_editor_code_execution";
  const argument = editor
    ? [given.command, given.path].filter((word) => typeof word === "string").join(" ")
    : given.query || given.url || given.command || given.path || "";
  if (argument) summary.append(element("span", "tool-argument", firstLine(argument)));
  summary.append(element("span", "tool-outcome", outcome(result, state)));
  details.append(summary);
  const code = editor ? given.file_text || given.new_str : given.code || given.command;
  if (typeof code === "string" && code) {
    details.append(element("div", "tool-label", editor ? "File" : "Code"), element("pre", "tool-io", code));
  }
  if (result) details.append(...resultNodes(messageId, result));
  return details;
}

function outcome(result, state) {
  if (state === "running") return "running…";
  if (state === "skipped") return "not run";
  const error = resultError(result);
  if (error) return `failed (${error})`;
  const content = result.content;
  if (Array.isArray(content)) return `${content.length} ${content.length === 1 ? "source" : "sources"}`;
  if (content && typeof content.return_code === "number") return `exit ${content.return_code}`;
  return "done";
}

// The error code of a failed result (its content is an error object), else "".
function resultError(result) {
  const content = result.content;
  if (content && !Array.isArray(content) && typeof content.type === "string" && content.type.endsWith("_error")) {
    return content.error_code || "error";
  }
  return "";
}

function resultNodes(messageId, result) {
  if (resultError(result)) return [];
  const content = result.content;
  if (Array.isArray(content)) return [sourceList(content)];
  if (!content || typeof content !== "object") return [];
  if (content.type === "web_fetch_result") {
    const title = content.content && content.content.title;
    return [sourceList([{ url: content.url, title: title || content.url }])];
  }
  const nodes = [];
  if (typeof content.content === "string") nodes.push(element("pre", "tool-io", content.content)); // a viewed file
  if (content.stdout) nodes.push(element("div", "tool-label", "Output"), element("pre", "tool-io", content.stdout));
  if (content.stderr) nodes.push(element("div", "tool-label", "Errors"), element("pre", "tool-io", content.stderr));
  const files = (Array.isArray(content.content) ? content.content : []).filter((item) => item && item.file_id);
  if (files.length) nodes.push(element("div", "tool-label", "Files"), fileList(messageId, files));
  return nodes;
}

// Search results and fetched pages: the title as a link, and the site it is on.
function sourceList(results) {
  const list = element("ul", "server-sources");
  for (const source of results.slice(0, MAX_SHOWN_RESULTS)) {
    const item = element("li", "server-source");
    const url = webAddress(source.url);
    if (url) {
      const link = element("a", "server-source-link", source.title || url.href);
      link.href = url.href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      item.append(link, element("span", "server-source-domain", url.hostname));
    } else item.append(element("span", "server-source-title", source.title || String(source.url || "")));
    list.append(item);
  }
  return list;
}

// Produced files, downloaded through the owner-checked view (chat/server_files.py).
function fileList(messageId, files) {
  const list = element("ul", "server-files");
  for (const file of files) {
    if (messageId === null) {
      list.append(element("li", "server-file-name", file.filename || file.file_id));
      continue;
    }
    const link = element("a", "server-file-link", file.filename || file.file_id);
    link.href = `/messages/${encodeURIComponent(messageId)}/files/${encodeURIComponent(file.file_id)}/`;
    link.setAttribute("download", "");
    const item = element("li");
    item.append(link);
    list.append(item);
  }
  return list;
}

function webAddress(text) {
  try {
    const url = new URL(String(text || ""));
    return url.protocol === "https:" || url.protocol === "http:" ? url : null;
  } catch {
    return null;
  }
}

function firstLine(text) {
  const line = String(text).split("\n")[0];
  return line.length > 60 ? line.slice(0, 59) + "…" : line;
}
