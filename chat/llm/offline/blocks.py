"""One block of an offline reply, before it becomes JSON: what compose_reply (reply.py) and the features
(features/) produce, and what model.py sends whole or streams."""

from dataclasses import dataclass

# Blocks whose text is a tool's input as JSON, streamed as input_json_delta and never cut by max_tokens.
TOOL_CALLS = ("tool_use", "server_tool_use", "mcp_tool_use")


@dataclass(frozen=True)
class ReplyBlock:
    type: str  # "thinking", "text", one of TOOL_CALLS, or a result block's type (then `whole` is the block)
    text: str = ""  # the thinking, the text, or the tool input as JSON: what streams, token by token
    tool_name: str = ""
    id: str = ""  # a call's id, which its result names (`tool_use_id`); made up when empty
    whole: dict | None = None  # a result block, sent whole in content_block_start, as the API sends it
    citations: tuple[dict, ...] = ()  # a text block's citations, streamed as citations_delta before the text
    server_name: str = ""  # an mcp_tool_use block's MCP server
