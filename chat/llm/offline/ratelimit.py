"""The `anthropic-ratelimit-*` headers the API sends on every response, for clients that pace themselves.

The offline model never limits anyone (faults do that on demand); it reports a generous fixed allowance per
minute and what this minute's requests and tokens have used of it, so the headers move as they do upstream.
"""

import threading
import time
from datetime import UTC, datetime

REQUESTS_PER_MINUTE = 4_000
INPUT_TOKENS_PER_MINUTE = 2_000_000
OUTPUT_TOKENS_PER_MINUTE = 400_000


class RateLimits:
    """This minute's use, on the wall clock (the headers name times of day)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minute, self._requests, self._input, self._output = 0, 0, 0, 0

    def count_request(self) -> None:
        with self._lock:
            self._roll()
            self._requests += 1

    def count_tokens(self, input_tokens: int, output_tokens: int) -> None:
        with self._lock:
            self._roll()
            self._input += input_tokens
            self._output += output_tokens

    def headers(self) -> dict[str, str]:
        with self._lock:
            self._roll()
            reset = datetime.fromtimestamp((self._minute + 1) * 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            used = {"requests": self._requests, "input-tokens": self._input, "output-tokens": self._output}
        limits = {
            "requests": REQUESTS_PER_MINUTE,
            "input-tokens": INPUT_TOKENS_PER_MINUTE,
            "output-tokens": OUTPUT_TOKENS_PER_MINUTE,
        }
        limits["tokens"] = limits["input-tokens"] + limits["output-tokens"]
        used["tokens"] = used["input-tokens"] + used["output-tokens"]
        headers = {}
        for kind, limit in limits.items():
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(max(0, limit - used[kind]))
            headers[f"anthropic-ratelimit-{kind}-reset"] = reset
        return headers

    def _roll(self) -> None:
        minute = int(time.time() // 60)
        if minute != self._minute:
            self._minute, self._requests, self._input, self._output = minute, 0, 0, 0


rate_limits = RateLimits()
