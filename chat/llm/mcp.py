"""Remote MCP servers in a reply's requests: the API's MCP connector (connectors/ keeps the servers).

A request that offers servers names each in `mcp_servers` (`{"type": "url", "url", "name",
"authorization_token"}`), offers its tools with one `mcp_toolset` tool per server, and goes through the beta
Messages API with the connector's beta header (MCP_BETA): chat/replies/generation.py sends any request that
carries `betas` there. An allowlist is the toolset's `default_config: {"enabled": false}` with each allowed tool
switched on in `configs`; no allowlist leaves every tool of the server on.

The API calls the server itself and puts both blocks in the reply: `mcp_tool_use` {id, name, server_name,
input} and `mcp_tool_result` {tool_use_id, is_error, content}. They are stored as they came and sent back in
later turns as assistant blocks, which the API accepts only while the request offers their server again: the
blocks of a server no longer offered (switched off, deleted, or out of the user's groups) are left out of the
history, and so is a call whose result never came.
"""

from dataclasses import dataclass

from connectors.selectors import mcp_servers_for

MCP_BETA = "mcp-client-2025-11-20"
MCP_BLOCK_TYPES = ("mcp_tool_use", "mcp_tool_result")


@dataclass(frozen=True)
class McpOffer:
    """One server as a request offers it: its `mcp_servers` entry and its `mcp_toolset` tool."""

    name: str
    definition: dict
    toolset: dict


def mcp_offers_for(user) -> tuple[McpOffer, ...]:
    """The servers a reply of `user` offers, read once per reply (request_parts)."""
    return tuple(mcp_offer(server) for server in mcp_servers_for(user))


def mcp_offer(server) -> McpOffer:
    definition = {"type": "url", "url": server.url, "name": server.name}
    if server.authorization_token:
        definition["authorization_token"] = server.authorization_token
    toolset = {"type": "mcp_toolset", "mcp_server_name": server.name}
    if server.allowed_tools:
        toolset["default_config"] = {"enabled": False}
        toolset["configs"] = {name: {"enabled": True} for name in server.allowed_tools}
    return McpOffer(server.name, definition, toolset)


def mcp_request_add(request: dict, offers: tuple[McpOffer, ...]) -> None:
    """Offer the servers in `request` (after its own tools, so the tools' cache prefix is the same with or
    without them). Copies: the request's breakpoints are set on its tools."""
    if not offers:
        return
    request["mcp_servers"] = [dict(offer.definition) for offer in offers]
    request["tools"] = [*request.get("tools", []), *(dict(offer.toolset) for offer in offers)]
    request["betas"] = [*request.get("betas", []), MCP_BETA]


def mcp_blocks_sendable(blocks: list[dict], offers: tuple[McpOffer, ...]) -> list[dict]:
    """`blocks` without the MCP blocks the API would refuse in this request: those of servers it does not offer,
    and calls without a result (a reply stopped between the two)."""
    if not any(block.get("type") in MCP_BLOCK_TYPES for block in blocks):
        return blocks
    offered = {offer.name for offer in offers}
    answered = {block.get("tool_use_id") for block in blocks if block.get("type") == "mcp_tool_result"}
    kept_calls = {
        block.get("id") for block in blocks
        if block.get("type") == "mcp_tool_use" and block.get("server_name") in offered and block.get("id") in answered
    }
    return [
        block for block in blocks
        if block.get("type") not in MCP_BLOCK_TYPES
        or (block["type"] == "mcp_tool_use" and block.get("id") in kept_calls)
        or (block["type"] == "mcp_tool_result" and block.get("tool_use_id") in kept_calls)
    ]


def mcp_result_text(block: dict) -> str:
    """An `mcp_tool_result`'s content as text (a string, or text blocks): what the transcript shows."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""
