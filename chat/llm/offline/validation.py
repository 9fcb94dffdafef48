"""What the offline model refuses before it reads a prompt, as the API refuses it.

Each refusal is the API's: its status, its error type and its words, so code tested offline meets the same
errors in production. docs/claude.md ("The offline model: what it checks") lists every rule with its switch.
"""

from django.conf import settings

from chat.llm.catalog import MODELS_BY_ID

# The body fields of POST /v1/messages (the SDK's MessageCreateParams, beta ones included: one endpoint serves
# both). `thread` is the message-threads beta's and needs its header (threads.py).
MESSAGES_FIELDS = frozenset({
    "model", "max_tokens", "messages", "stream", "system", "tools", "tool_choice", "thinking", "stop_sequences",
    "metadata", "service_tier", "container", "output_config", "cache_control", "diagnostics", "inference_geo",
    "speed", "mcp_servers", "context_management", "compaction", "billing_policy", "fallbacks",
    "fallback_credit_token", "thread",
})
# POST /v1/messages/count_tokens takes the prompt, not what shapes the reply.
COUNT_TOKENS_FIELDS = frozenset({
    "model", "messages", "system", "tools", "tool_choice", "thinking", "output_config", "cache_control", "speed",
    "mcp_servers", "context_management",
})
MAX_STOP_SEQUENCES = 8192
EFFORTS = ("low", "medium", "high", "xhigh", "max")


class InvalidRequest(Exception):
    """A request the real API refuses with 400 `invalid_request_error`; the message says why."""


class ApiRefusal(Exception):
    """A refusal other than a 400: `status` and `error_type` as the API sends them; `details` when it adds
    some (the SDK's thread support reads `error.details.error_code`)."""

    def __init__(self, status: int, error_type: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.error_type, self.details = status, error_type, details


def check_credentials(headers) -> None:
    """The API answers 401 before it reads the body when a request carries neither key header."""
    if not headers.get("x-api-key") and not headers.get("authorization"):
        raise ApiRefusal(401, "authentication_error", "x-api-key header is required")


def check_fields(body: dict, *, counting: bool) -> None:
    """Unknown top-level fields are refused one at a time, in the API's words (temperature among them: this
    API version has none)."""
    allowed = COUNT_TOKENS_FIELDS if counting else MESSAGES_FIELDS
    for name in body:
        if name not in allowed:
            raise InvalidRequest(f"{name}: Extra inputs are not permitted")


def check_model(model: str) -> None:
    """An id outside the catalogue is a 404, unless OFFLINE_MODEL_ACCEPT_ANY_MODEL (for gateways and tests
    that invent ids), when it is served with the limits `model_spec` gives unknown ids."""
    if model not in MODELS_BY_ID and not settings.OFFLINE_MODEL_ACCEPT_ANY_MODEL:
        raise ApiRefusal(404, "not_found_error", f"model: {model}")


def read_stop_sequences(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidRequest("stop_sequences: Input should be a valid list of strings")
    if len(value) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"stop_sequences: at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
    if any(not item.strip() for item in value):
        raise InvalidRequest("stop_sequences: each stop sequence must contain non-whitespace")
    return value


def read_output_schema(body: dict) -> dict | None:
    """The JSON schema of `output_config.format`, checked; None when the reply is free text. Structured output
    and citations exclude each other: the API refuses the pair."""
    config = body.get("output_config")
    if config is None:
        return None
    if not isinstance(config, dict):
        raise InvalidRequest("output_config: Input should be an object")
    if extra := sorted(set(config) - {"effort", "format"}):
        raise InvalidRequest(f"output_config.{extra[0]}: Extra inputs are not permitted")
    if config.get("effort") is not None and config["effort"] not in EFFORTS:
        raise InvalidRequest(f"output_config.effort: Input should be {', '.join(map(repr, EFFORTS))}")
    output_format = config.get("format")
    if output_format is None:
        return None
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        raise InvalidRequest("output_config.format.type: Input should be 'json_schema'")
    schema = output_format.get("schema")
    if not isinstance(schema, dict):
        raise InvalidRequest("output_config.format.schema: Field required")
    if _cites(body.get("messages")):
        raise InvalidRequest("Citations are not supported when using structured outputs (output_config.format).")
    return schema


def check_prefill(model: str, messages: list[dict], *, prefill_allowed: bool) -> None:
    """A final assistant turn is a prefill: refused outright by the models that take none (Claude 4.6 on),
    and elsewhere refused when it ends in whitespace."""
    last = messages[-1]
    # A turn that ends in a server tool's blocks is a paused turn (pause_turn) sent back to go on, not a prefill.
    if last["role"] != "assistant" or last["content"][-1]["type"] != "text":
        return
    if not prefill_allowed:
        raise InvalidRequest(
            "This model does not support assistant message prefill. The conversation must end with a user message."
        )
    text = last["content"][-1].get("text") if last["content"][-1]["type"] == "text" else None
    if isinstance(text, str) and text != text.rstrip():
        raise InvalidRequest("final assistant content cannot end with trailing whitespace")


def _cites(messages: object) -> bool:
    if not isinstance(messages, list):
        return False
    return any(
        isinstance(block, dict) and isinstance(block.get("citations"), dict) and block["citations"].get("enabled")
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for block in message["content"]
    )
