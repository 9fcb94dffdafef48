"""The web search and web fetch server tools, offline: fake results, real rules.

A turn that asks to search the web (or to look something up, or for the latest news) gets one search per
quoted phrase in it (or one for the turn); a turn that asks to read, fetch, open or summarise a URL it contains
gets one fetch per URL. Each call is a `server_tool_use` block and its result block, sent whole. Results live
under the tool's allowed domains, else under example.com / example.org / example.net, never on a blocked
domain; a fetch of a URL on a domain the tool does not allow is the error `url_not_allowed`; calls beyond the
tool's `max_uses` are the error `max_uses_exceeded`. A turn that asks to "search deeply" pauses after its calls
(stop_reason pause_turn) and goes on when the paused turn comes back last. Only successful calls count in
`usage.server_tool_use` (the API bills searches per thousand, fetches only by their tokens).
"""

import base64
import json
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from chat.llm.offline.blocks import ReplyBlock
from chat.llm.offline.features import offered_tool, server_tool_id

SEARCH_REQUEST = re.compile(
    r"\bsearch\s+(?:the\s+)?(?:web|internet|online|deeply)\b|\blook\s+up\b|\blatest\s+news\b"
    r"|\b(?:web|deep)\s+(?:search|research)\b",
    re.IGNORECASE,
)
SEARCH_FOR = re.compile(
    r"\b(?:search(?:\s+the)?\s+(?:web|internet|online|deeply)|look\s+up)\s+(?:for\s+)?(.+)", re.IGNORECASE
)
QUOTED = re.compile(r"[\"“]([^\"“”]{1,200})[\"”]")
FETCH_REQUEST = re.compile(r"\b(?:read|fetch|open|summari[sz]e|look\s+at|what\s+does)\b", re.IGNORECASE)
URL = re.compile(r"https?://[^\s<>\"'()\[\]{}]+")
FALLBACK_DOMAINS = ("example.com", "example.org", "example.net")
RESULTS_PER_SEARCH = 3
MAX_QUERY_CHARS = 200
MAX_CALLS = 5  # searches or fetches in one reply, whatever the turn asks, as a model bounds itself
FAKE_RESULT = "offline model: this is not a real search result"
# A turn that asks for a long task: the offline model pauses it after its server tool calls (pause_turn).
PAUSE_REQUEST = re.compile(r"\b(?:search|research)\s+deeply\b|\bdeep\s+(?:search|research)\b", re.IGNORECASE)
FAKE_PAGE = "offline model: this is not the real page"


def search_blocks(tools: list[dict], asks: str, *, forced: dict | None = None) -> list[ReplyBlock]:
    """The searches a turn asks for, each a server_tool_use block and its result; none when web search is not
    offered or not asked for (`forced`: the tool that tool_choice forces, which searches whatever was asked)."""
    tool = offered_tool(tools, "web_search_")
    if tool is None or not (forced is tool or SEARCH_REQUEST.search(asks)):
        return []
    queries = [match.group(1).strip() for match in QUOTED.finditer(asks)][:MAX_CALLS] or [_query(asks)]
    plural = "es" if len(queries) > 1 else ""
    blocks = [
        ReplyBlock("text", f"I will search the web (offline: the search{plural} and results are fake).")
    ]
    max_uses = tool.get("max_uses")
    for number, query in enumerate(queries):
        call_id = server_tool_id()
        blocks.append(ReplyBlock("server_tool_use", json.dumps({"query": query}), "web_search", call_id))
        if isinstance(max_uses, int) and number >= max_uses:
            content: list[dict] | dict = {
                "type": "web_search_tool_result_error",
                "error_code": "max_uses_exceeded",
            }
        else:
            content = _search_results(query, tool)
        result = {"type": "web_search_tool_result", "tool_use_id": call_id, "content": content}
        blocks.append(ReplyBlock(result["type"], whole=result))
    return blocks


def fetch_blocks(tools: list[dict], asks: str, *, forced: dict | None = None) -> list[ReplyBlock]:
    """The fetches a turn asks for: one per URL in it, each a server_tool_use block and its result. Forced by
    tool_choice (`forced`), a turn without a URL fetches the home page of the first allowed domain."""
    tool = offered_tool(tools, "web_fetch_")
    urls = list(dict.fromkeys(url.rstrip(".,;:!?") for url in URL.findall(asks)))[:MAX_CALLS]
    if tool is not None and forced is tool:
        urls = urls or [f"https://{(_domains(tool, 'allowed_domains') or FALLBACK_DOMAINS)[0]}/"]
    elif tool is None or not urls or not FETCH_REQUEST.search(asks):
        return []
    blocks = [ReplyBlock("text", "I will fetch the page (offline: what it holds is made up).")]
    max_uses = tool.get("max_uses")
    for number, url in enumerate(urls):
        call_id = server_tool_id()
        blocks.append(ReplyBlock("server_tool_use", json.dumps({"url": url}), "web_fetch", call_id))
        if isinstance(max_uses, int) and number >= max_uses:
            content = {"type": "web_fetch_tool_result_error", "error_code": "max_uses_exceeded"}
        elif not domain_allowed(urlsplit(url).hostname or "", tool):
            content = {"type": "web_fetch_tool_result_error", "error_code": "url_not_allowed"}
        else:
            content = _fetched(url, tool)
        result = {"type": "web_fetch_tool_result", "tool_use_id": call_id, "content": content}
        blocks.append(ReplyBlock(result["type"], whole=result))
    return blocks


def server_tool_usage(blocks: list[ReplyBlock]) -> dict | None:
    """The usage's `server_tool_use` counts: successful searches and fetches; None when the reply used no web
    tool (the API then leaves the field out)."""
    names = {block.id: block.tool_name for block in blocks if block.type == "server_tool_use"}
    counts = {"web_search_requests": 0, "web_fetch_requests": 0}
    used = False
    for block in blocks:
        if block.whole is None or block.type not in ("web_search_tool_result", "web_fetch_tool_result"):
            continue
        used = True
        content = block.whole["content"]
        failed = isinstance(content, dict) and content.get("type", "").endswith("_error")
        if not failed and names.get(block.whole["tool_use_id"]) == "web_search":
            counts["web_search_requests"] += 1
        elif not failed:
            counts["web_fetch_requests"] += 1
    return counts if used else None


def asks_to_pause(asks: str) -> bool:
    return bool(PAUSE_REQUEST.search(asks))


def is_server_result(block: dict) -> bool:
    """Whether `block` is a server tool's (or an MCP server's) result, which only the API writes; a turn that
    ends with one was paused and is sent back to go on."""
    kind = block.get("type", "")
    return kind != "tool_result" and kind.endswith("_tool_result")


def domain_allowed(host: str, tool: dict) -> bool:
    """The API's rule: a domain matches itself and its subdomains; allowed_domains, when given, is the whole
    list of domains that may be used, and blocked_domains are never used."""
    host = host.lower().removeprefix("www.")
    allowed, blocked = _domains(tool, "allowed_domains"), _domains(tool, "blocked_domains")
    if any(_matches(host, domain) for domain in blocked):
        return False
    return not allowed or any(_matches(host, domain) for domain in allowed)


def _matches(host: str, domain: str) -> bool:
    return host == domain or host.endswith(f".{domain}")


def _domains(tool: dict, key: str) -> list[str]:
    """A tool's domain list as hosts (the API accepts entries with a path, e.g. example.com/blog)."""
    values = tool.get(key)
    if not isinstance(values, list):
        return []
    return [
        value.lower().split("/")[0].removeprefix("www.")
        for value in values
        if isinstance(value, str) and value
    ]


def _query(asks: str) -> str:
    match = SEARCH_FOR.search(asks)
    lines = (match.group(1) if match else asks).strip().splitlines()
    return (lines[0].strip().rstrip(".?!")[:MAX_QUERY_CHARS] if lines else "") or "news"


def _search_results(query: str, tool: dict) -> list[dict]:
    allowed = _domains(tool, "allowed_domains")
    domains = [domain for domain in (allowed or FALLBACK_DOMAINS) if domain_allowed(domain, tool)]
    if not domains:  # every fallback blocked: a reserved name nobody can own
        domains = ["offline.invalid"]
    location = tool.get("user_location") if isinstance(tool.get("user_location"), dict) else {}
    near = f" near {location['city']}" if isinstance(location.get("city"), str) and location["city"] else ""
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")[:60] or "query"
    results = []
    for number in range(1, RESULTS_PER_SEARCH + 1):
        url = f"https://{domains[(number - 1) % len(domains)]}/offline-search/{slug}/{number}"
        results.append(
            {
                "type": "web_search_result",
                "url": url,
                "title": f"Offline result {number} for “{query}”{near}",
                "encrypted_content": _opaque(f"{url}\n{snippet(query, near)}"),
                "page_age": None,
            }
        )
    return results


def snippet(query: str, near: str = "") -> str:
    """What a fake search result says; its citation's cited_text."""
    return f"{FAKE_RESULT} for “{query}”{near}."[:150]


def result_snippet(result: dict) -> str:
    """The snippet a result was made with, read back from its (not really) encrypted content."""
    return base64.b64decode(result["encrypted_content"]).decode().split("\n", 1)[1]


def _fetched(url: str, tool: dict) -> dict:
    text = (
        f"{FAKE_PAGE} at {url}. The offline model cannot reach the web, so it wrote this text instead. "
        "It stands in for the page in demos and tests."
    )
    document = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": text},
        "title": f"Offline copy of {url}",
    }
    citations = tool.get("citations")
    if isinstance(citations, dict) and citations.get("enabled") is True:
        document["citations"] = {"enabled": True}
    return {
        "type": "web_fetch_result",
        "url": url,
        "retrieved_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "content": document,
    }


def _opaque(text: str) -> str:
    """The API's encrypted fields are opaque; the offline model's are base64 of what it needs back."""
    return base64.b64encode(text.encode()).decode()
