"""Which cache TTL each breakpoint gets, when the 1-hour TTL pays, and what breaking a warm prefix costs.

Pure functions over numbers: request.py asks them for a request's TTLs, chat/cache_stats.py and the chat page
for their figures. The arithmetic, per token of a prefix of T tokens (docs/claude.md, "Cache you can see"):

- a write costs 1.25x input with the 5-minute TTL and 2x with the 1-hour TTL; a read costs 0.1x;
- a turn that comes within the TTL reads the prefix (0.1T), one that comes after it writes it again;
- so for a pause between 5 and 60 minutes, the 5-minute TTL pays 1.25T again where the 1-hour TTL pays 0.1T:
  the 1-hour write's extra 0.75T is paid back by the first such pause (0.75T < 1.15T), and every later one
  saves 1.15T more. With pauses under 5 minutes both TTLs read, and the 1 hour's extra 0.75T on each write is
  lost; with pauses over an hour both write again, and the 1 hour loses 0.75T each time.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from itertools import pairwise
from statistics import median

from chat.llm.pricing import MILLION

FIVE_MINUTES, ONE_HOUR = "5m", "1h"
TTL_DURATIONS = {FIVE_MINUTES: timedelta(minutes=5), ONE_HOUR: timedelta(hours=1)}
PRICE_KINDS = ("input", "cache_read", "cache_write_5m", "cache_write_1h")  # the prices `saved_by_cache` reads


def breakpoint_ttls(breakpoints: list[int], long_documents: list[int], conversation_ttl: str) -> list[str]:
    """The TTL of each breakpoint, given as positions in the prompt's cache order (tools, system, messages),
    ascending. `long_documents`: positions of documents that earn the 1-hour TTL on their own
    (`document_wants_one_hour`).

    A conversation set to 1 hour gets it on every breakpoint. Otherwise a long document is held for an hour by
    the first breakpoint at or after it, and so is every breakpoint before that one: the API refuses a 1-hour
    breakpoint after a 5-minute one, so the 1-hour breakpoints are always a run at the start.
    """
    if conversation_ttl == ONE_HOUR:
        return [ONE_HOUR] * len(breakpoints)
    covering = [next((b for b in breakpoints if b >= document), None) for document in long_documents]
    last_long = max((b for b in covering if b is not None), default=-1)
    return [ONE_HOUR if b <= last_long else FIVE_MINUTES for b in breakpoints]


def ttls_in_valid_order(ttls: list[str]) -> bool:
    """The API's rule: no 1-hour breakpoint after a 5-minute one, in cache order."""
    return all(not (earlier == FIVE_MINUTES and later == ONE_HOUR) for earlier, later in pairwise(ttls))


def document_wants_one_hour(tokens: int, minimum: int) -> bool:
    """A document of at least `minimum` tokens (CACHE_1H_MIN_TOKENS) is cached for an hour.

    Writing it for 5 minutes costs 1.25x its tokens and again after every pause over 5 minutes; writing it for
    an hour costs 2x once. One pause of 5 to 60 minutes in the hour (someone reading a long document before
    asking about it) already makes the hour cheaper: 2T against 2.5T. Small documents are left to the
    conversation's TTL: their few tokens do not pay for moving every breakpoint before them to 1 hour.
    """
    return tokens >= minimum


def one_hour_pays(gaps: list[timedelta]) -> bool:
    """Whether the 1-hour TTL is cheaper for turns this far apart: the typical (median) pause is over 5 and
    under 60 minutes, where a 5-minute cache has expired and a 1-hour one is still warm."""
    if not gaps:
        return False
    typical = median(gaps)
    return TTL_DURATIONS[FIVE_MINUTES] < typical < TTL_DURATIONS[ONE_HOUR]


@dataclass(frozen=True)
class RewriteEstimate:
    """What breaking a warm cached prefix costs the next reply: its tokens written again instead of read."""

    tokens: int
    dollars: Decimal


def rewrite_estimate(tokens: int, *, write_price: Decimal, read_price: Decimal) -> RewriteEstimate:
    """`tokens` of a warm prefix that would change × (write price − read price), prices per million tokens:
    the next reply writes them instead of reading them."""
    return RewriteEstimate(tokens, tokens * (write_price - read_price) / MILLION)


def saved_by_cache(
    *, read: int, written_5m: int, written_1h: int, prices: dict[str, Decimal]
) -> Decimal:
    """Dollars the cache saved a request against sending the same tokens uncached: reads at input minus the read
    price, less what writes cost over input. Negative when the writes cost more than the reads saved.
    `prices`: per million tokens, by the kinds of a ledger row's price snapshot."""
    input_price = prices["input"]
    dollars = (
        read * (input_price - prices["cache_read"])
        - written_5m * (prices["cache_write_5m"] - input_price)
        - written_1h * (prices["cache_write_1h"] - input_price)
    )
    return dollars / MILLION


CACHE_TTL_WHY = (
    "1 hour costs 2x input to write instead of 1.25x, and pays when you come back after 5 and within 60 "
    "minutes: the next reply then reads the cache at 0.1x instead of writing it again."
)


def ttl_advice(gaps: list[timedelta]) -> str:
    """The Settings dialog's sentence on the conversation's own pauses (`gaps`, oldest first); empty when it has
    none yet."""
    if not gaps:
        return ""
    minutes = median(gaps).total_seconds() / 60
    apart = f"{round(minutes)} min" if minutes >= 1 else "under a minute"
    verdict = "1 hour would pay." if one_hour_pays(gaps) else "5 minutes is the cheaper choice."
    return f"Your last {len(gaps) + 1} turns were typically {apart} apart: {verdict}"
