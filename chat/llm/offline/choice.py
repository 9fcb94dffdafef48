"""Which client tools the offline model calls, as `tool_choice` lets it, with input made from each schema.

- `auto` (the default): the app's own tools when the turn asks for them (reply.py knows their phrasings), and
  any other offered client tool that the turn names (a word of its name, such as "weather" for `get_weather`).
- `any`: at least one tool: those of `auto`, else the first client tool offered.
- `tool`: exactly the named one.
- `none`: never a tool.
`disable_parallel_tool_use` keeps the first call only. A forced call (`any`, `tool`) comes without text before
it, as the API prefills the turn with the tool call. The memory tool is a client tool too (forced, it views
/memories). Server tools (web search, web fetch, code execution) are not: features/ emulates their calls, and
`forced_server_tool` says which one `tool_choice` forces (named, or `any` when no client tool is offered), which
the API then runs within the reply.
"""

import re

from chat.llm.offline.features import memory
from chat.llm.offline.structured import value_for_schema
from chat.llm.offline.validation import InvalidRequest

CHOICE_TYPES = ("auto", "any", "tool", "none")
# The app's tools, whose calls reply.py makes from what the turn says; a mention of their names is not a call.
APP_TOOLS = frozenset({"calculator", "current_time", "search_conversations"})
NAME_WORD = re.compile(r"[a-z0-9]+")
# Words of a tool's name that say nothing about what it is for, so a mention of them calls nothing.
GENERIC_WORDS = frozenset({"get", "set", "list", "make", "do", "run", "tool", "fetch", "find", "the", "a", "of"})


def read_tool_choice(choice: object, tools: list[dict], *, thinking: bool) -> dict:
    """The request's `tool_choice`, checked as the API checks it; `{"type": "auto"}` when absent."""
    if choice is None:
        return {"type": "auto"}
    if not isinstance(choice, dict) or choice.get("type") not in CHOICE_TYPES:
        raise InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    allowed = {"type", "disable_parallel_tool_use"} | ({"name"} if choice["type"] == "tool" else set())
    if extra := sorted(set(choice) - allowed):
        raise InvalidRequest(f"tool_choice.{choice['type']}.{extra[0]}: Extra inputs are not permitted")
    if choice["type"] == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("tool_choice.tool.name: Field required")
        if name not in {tool.get("name") for tool in tools}:
            raise InvalidRequest(f"Tool '{name}' not found in provided tools")
    if choice["type"] in ("any", "tool") and not tools:
        raise InvalidRequest("tool_choice may only be specified while providing tools.")
    if choice["type"] in ("any", "tool") and thinking:
        raise InvalidRequest("Thinking may not be enabled when tool_choice forces tool use.")
    return choice


def is_forced(choice: dict) -> bool:
    return choice["type"] in ("any", "tool")


def choose_calls(
    asks: str, tools: list[dict], choice: dict, app_calls: list[tuple[str, dict]]
) -> list[tuple[str, dict]]:
    """The calls of this turn. `asks`: the last user turn's text when it asks something (empty after tool
    results); `app_calls`: the app's tools that `asks` plainly asks for, from reply.py."""
    kind = choice["type"]
    if kind == "none":
        return []
    by_name = {tool["name"]: tool for tool in tools if _is_client_tool(tool)}
    memory_names = {tool["name"] for tool in tools if _is_memory_tool(tool)}
    if kind == "tool" and choice["name"] in memory_names:
        return [(choice["name"], dict(memory.VIEW))]
    if kind == "tool":
        if choice["name"] not in by_name:
            return []  # a server tool, forced: features/ emulates its call (forced_server_tool)
        named = [call for call in app_calls if call[0] == choice["name"]]
        calls = named or [(choice["name"], _input(by_name[choice["name"]]))]
    else:
        calls = list(app_calls) + [
            (name, _input(tool)) for name, tool in by_name.items() if name not in APP_TOOLS and _named_in(name, asks)
        ]
        if kind == "any" and not calls and by_name:
            first = next(iter(by_name.values()))
            calls = [(first["name"], _input(first))]
        elif kind == "any" and not calls and memory_names:
            calls = [(next(iter(memory_names)), dict(memory.VIEW))]
    return calls[:1] if choice.get("disable_parallel_tool_use") else calls


def forced_server_tool(tools: list[dict], choice: dict) -> dict | None:
    """The server tool that `tool_choice` makes the reply call: the one it names, or, with `any` and no client
    tool offered, the first server tool; None when it forces none."""
    server = [tool for tool in tools if _is_server_tool(tool)]
    if choice["type"] == "tool":
        return next((tool for tool in server if tool.get("name") == choice["name"]), None)
    if choice["type"] == "any" and not any(_is_client_tool(t) or _is_memory_tool(t) for t in tools):
        return server[0] if server else None
    return None


def _input(tool: dict) -> dict:
    value = value_for_schema(tool.get("input_schema", {}))
    return value if isinstance(value, dict) else {}


def _is_client_tool(tool: dict) -> bool:
    return tool.get("type", "custom") == "custom"


def _is_memory_tool(tool: dict) -> bool:
    return str(tool.get("type", "")).startswith(memory.TOOL_TYPE_PREFIX)


def _is_server_tool(tool: dict) -> bool:
    """A named server tool (an MCP toolset is named by its server and is never forced by name)."""
    return not _is_client_tool(tool) and not _is_memory_tool(tool) and bool(tool.get("name"))


def _named_in(name: str, text: str) -> bool:
    """Whether `text` mentions what the tool `name` is about: its whole name, or a telling word of it."""
    lowered = text.lower()
    if not lowered:
        return False
    words = set(NAME_WORD.findall(lowered))
    telling = [word for word in NAME_WORD.findall(name.lower()) if word not in GENERIC_WORDS and len(word) > 2]
    return name.lower() in lowered or any(word in words for word in telling)
