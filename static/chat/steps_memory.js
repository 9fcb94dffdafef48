// The memory tool's calls (chat/llm/memory_tool.py) as steps that say what Claude did with the user's memory:
// "Memory · viewed /memories", "Memory · saved notes.md". The step itself (input, result, state) is the
// ordinary tool step of render.js; only its summary's words change.

const { toolInput } = window.ChatRender;

const ROOT = "/memories";

// The name a path is shown by: relative to /memories, which is shown whole.
function shownPath(path) {
  if (typeof path !== "string") return "";
  return path.startsWith(`${ROOT}/`) ? path.slice(ROOT.length + 1) : path;
}

export function memoryAction(input) {
  if (!input || typeof input !== "object") return "…";
  const path = shownPath(input.path);
  switch (input.command) {
    case "view":
      return input.path === ROOT || input.path === `${ROOT}/` ? `viewed ${ROOT}` : `read ${path}`;
    case "create":
      return `saved ${path}`;
    case "str_replace":
    case "insert":
      return `updated ${path}`;
    case "delete":
      return `deleted ${path}`;
    case "rename":
      return `renamed ${shownPath(input.old_path)} to ${shownPath(input.new_path)}`;
    default:
      return String(input.command || "…");
  }
}

// `node`: a step renderToolStep made for `block`; a memory call's summary says what it did, in words.
export function memoryStepRelabel(node, block) {
  if (block.name !== "memory") return node;
  node.classList.add("memory-step");
  node.querySelector(".tool-name").textContent = "Memory";
  const { input } = toolInput(block);
  let argument = node.querySelector(".tool-argument");
  if (!argument) {
    argument = document.createElement("span");
    argument.className = "tool-argument";
    node.querySelector(".tool-name").after(argument);
  }
  argument.textContent = memoryAction(input);
  return node;
}
