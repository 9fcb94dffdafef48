"""Prompt caching, accounted as the API accounts it.

A `cache_control` block is a breakpoint: the prompt up to and including it is a prefix that can be written to
the cache and read back by a later request whose prompt starts with exactly the same bytes (and names the same
model). Like the API, a lookup also tries the block boundaries up to 20 blocks before each breakpoint, so a
conversation that moves its one breakpoint to the newest message still reads what the previous turn wrote.
A prefix shorter than the model's minimum is never cached. Reading an entry refreshes its TTL.
"""

import hashlib
from dataclasses import dataclass

from chat.llm.catalog import model_spec
from chat.llm.offline.prompt import CACHE_TTLS, Segment

LOOKBACK_BLOCKS = 20


def minimum_cacheable_tokens(model: str) -> int:
    """The model's minimum from the catalogue, as the docs give it per model."""
    return model_spec(model).cache_minimum


@dataclass(frozen=True)
class CacheUsage:
    input_tokens: int  # only what follows the last cached breakpoint
    cache_read_input_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int

    def as_dict(self, output_tokens: int) -> dict:
        """The `usage` object of a Message."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write_5m_tokens + self.cache_write_1h_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m_tokens,
                "ephemeral_1h_input_tokens": self.cache_write_1h_tokens,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }


class PromptCache:
    """Prefix digests and their expiry times. Not thread-safe: the caller holds a lock around `account`."""

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[float, float]] = {}  # prefix digest -> (expires at, ttl)

    def clear(self) -> None:
        self._entries.clear()

    def account(self, model: str, segments: list[Segment], now: float) -> CacheUsage:
        """Reads the longest cached prefix, writes the breakpoints after it, and says what each token cost."""
        self._entries = {key: entry for key, entry in self._entries.items() if entry[0] > now}
        digest = hashlib.sha256(model.encode())
        digests, ends = [], []
        for segment in segments:
            digest.update(len(segment.key).to_bytes(8, "big") + segment.key)
            digests.append(digest.digest())
            ends.append((ends[-1] if ends else 0) + segment.tokens)
        total = ends[-1] if ends else 0
        minimum = minimum_cacheable_tokens(model)
        breakpoints = [i for i, segment in enumerate(segments) if segment.cache_ttl and ends[i] >= minimum]
        if not breakpoints:
            return CacheUsage(total, 0, 0, 0)

        boundaries = {i for b in breakpoints for i in range(max(0, b - LOOKBACK_BLOCKS + 1), b + 1)}
        hit = max((i for i in boundaries if digests[i] in self._entries), default=-1)
        read = 0
        if hit >= 0:
            ttl = self._entries[digests[hit]][1]
            self._entries[digests[hit]] = (now + ttl, ttl)
            read = ends[hit]
        written = {ttl: 0 for ttl in CACHE_TTLS.values()}
        covered = read
        for b in breakpoints:
            if b > hit:
                ttl = segments[b].cache_ttl
                self._entries[digests[b]] = (now + ttl, ttl)
                written[ttl] += ends[b] - covered
                covered = ends[b]
        return CacheUsage(
            input_tokens=total - ends[breakpoints[-1]],
            cache_read_input_tokens=read,
            cache_write_5m_tokens=written[CACHE_TTLS["5m"]],
            cache_write_1h_tokens=written[CACHE_TTLS["1h"]],
        )
