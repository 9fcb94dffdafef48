"""Reading a Messages API request as the API does: what it refuses, what each block costs, what it caches.

The prompt becomes a list of segments, one per block, in the order the API caches them: tools, then system
blocks, then every message's content blocks. Each segment carries its canonical bytes (what a cache prefix
must match byte for byte), its token estimate, and its cache TTL when the block is a breakpoint.
"""

import base64
import binascii
import io
import json
import math
from dataclasses import dataclass

from PIL import Image
from pypdf import PdfReader

from chat.llm.catalog import model_spec
from chat.llm.tokens import estimate_tokens

# A PDF page reaches the model as text and as an image of the page; the API bills ~1,500-3,000 tokens a page.
PDF_PAGE_IMAGE_TOKENS = 1_500
IMAGE_PIXELS_PER_TOKEN = 750
MAX_CACHE_BREAKPOINTS = 4
CACHE_TTLS = {"5m": 300.0, "1h": 3600.0}


class InvalidRequest(Exception):
    """A request the real API refuses with 400 `invalid_request_error`; the message says why."""


@dataclass(frozen=True)
class Attachment:
    kind: str  # "image" or "document"
    description: str  # what the reply says about it, e.g. "PNG, 64 x 48, RGB"
    tokens: int


@dataclass(frozen=True)
class Segment:
    key: bytes  # canonical JSON of the block and where it sits, without its cache_control
    tokens: int
    cache_ttl: float | None  # seconds, when the block carries cache_control


@dataclass(frozen=True)
class Prompt:
    model: str
    max_tokens: int
    stream: bool
    thinking: bool
    system: str
    tool_names: list[str]
    tools_allowed: bool  # false when tool_choice is "none"
    messages: list[dict]  # content always a list of blocks
    segments: list[Segment]
    attachments: list[Attachment]

    @property
    def input_tokens(self) -> int:
        return sum(segment.tokens for segment in self.segments)


def read_prompt(body: object, *, counting: bool = False) -> Prompt:
    """Validates a Messages (or, with `counting`, count_tokens) request body and reads it into a Prompt."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if "temperature" in body:
        raise InvalidRequest("temperature: Extra inputs are not permitted")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if not counting:
        _check_max_tokens(model, max_tokens)
        _check_thinking_budget(body, max_tokens)
    tools = _read_tools(body.get("tools"))
    system = _read_system(body.get("system"))
    messages = _read_messages(body.get("messages"))

    attachments: list[Attachment] = []
    segments = [_segment("tool", tool, _tool_tokens(tool)) for tool in tools]
    segments += [_segment("system", block, estimate_tokens(block["text"])) for block in system]
    for message in messages:
        for block in message["content"]:
            segments.append(_segment(message["role"], block, _block_tokens(block, attachments)))
    found = sum(segment.cache_ttl is not None for segment in segments)
    if found > MAX_CACHE_BREAKPOINTS:
        raise InvalidRequest(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
        )
    return Prompt(
        model=model,
        max_tokens=max_tokens or 0,
        stream=body.get("stream") is True,
        thinking=_option_type(body, "thinking") in ("enabled", "adaptive"),
        system="\n\n".join(block["text"] for block in system),
        tool_names=[tool["name"] for tool in tools],
        tools_allowed=_option_type(body, "tool_choice") != "none",
        messages=messages,
        segments=segments,
        attachments=attachments,
    )


def _option_type(body: dict, name: str) -> object:
    """The `type` of an object option such as `thinking` or `tool_choice`; None when absent or malformed."""
    option = body.get(name)
    return option.get("type") if isinstance(option, dict) else None


def _check_max_tokens(model: str, max_tokens: object) -> None:
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Field required (a positive integer)")
    limit = model_spec(model).max_output
    if max_tokens > limit:
        raise InvalidRequest(
            f"max_tokens: {max_tokens} > {limit}, which is the maximum allowed number of output tokens "
            f"for {model}"
        )


def _check_thinking_budget(body: dict, max_tokens: int) -> None:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
        raise InvalidRequest("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    if budget >= max_tokens:
        raise InvalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`")


def _read_tools(tools: object) -> list[dict]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequest(f"tools.{index}.name: Field required")
    return tools


def _read_system(system: object) -> list[dict]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"type": "text", "text": system}]
    if isinstance(system, list) and all(
        isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
        for block in system
    ):
        return system
    raise InvalidRequest("system: Input should be a string or a list of text blocks")


def _read_messages(messages: object) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Field required (a non-empty list)")
    normalised = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise InvalidRequest(
                f"messages.{index}: roles must alternate between 'user' and 'assistant', starting with 'user'"
            )
        normalised.append({"role": message["role"], "content": _read_content(index, message.get("content"))})
    _check_tool_results(normalised)
    _check_prefill(normalised)
    return normalised


def _check_prefill(messages: list[dict]) -> None:
    """A final assistant turn is the start of the reply, which the API refuses to end in whitespace."""
    last = messages[-1]
    if last["role"] == "assistant" and last["content"][-1]["type"] == "text":
        if last["content"][-1]["text"] != last["content"][-1]["text"].rstrip():
            raise InvalidRequest("final assistant content cannot end with trailing whitespace")


def _read_content(index: int, content: object) -> list[dict]:
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise InvalidRequest(f"messages.{index}.content: must be a non-empty string or list of blocks")
    for position, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequest(f"messages.{index}.content.{position}.type: Field required")
        text = block.get("text")
        if block["type"] == "text" and not (isinstance(text, str) and text.strip()):
            raise InvalidRequest(
                f"messages.{index}.content.{position}: text content blocks must contain non-whitespace text"
            )
    return content


def _check_tool_results(messages: list[dict]) -> None:
    """The API refuses a history whose tool calls are not answered, exactly, by the next user turn."""
    for index in range(0, len(messages), 2):
        previous = messages[index - 1]["content"] if index else []
        calls = {block.get("id") for block in previous if block["type"] == "tool_use"}
        content = messages[index]["content"]
        results = {block.get("tool_use_id") for block in content if block["type"] == "tool_result"}
        if calls - results:
            raise InvalidRequest(
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
                f"after: {', '.join(sorted(map(str, calls - results)))}"
            )
        if results - calls:
            raise InvalidRequest(
                f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(sorted(map(str, results - calls)))}"
            )


def _tool_tokens(tool: dict) -> int:
    return estimate_tokens(_canonical(_without_cache_control(tool)))


def _block_tokens(block: dict, attachments: list[Attachment]) -> int:
    """What one content block costs; attachments found on the way are appended to `attachments`."""
    kind = block["type"]
    if kind == "text":
        return estimate_tokens(str(block.get("text", "")))
    if kind in ("image", "document"):
        attachment = _inspect_image(block) if kind == "image" else _inspect_document(block)
        attachments.append(attachment)
        return attachment.tokens
    if kind == "tool_use":
        return estimate_tokens(_canonical({"name": block.get("name"), "input": block.get("input")}))
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            return sum(_block_tokens(nested, attachments) for nested in content if isinstance(nested, dict))
        return estimate_tokens(content if isinstance(content, str) else _canonical(content))
    if kind == "thinking":
        return estimate_tokens(block.get("thinking", ""))
    return estimate_tokens(_canonical(block))


def _base64_source(block: dict) -> tuple[str, bytes]:
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") != "base64":
        kind = source.get("type") if isinstance(source, dict) else None
        raise InvalidRequest(
            f"{block['type']}.source: the offline model reads base64 sources only, not {kind!r}"
        )
    try:
        return source.get("media_type", ""), base64.b64decode(source.get("data", ""), validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise InvalidRequest(f"{block['type']}.source.data: invalid base64") from exc


def _inspect_image(block: dict) -> Attachment:
    _, data = _base64_source(block)
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only; the pixels are never decoded
            image_format, (width, height), mode = image.format, image.size, image.mode
    except Exception as exc:  # untrusted bytes: Pillow raises many types, every one means "not an image"
        raise InvalidRequest("Could not process image") from exc
    tokens = max(1, math.ceil(width * height / IMAGE_PIXELS_PER_TOKEN))
    return Attachment("image", f"{image_format}, {width} x {height}, {mode}", tokens)


def _inspect_document(block: dict) -> Attachment:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str):
        if source.get("media_type") != "text/plain":
            raise InvalidRequest("document.source.media_type: Input should be 'text/plain' for a text source")
        text = source["data"]
        return Attachment("document", f"plain text, {_first_line_phrase(text)}", estimate_tokens(text))
    media_type, data = _base64_source(block)
    if media_type != "application/pdf":
        raise InvalidRequest(f"document.source.media_type: unsupported {media_type!r}")
    try:
        pages = [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]
    except Exception as exc:  # untrusted bytes, as for images
        raise InvalidRequest("The PDF specified was not valid.") from exc
    tokens = sum(estimate_tokens(text) + PDF_PAGE_IMAGE_TOKENS for text in pages)
    plural = "" if len(pages) == 1 else "s"
    first_page = pages[0] if pages else ""
    return Attachment("document", f"PDF, {len(pages)} page{plural}, {_first_line_phrase(first_page)}", tokens)


def _first_line_phrase(text: str) -> str:
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f'first line "{first_line}"' if first_line else "no text on the first page"


def _segment(place: str, block: dict, tokens: int) -> Segment:
    return Segment(_canonical([place, _without_cache_control(block)]).encode(), tokens, _cache_ttl(block))


def _cache_ttl(block: dict) -> float | None:
    control = block.get("cache_control")
    if control is None:
        return None
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise InvalidRequest("cache_control.type: Input should be 'ephemeral'")
    ttl = control.get("ttl", "5m")
    if ttl not in CACHE_TTLS:
        raise InvalidRequest("cache_control.ttl: Input should be '5m' or '1h'")
    return CACHE_TTLS[ttl]


def _without_cache_control(block: dict) -> dict:
    return {key: value for key, value in block.items() if key != "cache_control"}


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
