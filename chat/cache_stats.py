"""What the prompt cache did for each reply, and how long a conversation's cache stays warm, from the ledger.

Every number comes from `chat.ApiCall` rows and the prices each row was charged at (`price_snapshot`), so a
price change never rewrites what a past reply saved. Reads only; the rules are chat/llm/cache_plan.py's.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from django.db.models import F, Q

from chat.frames import timestamp
from chat.llm.cache_plan import (
    FIVE_MINUTES,
    ONE_HOUR,
    PRICE_KINDS,
    TTL_DURATIONS,
    RewriteEstimate,
    rewrite_estimate,
    saved_by_cache,
)
from chat.models import ApiCall, Conversation, Message

CACHE_COLUMNS = (
    "input_tokens", "cache_read_input_tokens", "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
)
RECENT_GAPS = 5  # the Settings dialog's advice looks at the pauses before the last few turns


@dataclass(frozen=True)
class ReplyCache:
    """A reply's requests together: all their input tokens, the part read from and written to the cache, and
    the dollars caching saved (negative: what its writes cost over input)."""

    input_tokens: int
    read_tokens: int
    written_tokens: int
    saved: Decimal

    @property
    def hit_share(self) -> float:
        return self.read_tokens / self.input_tokens if self.input_tokens else 0.0

    def as_dict(self) -> dict:
        return {
            "input_tokens": self.input_tokens,
            "read_tokens": self.read_tokens,
            "written_tokens": self.written_tokens,
            "hit_share": round(self.hit_share, 4),
            "saved": f"{self.saved:.6f}",
        }


@dataclass(frozen=True)
class CacheWarmth:
    """Until when a conversation's cached prefix can be read, and what writing it again would cost.

    `prefix_tokens` is what the last request read or wrote; `write_price` and `read_price` (per million tokens,
    at that request's prices) are the conversation's TTL's write price and the read price, so the page can also
    price a partial rewrite, such as an edit in the middle of the history."""

    expires_at: datetime
    ttl: str
    model: str  # a cache is the model's own: another model reads none of it
    prefix_tokens: int
    write_price: Decimal
    read_price: Decimal

    @property
    def rewrite(self) -> RewriteEstimate:
        return rewrite_estimate(self.prefix_tokens, write_price=self.write_price, read_price=self.read_price)

    def as_dict(self) -> dict:
        return {
            "expires_at": timestamp(self.expires_at),
            "ttl": self.ttl,
            "model": self.model,
            "prefix_tokens": self.prefix_tokens,
            "rewrite_price": str(self.write_price - self.read_price),
            "rewrite_cost": f"{self.rewrite.dollars:.6f}",
        }


def conversation_cache(
    conversation: Conversation, message_ids: list[int]
) -> tuple[dict[int, ReplyCache], CacheWarmth | None]:
    """The chat page's cache numbers: those of each of the replies `message_ids` that made requests, and the
    conversation's warmth (None when no reply request read or wrote the cache). One query however many replies:
    their ledger rows and the conversation's last row that used the cache, most often one of them."""
    last_used = _cache_used(ApiCall.objects.filter(conversation=conversation)).order_by("-id").values("pk")[:1]
    rows = list(_with_columns(ApiCall.objects.filter(Q(message_id__in=message_ids) | Q(pk__in=last_used))))
    wanted = set(message_ids)
    last = _last_used(row for row in rows if row.conversation_id == conversation.pk)
    return _by_reply(row for row in rows if row.message_id in wanted), (
        _warmth(last, conversation.cache_ttl) if last else None
    )


def reply_cache_payload(message: Message) -> dict:
    """What a finished reply's frame says about the cache: its numbers and, when it used the cache, the
    conversation's warmth after it (the reply's last request is the conversation's latest). One query."""
    rows = list(_with_columns(ApiCall.objects.filter(message=message)).annotate(
        conversation_ttl=F("conversation__cache_ttl"),
    ))
    stats = _by_reply(rows).get(message.pk)
    payload = stats.as_dict() if stats else {}
    last = _last_used(rows)
    if last is not None:
        payload["warmth"] = _warmth(last, last.conversation_ttl or FIVE_MINUTES).as_dict()
    return payload


def turn_gaps(messages: list[Message], *, last: int = RECENT_GAPS) -> list[timedelta]:
    """The pauses between the user's recent messages on a path (`messages`, in order), oldest first: whether the
    1-hour TTL would pay is a question of how long they wait between turns."""
    sent = [message.created_at for message in messages if message.role == Message.Role.USER]
    return [later - earlier for earlier, later in pairwise(sent)][-last:]


def _cache_used(rows):
    """Reply requests that read or wrote the cache."""
    used = Q(cache_read_input_tokens__gt=0) | Q(cache_creation_5m_input_tokens__gt=0) | Q(
        cache_creation_1h_input_tokens__gt=0
    )
    return rows.filter(used, purpose=ApiCall.Purpose.REPLY)


def _with_columns(rows):
    return rows.only(
        "message_id", "conversation_id", "model", "purpose", *CACHE_COLUMNS, "price_snapshot", "created_at", "latency_ms",
    )


def _by_reply(rows) -> dict[int, ReplyCache]:
    sums: dict[int, list] = {}
    for row in rows:
        read, written_5m, written_1h = (
            row.cache_read_input_tokens, row.cache_creation_5m_input_tokens, row.cache_creation_1h_input_tokens,
        )
        total = sums.setdefault(row.message_id, [0, 0, 0, Decimal(0)])
        total[0] += row.input_tokens + read + written_5m + written_1h
        total[1] += read
        total[2] += written_5m + written_1h
        if read or written_5m or written_1h:
            total[3] += saved_by_cache(
                read=read, written_5m=written_5m, written_1h=written_1h, prices=_prices(row.price_snapshot),
            )
    return {message_id: ReplyCache(*total) for message_id, total in sums.items()}


def _last_used(rows) -> ApiCall | None:
    """The newest (by id, as the database hands them out) of `rows` that is a reply request that used the cache."""
    used = [
        row for row in rows if row.purpose == ApiCall.Purpose.REPLY and (
            row.cache_read_input_tokens or row.cache_creation_input_tokens
        )
    ]
    return max(used, key=lambda row: row.pk, default=None)


def _warmth(row: ApiCall, conversation_ttl: str) -> CacheWarmth:
    """The TTL the row's breakpoints used: a request that wrote 5-minute entries ends its prefix with one (the
    1-hour ones come first), one that wrote only 1-hour entries is held an hour, one that only read was refreshed
    with the TTL it was written with, the conversation's. The clock starts when the request was sent: the row is
    written when the reply settles, `latency_ms` after."""
    if row.cache_creation_5m_input_tokens:
        ttl = FIVE_MINUTES
    elif row.cache_creation_1h_input_tokens:
        ttl = ONE_HOUR
    else:
        ttl = conversation_ttl
    sent = row.created_at - timedelta(milliseconds=row.latency_ms or 0)
    prices = _prices(row.price_snapshot)
    return CacheWarmth(
        expires_at=sent + TTL_DURATIONS[ttl],
        ttl=ttl,
        model=row.model,
        prefix_tokens=row.cache_read_input_tokens + row.cache_creation_input_tokens,
        write_price=prices["cache_write_1h" if conversation_ttl == ONE_HOUR else "cache_write_5m"],
        read_price=prices["cache_read"],
    )


def _prices(snapshot: dict) -> dict[str, Decimal]:
    return {kind: Decimal(str(snapshot.get(kind, "0"))) for kind in PRICE_KINDS}
