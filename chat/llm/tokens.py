"""The local token estimate: what budgets reserve, the context budget pre-measures, and the offline model bills.

It is deliberately simple and a little generous (four characters a token, rounded up): the API's own count
(`count_tokens`) is taken only where the estimate says a request is close to the context window.
"""

import math

TOKEN_CHARS = 4


def estimate_tokens(text: str) -> int:
    """Four characters a token, rounded up."""
    return math.ceil(len(text) / TOKEN_CHARS)
