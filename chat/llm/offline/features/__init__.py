"""What the offline model emits for the API's newer features, one module each.

- citations.py: quotes of the request's documents that have citations enabled (char, page and content block
  locations), and of search results and fetched pages, as text blocks that carry their citation.
- web.py: the web search and web fetch server tools: a `server_tool_use` block and its result block, with
  fake results (under https://example.com/... or the allowed domains), the domain rules and `max_uses`.
- code_execution.py: the code execution server tool: the code written to a file, a fake run, produced files
  served by the offline Files API, and the response's `container`.
- memory.py: the memory tool's calls (client-side: the application answers them).
- mcp.py: the MCP connector's `mcp_tool_use` and `mcp_tool_result` blocks (no server is ever called).

Everything is deterministic and labelled fake: the same request gets the same blocks (ids aside).
"""

import uuid


def offered_tool(tools: list[dict], *type_prefixes: str) -> dict | None:
    """The first tool definition whose `type` starts with one of `type_prefixes` (versions differ by date)."""
    for tool in tools:
        kind = tool.get("type")
        if isinstance(kind, str) and kind.startswith(type_prefixes):
            return tool
    return None


def server_tool_id() -> str:
    return f"srvtoolu_offline_{uuid.uuid4().hex[:24]}"
