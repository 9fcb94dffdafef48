"""What a request cost, from its usage and the prices in force."""

from dataclasses import dataclass
from decimal import Decimal

from chat.llm.catalog import Prices

MILLION = Decimal(1_000_000)
COST_QUANTUM = Decimal("0.000001")
# What a request made in a Message Batch costs against the same request made at once, every token kind alike
# (batches/): the one place of that fact, read by the reservation and the ledger.
BATCH_DISCOUNT = Decimal("0.5")


@dataclass(frozen=True)
class TokenUsage:
    """Usage of one upstream request, with cache writes split by TTL because they are priced apart."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0

    @classmethod
    def from_sdk(cls, usage) -> "TokenUsage":
        """From an SDK `Usage`. Older responses give only the cache-write total; it is billed as 5-minute."""
        split = getattr(usage, "cache_creation", None)
        created_total = usage.cache_creation_input_tokens or 0
        created_1h = split.ephemeral_1h_input_tokens if split else 0
        return cls(
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cache_read_input_tokens=usage.cache_read_input_tokens or 0,
            cache_creation_5m_input_tokens=created_total - created_1h,
            cache_creation_1h_input_tokens=created_1h,
        )

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.cache_creation_5m_input_tokens + self.cache_creation_1h_input_tokens

    def __add__(self, other: "TokenUsage") -> "TokenUsage":
        return TokenUsage(
            *(getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__)
        )


def usage_cost(usage: TokenUsage, prices: Prices) -> Decimal:
    dollars = (
        usage.input_tokens * prices.input
        + usage.output_tokens * prices.output
        + usage.cache_read_input_tokens * prices.cache_read
        + usage.cache_creation_5m_input_tokens * prices.cache_write_5m
        + usage.cache_creation_1h_input_tokens * prices.cache_write_1h
    ) / MILLION
    return dollars.quantize(COST_QUANTUM)
