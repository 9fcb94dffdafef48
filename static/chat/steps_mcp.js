// Calls to remote MCP servers (chat/llm/mcp.py): the API runs them and puts an `mcp_tool_use` and its
// `mcp_tool_result` in the reply. Shown as the ordinary tool step of render.js, named "Asked <server>: <tool>",
// with the input and the result's text.

// An `mcp_tool_result`'s content as text: a string, or text blocks.
function resultText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((part) => (part && part.text) || "").join("\n");
  return "";
}

// The result, shaped as a tool_result for render.js.
export function mcpResult(block) {
  return { tool_use_id: block.tool_use_id, is_error: Boolean(block.is_error), content: resultText(block.content) };
}

// The call, named for the step.
export function mcpStepBlock(block) {
  return { ...block, name: `Asked ${block.server_name || "MCP server"}: ${block.name || "tool"}` };
}
