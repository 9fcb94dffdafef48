"""Reading a Messages API request as the API does: what it refuses, what each block costs, what it caches.

The prompt becomes a list of segments, one per block, in the order the API caches them: tools, then system
blocks, then every message's content blocks. Each segment carries its canonical bytes (what a cache prefix
must match byte for byte), its token estimate, and its cache TTL when the block is a breakpoint.
"""

import base64
import binascii
import io
import itertools
import json
import math
from dataclasses import dataclass, field

from PIL import Image
from pypdf import PdfReader

from chat.llm.catalog import model_spec
from chat.llm.offline import choice as tool_choice
from chat.llm.offline import structured, validation
from chat.llm.offline.validation import InvalidRequest
from chat.llm.tokens import estimate_tokens

# A PDF page reaches the model as text and as an image of the page; the API bills ~1,500-3,000 tokens a page.
PDF_PAGE_IMAGE_TOKENS = 1_500
IMAGE_PIXELS_PER_TOKEN = 750
# The API scales an image whose long edge passes 1,568 px (or that passes ~1.15 megapixels) before it counts its
# tokens, and refuses one larger than 8,000 px on a side or 5 MB encoded.
IMAGE_LONG_EDGE = 1568
IMAGE_MAX_PIXELS = 1_150_000
IMAGE_MAX_SIDE = 8000
IMAGE_MAX_BYTES = 5 * 1024 * 1024
MAX_CACHE_BREAKPOINTS = 4
CACHE_TTLS = {"5m": 300.0, "1h": 3600.0}


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
    # What the features of chat/llm/offline/features/ read: the tool definitions as sent (server tools carry
    # their options), the MCP connector's servers, and the code execution container asked for.
    tools: list[dict] = field(default_factory=list)
    mcp_servers: list[dict] = field(default_factory=list)
    container: str | None = None
    # How the reply is shaped (choice.py, validation.py): the checked tool_choice, the stop sequences, and
    # output_config.format's JSON schema, which the reply's text is valid against.
    tool_choice: dict = field(default_factory=lambda: {"type": "auto"})
    stop_sequences: list[str] = field(default_factory=list)
    output_schema: dict | None = None

    @property
    def input_tokens(self) -> int:
        return sum(segment.tokens for segment in self.segments)


def read_prompt(body: object, *, counting: bool = False) -> Prompt:
    """Validates a Messages (or, with `counting`, count_tokens) request body and reads it into a Prompt."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    validation.check_fields(body, counting=counting)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required")
    validation.check_model(model)
    max_tokens = body.get("max_tokens")
    if not counting:
        _check_max_tokens(model, max_tokens)
        _check_thinking_budget(body, max_tokens)
    tools = _read_tools(body.get("tools"))
    system = _read_system(body.get("system"))
    messages = _read_messages(body.get("messages"))
    validation.check_prefill(model, messages, prefill_allowed=model_spec(model).prefill)
    thinking = _option_type(body, "thinking") in ("enabled", "adaptive")
    choice = tool_choice.read_tool_choice(body.get("tool_choice"), tools, thinking=thinking)
    stop_sequences = validation.read_stop_sequences(body.get("stop_sequences"))
    output_schema = validation.read_output_schema(body)
    structured.check_schema(output_schema, every_property=True)  # bounded cost, refused now: not mid-reply
    for tool in tools:
        if tool.get("type", "custom") == "custom":
            structured.check_schema(tool.get("input_schema"))

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
    ttls = [segment.cache_ttl for segment in segments if segment.cache_ttl is not None]
    if any(earlier < later for earlier, later in itertools.pairwise(ttls)):
        raise InvalidRequest(
            "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block. Note that "
            "blocks are processed in the following order: `tools`, `system`, `messages`."
        )
    return Prompt(
        model=model,
        max_tokens=max_tokens or 0,
        stream=body.get("stream") is True,
        thinking=thinking,
        system="\n\n".join(block["text"] for block in system),
        tool_names=[tool.get("name") or tool["mcp_server_name"] for tool in tools],
        tools_allowed=choice["type"] != "none",
        messages=messages,
        segments=segments,
        attachments=attachments,
        tools=tools,
        mcp_servers=body.get("mcp_servers") if isinstance(body.get("mcp_servers"), list) else [],
        container=_container_id(body.get("container")),
        tool_choice=choice,
        stop_sequences=stop_sequences,
        output_schema=output_schema,
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
        if isinstance(tool, dict) and tool.get("type") == "mcp_toolset":  # named by its server, not a name
            if not isinstance(tool.get("mcp_server_name"), str) or not tool["mcp_server_name"]:
                raise InvalidRequest(f"tools.{index}.mcp_server_name: Field required")
            continue
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequest(f"tools.{index}.name: Field required")
    return tools


def _container_id(container: object) -> str | None:
    """The container a request reuses: its id, given alone or as `{"id": ...}`."""
    if isinstance(container, dict):
        container = container.get("id")
    return container if isinstance(container, str) and container else None


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
    """The turns, with consecutive turns of one role combined into one, as the API combines them."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Field required (a non-empty list)")
    normalised: list[dict] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        if not normalised and message["role"] != "user":
            raise InvalidRequest('messages: first message must use the "user" role')
        content = _read_content(index, message.get("content"))
        if normalised and normalised[-1]["role"] == message["role"]:
            normalised[-1]["content"] = [*normalised[-1]["content"], *content]
        else:
            normalised.append({"role": message["role"], "content": content})
    _check_tool_results(normalised)
    return normalised


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
        from chat.llm.offline.files import file_block_resolved  # here, not above: files builds on this module

        block = file_block_resolved(block)  # a `file` source is read like the bytes it names
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
    if len(data) > IMAGE_MAX_BYTES:
        raise InvalidRequest(f"image exceeds 5 MB maximum: {len(data)} bytes > {IMAGE_MAX_BYTES} bytes")
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only; the pixels are never decoded
            image_format, (width, height), mode = image.format, image.size, image.mode
    except Exception as exc:  # untrusted bytes: Pillow raises many types, every one means "not an image"
        raise InvalidRequest("Could not process image") from exc
    if max(width, height) > IMAGE_MAX_SIDE:
        raise InvalidRequest(f"image dimensions exceed max allowed size: {IMAGE_MAX_SIDE} pixels")
    scaled_width, scaled_height = scaled_image_size(width, height)
    tokens = max(1, math.ceil(scaled_width * scaled_height / IMAGE_PIXELS_PER_TOKEN))
    return Attachment("image", f"{image_format}, {width} x {height}, {mode}", tokens)


def scaled_image_size(width: int, height: int) -> tuple[int, int]:
    """The size the API reads an image at: scaled down, keeping its shape, to a long edge of 1,568 px and
    ~1.15 megapixels at most."""
    factor = min(1.0, IMAGE_LONG_EDGE / max(width, height), math.sqrt(IMAGE_MAX_PIXELS / (width * height)))
    return max(1, int(width * factor)), max(1, int(height * factor))


def _inspect_document(block: dict) -> Attachment:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str):
        if source.get("media_type") != "text/plain":
            raise InvalidRequest("document.source.media_type: Input should be 'text/plain' for a text source")
        text = source["data"]
        return Attachment("document", f"plain text, {_first_line_phrase(text)}", estimate_tokens(text))
    if isinstance(source, dict) and source.get("type") == "content":  # custom content: cited block by block
        texts = _content_source_texts(source)
        plural = "" if len(texts) == 1 else "s"
        return Attachment("document", f"custom content, {len(texts)} block{plural}", estimate_tokens("".join(texts)))
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


def _content_source_texts(source: dict) -> list[str]:
    """The texts of a custom content document's blocks, which the API accepts as a string or text blocks."""
    content = source.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content or not all(
        isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
        for block in content
    ):
        raise InvalidRequest("document.source.content: Input should be a string or a non-empty list of text blocks")
    return [block["text"] for block in content]


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
