"""The models this product knows: limits, capabilities and list prices.

Used for the model picker, `max_tokens` sizing and cost, and served by the offline model's Models API.
Prices are dollars per million tokens. Cache writes cost 1.25x input for the 5-minute TTL and 2x for the
1-hour TTL; cache reads cost 0.1x input, as Anthropic bills them.
"""

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Prices:
    input: Decimal
    output: Decimal

    @property
    def cache_write_5m(self) -> Decimal:
        return self.input * Decimal("1.25")

    @property
    def cache_write_1h(self) -> Decimal:
        return self.input * 2

    @property
    def cache_read(self) -> Decimal:
        return self.input * Decimal("0.1")

    def as_dict(self) -> dict[str, str]:
        return {
            "input": str(self.input),
            "output": str(self.output),
            "cache_write_5m": str(self.cache_write_5m),
            "cache_write_1h": str(self.cache_write_1h),
            "cache_read": str(self.cache_read),
        }


@dataclass(frozen=True)
class ModelSpec:
    id: str
    display_name: str
    family: str  # "haiku", "sonnet" or "opus": the routing and fallback tiers
    context_window: int
    max_output: int
    prices: Prices
    vision: bool = True
    pdf: bool = True
    created_at: str = "2026-01-01T00:00:00Z"
    # The `thinking.type` the model takes: "adaptive" (with an effort level), "enabled" (with a token budget),
    # or "" for none. The SDK warns that `enabled` is deprecated on models that think adaptively.
    thinking: str = "enabled"
    # Whether a final assistant turn (a prefill) is taken: Claude 4.6 and later refuse it with a 400.
    prefill: bool = True
    # The shortest prompt prefix a cache breakpoint writes (docs: 1,024, 2,048 or 4,096 tokens by model).
    cache_minimum: int = 1024
    # The server tools the model can use (chat/llm/server_tools.py names); an unknown model gets none.
    server_tools: tuple[str, ...] = ("web_search", "web_fetch", "code_execution")
    # Whether `output_config.effort: "max"` is taken (docs, "Effort": Opus 4.6 and Sonnet 4.6 in this catalog; with
    # a key, the Models API's `capabilities.effort.max`). Only models that think adaptively take an effort.
    max_effort: bool = False

    @property
    def strengths(self) -> str:
        return FAMILY_STRENGTHS.get(self.family, UNKNOWN_STRENGTHS)

    @property
    def supports(self) -> list[str]:
        """What the model takes beside text, in the words the picker uses."""
        named = (("thinking", bool(self.thinking)), ("images", self.vision), ("PDFs", self.pdf))
        return [name for name, supported in named if supported]


# What each family is good at: the model picker's description (model_description), one sentence each.
FAMILY_STRENGTHS = {
    "opus": "The most capable: hard reasoning, long documents, difficult code",
    "sonnet": "Balanced: everyday writing, analysis and code, quick and able",
    "haiku": "The fastest and cheapest: short answers, summaries, classifying and extracting",
}
UNKNOWN_STRENGTHS = "A model this app has no notes on, billed at the highest prices until an admin sets them"


def model_description(spec: ModelSpec, prices=None) -> str:
    """The picker's line for a model: what it is good at, its price per million tokens in and out, and what it
    supports. `prices` (anything with `input` and `output`, such as billing's Price): the prices in force
    where the admins set their own; the catalog's otherwise."""
    prices = prices or spec.prices
    supports = ", ".join(spec.supports) or "text only"
    price = f"${_plain(prices.input)} in / ${_plain(prices.output)} out per million tokens"
    return f"{spec.strengths}. {price}. Supports {supports}."


def _plain(dollars: Decimal) -> str:
    """"3", "0.8", "15": the list price as written, without the table's trailing zeros."""
    return format(Decimal(dollars).normalize(), "f")


OPUS_PRICES = Prices(input=Decimal("5"), output=Decimal("25"))
SONNET_PRICES = Prices(input=Decimal("3"), output=Decimal("15"))
HAIKU_PRICES = Prices(input=Decimal("1"), output=Decimal("5"))
# An id nobody told us about is priced like the most expensive family, so spend is never under-counted.
UNKNOWN_MODEL_PRICES = Prices(input=Decimal("15"), output=Decimal("75"))

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("claude-opus-5-5", "Claude Opus 5.5", "opus", 200_000, 64_000, OPUS_PRICES, created_at="2026-09-01T00:00:00Z", thinking="adaptive", prefill=False),
    ModelSpec("claude-sonnet-5-5", "Claude Sonnet 5.5", "sonnet", 200_000, 64_000, SONNET_PRICES, created_at="2026-09-01T00:00:00Z", thinking="adaptive", prefill=False),
    ModelSpec("claude-haiku-5-5", "Claude Haiku 5.5", "haiku", 200_000, 64_000, HAIKU_PRICES, created_at="2026-09-01T00:00:00Z", thinking="adaptive", prefill=False),
    ModelSpec("claude-opus-4-6", "Claude Opus 4.6", "opus", 200_000, 64_000, OPUS_PRICES, created_at="2026-02-01T00:00:00Z", thinking="adaptive", prefill=False, cache_minimum=4096, max_effort=True),
    ModelSpec("claude-sonnet-4-6", "Claude Sonnet 4.6", "sonnet", 200_000, 64_000, SONNET_PRICES, created_at="2026-02-01T00:00:00Z", thinking="adaptive", prefill=False, cache_minimum=2048, max_effort=True),
    ModelSpec("claude-haiku-4-5", "Claude Haiku 4.5", "haiku", 200_000, 64_000, HAIKU_PRICES, created_at="2025-10-01T00:00:00Z", cache_minimum=4096),
)

MODELS_BY_ID = {spec.id: spec for spec in MODELS}


def model_spec(model_id: str) -> ModelSpec:
    """The spec for `model_id`; an unknown id gets conservative limits and the highest prices."""
    if model_id in MODELS_BY_ID:
        return MODELS_BY_ID[model_id]
    family = next((name for name in ("opus", "sonnet", "haiku") if name in model_id), "unknown")
    return ModelSpec(model_id, model_id, family, 200_000, 8_192, UNKNOWN_MODEL_PRICES, server_tools=())
