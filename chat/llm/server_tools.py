"""Anthropic's server tools in a reply: web search, web fetch and code execution.

The API runs these itself: the model's call comes back as a `server_tool_use` block and its result as the
tool's own result block (`web_search_tool_result`, `web_fetch_tool_result`, `bash_code_execution_tool_result`,
...), both in the assistant's turn; nothing runs here. So the reply keeps them as they came and sends them back
unchanged (the search results' `encrypted_content` included) in every later request of the conversation.

Every server tool is off until an admin turns it on (a ToolSetting row with enabled=True; unlike the built-in
client tools of chat/llm/tools.py, for which no row means on), and a request offers only the enabled ones its
model supports (`ModelSpec.server_tools`). The admin's options (ToolSetting.options, cleaned by
`options_clean`): allowed or blocked domains (the API refuses both at once) and the most uses per reply. The
API's `max_uses` counts one request, so the first request of a reply carries the admin's number and each later
one (tool rounds, paused turns carried on) only what the reply has left, leaving a tool out once none is
(`server_tool_definitions`). Web search also gets the user's approximate location from their settings.

Money: the usage reports each request's use (`usage.server_tool_use`); searches cost $10 per 1,000 beside the
tokens, a fetch costs only the tokens of what it fetched, and code execution is billed by container hours that no
response reports (docs/claude.md, "Server tools"), so only searches add to `ApiCall.server_tool_cost`.
"""

import re
from dataclasses import dataclass
from decimal import Decimal

from chat.models import ToolSetting

WEB_SEARCH = "web_search"
WEB_FETCH = "web_fetch"
CODE_EXECUTION = "code_execution"
SERVER_TOOL_NAMES = (WEB_SEARCH, WEB_FETCH, CODE_EXECUTION)

MAX_USES_LIMIT = 20
DEFAULT_MAX_USES = 5
MAX_DOMAINS = 50
# A hostname as the API's domain lists take it: labels of letters, digits and hyphens, no scheme, port or path
# (a leading "*." is not accepted either: a domain already covers its subdomains).
HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


@dataclass(frozen=True)
class ServerTool:
    name: str
    type: str  # the version sent: the one place to move to a newer one
    label: str  # the picker's and the admin's word for it
    usage_field: str  # its count in `usage.server_tool_use`, "" when the usage reports none
    price_per_use: Decimal  # dollars per use beside the tokens
    domains: bool = True  # takes allowed/blocked domains and max_uses
    location: bool = False  # takes the user's approximate location


SERVER_TOOLS: dict[str, ServerTool] = {
    WEB_SEARCH: ServerTool(
        WEB_SEARCH, "web_search_20250305", "web search", "web_search_requests", Decimal("0.01"), location=True,
    ),
    WEB_FETCH: ServerTool(WEB_FETCH, "web_fetch_20250910", "web fetch", "web_fetch_requests", Decimal(0)),
    CODE_EXECUTION: ServerTool(
        CODE_EXECUTION, "code_execution_20250825", "code execution", "code_execution_requests", Decimal(0),
        domains=False,
    ),
}


@dataclass(frozen=True)
class ServerToolChoice:
    """One enabled server tool and its admin's options, read once per reply."""

    name: str
    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    max_uses: int = DEFAULT_MAX_USES

    @property
    def tool(self) -> ServerTool:
        return SERVER_TOOLS[self.name]


def server_tools_enabled() -> tuple[ServerToolChoice, ...]:
    """The server tools an admin has turned on, with their options, in SERVER_TOOL_NAMES order: one query."""
    rows = {
        row.name: row for row in ToolSetting.objects.filter(name__in=SERVER_TOOL_NAMES, enabled=True)
    }
    return tuple(_choice(rows[name]) for name in SERVER_TOOL_NAMES if name in rows)


def _choice(row: ToolSetting) -> ServerToolChoice:
    """The row's options, read defensively: a row written before they were validated never breaks a reply."""
    options = row.options if isinstance(row.options, dict) else {}
    try:
        cleaned = options_clean(row.name, options)
    except ValueError:
        cleaned = {}
    return ServerToolChoice(
        name=row.name,
        allowed_domains=tuple(cleaned.get("allowed_domains", ())),
        blocked_domains=tuple(cleaned.get("blocked_domains", ())),
        max_uses=cleaned.get("max_uses", DEFAULT_MAX_USES),
    )


def options_clean(name: str, options: dict) -> dict:
    """A server tool's options as stored: lower-cased hostnames, allowed or blocked (never both: the API
    refuses a request with both), max_uses within 1 to MAX_USES_LIMIT; neither for code execution, which takes
    none. Raises ValueError saying what is wrong."""
    tool = SERVER_TOOLS[name]
    cleaned = {}
    for key in ("allowed_domains", "blocked_domains"):
        domains = [str(domain).strip().lower() for domain in options.get(key) or () if str(domain).strip()]
        if domains and not tool.domains:
            raise ValueError(f"{tool.label} takes no domain lists.")
        if len(domains) > MAX_DOMAINS:
            raise ValueError(f"At most {MAX_DOMAINS} domains.")
        wrong = [domain for domain in domains if not HOSTNAME.match(domain)]
        if wrong:
            raise ValueError(f"Not a hostname: {', '.join(wrong[:3])} (write example.com, without https:// or /).")
        if domains:
            cleaned[key] = list(dict.fromkeys(domains))
    if "allowed_domains" in cleaned and "blocked_domains" in cleaned:
        raise ValueError("Give allowed domains or blocked domains, not both: the API refuses both at once.")
    max_uses = options.get("max_uses")
    if max_uses not in (None, "") and not tool.domains:
        raise ValueError(f"{tool.label} takes no limit on uses.")
    if max_uses not in (None, ""):
        try:
            max_uses = int(max_uses)
        except (TypeError, ValueError):
            raise ValueError("The most uses per reply is a whole number.") from None
        if not 1 <= max_uses <= MAX_USES_LIMIT:
            raise ValueError(f"The most uses per reply is between 1 and {MAX_USES_LIMIT}.")
        cleaned["max_uses"] = max_uses
    return cleaned


def user_location(user) -> dict | None:
    """The API's approximate `user_location` from the user's settings (city, region, country, time zone), or
    None when they gave no place: a time zone alone says little about where someone is."""
    place = {
        "city": user.location_city.strip(),
        "region": user.location_region.strip(),
        "country": user.location_country.strip().upper(),
    }
    place = {key: value for key, value in place.items() if value}
    if not place:
        return None
    if user.time_zone:
        place["timezone"] = user.time_zone
    return {"type": "approximate", **place}


def server_tool_definitions(
    choices: tuple[ServerToolChoice, ...], *, supported: tuple[str, ...], location: dict | None,
    used: dict[str, int] | None = None,
) -> list[dict]:
    """The `tools` entries of the enabled server tools that the model supports (`supported`), for a request of
    a reply whose earlier requests reported `used` (their `usage.server_tool_use` counts added up).

    The admin's max_uses is per reply and the API's per request, so each tool offers what the reply has left
    of it, and is left out once nothing is; the reservation covers max_uses once per reply
    (`server_tools_worst_case`). A reply's first request (nothing used) sends the admin's definitions, the same
    bytes in every reply, so its prompt is read from the cache; only a later request of a reply that used a
    tool differs, and misses the cache from the tools on (they come first in the prompt)."""
    used = used or {}
    definitions = []
    for choice in choices:
        if choice.name not in supported:
            continue
        tool = choice.tool
        definition = {"type": tool.type, "name": tool.name}
        if tool.domains:
            left = choice.max_uses - used.get(tool.usage_field, 0)
            if left <= 0:
                continue
            definition["max_uses"] = left
            if choice.allowed_domains:
                definition["allowed_domains"] = list(choice.allowed_domains)
            if choice.blocked_domains:
                definition["blocked_domains"] = list(choice.blocked_domains)
        if tool.location and location:
            definition["user_location"] = dict(location)
        definitions.append(definition)
    return definitions


def server_tools_worst_case(choices: tuple[ServerToolChoice, ...], *, supported: tuple[str, ...]) -> Decimal:
    """The most the server tool use of one reply can cost beside its tokens: each priced tool's max_uses, all
    used, however many requests the reply makes (`server_tool_definitions` offers only what is left)."""
    return sum(
        (choice.tool.price_per_use * choice.max_uses for choice in choices if choice.name in supported),
        Decimal(0),
    )


def server_tool_use_added(uses) -> dict[str, int]:
    """The counts of several requests' `server_tool_use` (each as `server_tool_use_counts` gives it), added."""
    total: dict[str, int] = {}
    for use in uses:
        for field, count in use.items():
            total[field] = total.get(field, 0) + count
    return total


def server_tool_use_counts(usage) -> dict[str, int]:
    """The non-zero counts of an SDK usage's `server_tool_use` (whatever fields the SDK types carry)."""
    use = getattr(usage, "server_tool_use", None)
    if use is None:
        return {}
    fields = use.model_dump() if hasattr(use, "model_dump") else dict(use)
    return {name: int(count) for name, count in fields.items() if isinstance(count, int) and count}


def server_tool_cost(use: dict[str, int]) -> Decimal:
    """What `use` (a request's `server_tool_use` counts) cost beside the tokens."""
    prices = {tool.usage_field: tool.price_per_use for tool in SERVER_TOOLS.values() if tool.usage_field}
    return sum((prices.get(field, Decimal(0)) * count for field, count in use.items()), Decimal(0))


def server_tools_supported_label(supported: tuple[str, ...]) -> list[str]:
    """The picker's words for the server tools a model supports."""
    return [SERVER_TOOLS[name].label for name in SERVER_TOOL_NAMES if name in supported]


def container_uploads_add(request: dict) -> dict:
    """`request` with every attachment that goes by `file_id` (filesapi/) also handed to code execution, when the
    request offers it: a `container_upload` block after the attachment's own, so the model's code finds the file
    in its container (files sent inline have no id to hand over, and stay out of it). Every turn's, the same way
    in every request, so the prefix stays cacheable. The request is not changed; the one returned shares all
    but the turns that got a block."""
    code = SERVER_TOOLS[CODE_EXECUTION].type
    if not any(tool.get("type") == code for tool in request.get("tools", ())):
        return request
    messages = []
    for message in request["messages"]:
        if message["role"] != "user":
            messages.append(message)
            continue
        content = []
        for block in message["content"]:
            content.append(block)
            source = block.get("source") if block.get("type") in ("document", "image") else None
            if isinstance(source, dict) and source.get("type") == "file" and source.get("file_id"):
                content.append({"type": "container_upload", "file_id": source["file_id"]})
        messages.append({**message, "content": content} if len(content) != len(message["content"]) else message)
    return {**request, "messages": messages}


def container_reuse(request: dict, container: str | None) -> None:
    """Set `request` to go on in `container`, the code execution container of the reply's earlier requests (its
    files and state are there), when the request offers code execution. A paused turn needs it to carry on."""
    code = SERVER_TOOLS[CODE_EXECUTION].type
    if container and any(tool.get("type") == code for tool in request.get("tools", ())):
        request["container"] = container
