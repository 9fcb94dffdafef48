"""The MCP connector, offline: `mcp_tool_use` and `mcp_tool_result` blocks, and no server is ever called.

The offline model cannot reach an MCP server, so it cannot list a server's tools: a toolset's tools are the
keys of its `configs` (those enabled, with `default_config.enabled` as the default), or the names in its pinned
`tools` listing, or, when it names none, a single made-up tool `echo`. A turn that says "use the <server>
<tool>" calls that tool; "ask <server>" calls the server's only tool when it has exactly one.
"""

import json
import re
import uuid

from chat.llm.offline.blocks import ReplyBlock

INVENTED_TOOL = "echo"
MAX_INPUT_CHARS = 200
FAKE_ANSWER = "offline model: no MCP server was called"


def toolset_tools(toolset: dict) -> list[str]:
    """The tools of a toolset that the model may call, as far as the offline model can know them."""
    default = toolset.get("default_config") if isinstance(toolset.get("default_config"), dict) else {}
    enabled_by_default = default.get("enabled", True) is not False
    configs = toolset.get("configs") if isinstance(toolset.get("configs"), dict) else {}
    listing = toolset.get("tools") if isinstance(toolset.get("tools"), list) else []
    names = list(configs) + [tool["name"] for tool in listing if isinstance(tool, dict) and "name" in tool]
    names = list(dict.fromkeys(name for name in names if isinstance(name, str) and name))
    if not names:
        return [INVENTED_TOOL] if enabled_by_default else []
    return [
        name for name in names if (configs.get(name) or {}).get("enabled", enabled_by_default) is not False
    ]


def mcp_blocks(tools: list[dict], servers: list[dict], asks: str) -> list[ReplyBlock]:
    """The MCP calls a turn asks for, each an mcp_tool_use block and its result."""
    known = {server.get("name") for server in servers if isinstance(server, dict)}
    blocks: list[ReplyBlock] = []
    for toolset in tools:
        server = toolset.get("mcp_server_name")
        if toolset.get("type") != "mcp_toolset" or server not in known:
            continue
        names = toolset_tools(toolset)
        # One scan of the turn per server, however many tools it has: the names asked for, then those offered.
        asked = {
            match.group(1).lower()
            for match in re.finditer(
                rf"\buse\s+(?:the\s+)?{re.escape(server)}\s+([\w-]+(?:\.[\w-]+)*)", asks, re.IGNORECASE
            )
        }
        chosen = [name for name in names if name.lower() in asked]
        if (
            not chosen
            and len(names) == 1
            and re.search(rf"\bask\s+(?:the\s+)?{re.escape(server)}\b", asks, re.IGNORECASE)
        ):
            chosen = names
        for name in chosen:
            call_id = f"mcptoolu_offline_{uuid.uuid4().hex[:24]}"
            arguments = {"text": " ".join(asks.split())[:MAX_INPUT_CHARS]}
            blocks.append(ReplyBlock("text", f"I will call `{name}` on the MCP server `{server}`."))
            blocks.append(
                ReplyBlock("mcp_tool_use", json.dumps(arguments), name, call_id, server_name=server)
            )
            answer = f"{FAKE_ANSWER}; {server}'s {name} would have answered here."
            result = {
                "type": "mcp_tool_result",
                "tool_use_id": call_id,
                "is_error": False,
                "content": [{"type": "text", "text": answer}],
            }
            blocks.append(ReplyBlock(result["type"], whole=result))
    return blocks
