"""What prompt caching did, read from the ledger: hit rate and dollars saved, by model, user, group and day.

The hit rate is cache reads over every input token (uncached, read from the cache, written to it). What caching
saved is what the reads would have cost at the full input price, less what they cost, minus what the writes
cost above the full input price (1.25x for the 5-minute cache, 2x for the 1-hour one): a period that writes
more than it reads saved a negative amount, and the report says so.

Each row is priced at its own `price_snapshot`, so a price change never rewrites a past period. The JSON
snapshot is not used in SQL arithmetic (a key cast to a number is a float on SQLite and needs a different
expression on PostgreSQL): the database sums the tokens of each kind per group and per (model, snapshot), a few
rows per model and price period, and the dollars are worked out here, in Decimal, over those few rows. So every
table is one query, whatever the number of users or ledger rows.
"""

from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone as django_timezone

from billing import selectors
from billing.models import Price
from chat.llm.cache_plan import PRICE_KINDS, saved_by_cache
from chat.llm.catalog import model_spec
from chat.models import ApiCall
from teams import selectors as team_selectors
from teams.models import Team

ZERO = Decimal(0)
PERIODS = (7, 30, 90)  # days, besides the default: this calendar month
Bucket = Literal["day", "week"]

# The ledger's columns each figure sums: `input_tokens` is only the input after the last cache breakpoint.
TOKEN_COLUMNS = {
    "uncached": "input_tokens",
    "read": "cache_read_input_tokens",
    "written_5m": "cache_creation_5m_input_tokens",
    "written_1h": "cache_creation_1h_input_tokens",
}


def cache_saving(prices, *, read: int, written_5m: int, written_1h: int) -> Decimal:
    """Dollars caching saved on these tokens at `prices` (a price snapshot: dollars per million by kind, as
    strings): the rule of a reply's footer, chat/llm/cache_plan.py `saved_by_cache`, which this only feeds."""
    return saved_by_cache(
        read=read, written_5m=written_5m, written_1h=written_1h,
        prices={kind: Decimal(str(prices[kind])) for kind in PRICE_KINDS},
    )


@dataclass(frozen=True)
class CacheFigures:
    """Input tokens by kind and what caching saved on them (unrounded: round where shown)."""

    uncached: int = 0
    read: int = 0
    written_5m: int = 0
    written_1h: int = 0
    saved: Decimal = ZERO

    @property
    def written(self) -> int:
        return self.written_5m + self.written_1h

    @property
    def input_tokens(self) -> int:
        return self.uncached + self.read + self.written

    @property
    def hit_rate(self) -> float | None:
        """Cache reads over every input token; None without input."""
        return self.read / self.input_tokens if self.input_tokens else None

    @property
    def hit_percent(self) -> float | None:
        return None if self.hit_rate is None else self.hit_rate * 100

    def __add__(self, other: "CacheFigures") -> "CacheFigures":
        return CacheFigures(*(getattr(self, kind.name) + getattr(other, kind.name) for kind in fields(self)))


@dataclass(frozen=True)
class CacheReport:
    """The report over `first`..`last` (UTC days): totals, and the same figures per model, user, group (admins
    only; None for a group's managers) and day or week (`series`: every bucket, empty ones included)."""

    first: date
    last: date
    bucket: Bucket
    total: CacheFigures
    by_model: list[dict]
    by_user: list[dict]
    series: list[tuple[date, CacheFigures]]
    by_team: list[dict] | None = None


def report_period(days: str | None) -> tuple[int | None, datetime]:
    """The report's period from `?days=`: the last 7, 30 or 90 days, or this calendar month (None) for anything
    else, and the midnight (UTC) it starts at."""
    if days in {str(period) for period in PERIODS}:
        first = django_timezone.now().date() - timedelta(days=int(days) - 1)
        return int(days), datetime.combine(first, time.min, tzinfo=UTC)
    return None, selectors.month_start()


def report_bucket(value: str | None) -> Bucket:
    return "week" if value == "week" else "day"


def cache_report(
    calls: QuerySet[ApiCall], *, first: date, last: date, bucket: Bucket = "day", by_team: bool = False,
    users: int | None = None,
) -> CacheReport:
    """The report over `calls` (already narrowed to the reader's scope and to `first` on), in three queries,
    six with `by_team` (the groups and their tree, then one sum). `users`: at most this many rows by user, those
    that saved most."""
    rows = _token_sums(calls, "model")
    prices = _snapshot_prices(rows)
    by_model = _figures_by(rows, ("model",), prices)
    by_user = _figures_by(_token_sums(calls, "user_id", "user__username"), ("user_id", "user__username"), prices)
    by_day = _figures_by(_token_sums(calls.annotate(day=TruncDate("created_at")), "day"), ("day",), prices)
    total = sum((row["figures"] for row in by_model), CacheFigures())
    return CacheReport(
        first=first, last=last, bucket=bucket, total=total,
        by_model=_most_saved(by_model, "model"),
        by_user=_most_saved(by_user, "user__username")[:users],
        series=_series({row["day"]: row["figures"] for row in by_day}, first, last, bucket),
        by_team=_by_team(calls, prices) if by_team else None,
    )


def cache_totals(calls: QuerySet[ApiCall]) -> CacheFigures:
    """Hit rate and savings over `calls` in one query: the usage pages' headline, the same figure as the
    report's total."""
    rows = _token_sums(calls, "model")
    prices = _snapshot_prices(rows)
    return sum((_figures(row, prices) for row in rows), CacheFigures())


def _token_sums(calls: QuerySet[ApiCall], *keys: str) -> list[dict]:
    """The tokens of each kind per `keys` and (model, price snapshot): the rows the dollars are worked from."""
    return list(
        calls.order_by().values(*keys, "model", "price_snapshot")
        .annotate(**{name: Sum(column) for name, column in TOKEN_COLUMNS.items()})
    )


def _snapshot_prices(rows: list[dict]) -> dict[str, dict]:
    """The prices for rows written without a snapshot (before there were snapshots) that cached anything: the
    admins' price, or the catalog's, by model. The ledger writes a snapshot on every row, so this reads nothing
    unless such old rows are in the period, and then once for the whole report."""
    models = {row["model"] for row in rows if not row["price_snapshot"] and _caches(row)}
    if not models:
        return {}
    set_by_admins = selectors.prices_in_force(models)
    return {
        model: (set_by_admins.get(model) or Price.from_catalog(model_spec(model))).as_dict() for model in models
    }


def _caches(row: dict) -> bool:
    return bool(row["read"] or row["written_5m"] or row["written_1h"])


def _figures(row: dict, prices: dict[str, dict], prefix: str = "") -> CacheFigures:
    """One (model, snapshot) row's figures; `prefix` picks a group's columns out of a row of _by_team."""
    tokens = {name: row[prefix + name] or 0 for name in TOKEN_COLUMNS}
    if not (tokens["read"] or tokens["written_5m"] or tokens["written_1h"]):
        return CacheFigures(**tokens)
    snapshot = row["price_snapshot"] or prices[row["model"]]
    saved = cache_saving(snapshot, read=tokens["read"], written_5m=tokens["written_5m"],
                         written_1h=tokens["written_1h"])
    return CacheFigures(**tokens, saved=saved)


def _figures_by(rows: list[dict], keys: tuple[str, ...], prices: dict[str, dict]) -> list[dict]:
    """The rows folded over models and snapshots: one per value of `keys`, with its figures."""
    folded = defaultdict(CacheFigures)
    for row in rows:
        folded[tuple(row[key] for key in keys)] += _figures(row, prices)
    return [{**dict(zip(keys, values)), "figures": figures} for values, figures in folded.items()]


def _most_saved(rows: list[dict], name: str) -> list[dict]:
    return sorted(rows, key=lambda row: (-row["figures"].saved, row[name] or ""))


def _series(by_day: dict[date, CacheFigures], first: date, last: date, bucket: Bucket) -> list:
    """Every day from `first` to `last`, or every week (from Monday; the first one from `first`), each with its
    figures, empty ones as zero: the bars of the chart and the rows under it."""
    buckets: dict[date, CacheFigures] = {}
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        start = max(day - timedelta(days=day.weekday()), first) if bucket == "week" else day
        buckets[start] = buckets.get(start, CacheFigures()) + by_day.get(day, CacheFigures())
    return list(buckets.items())


def _by_team(calls: QuerySet[ApiCall], prices: dict[str, dict]) -> list[dict]:
    """Every group's figures, of its members (its subgroups' included) while members, as the usage dashboard
    counts a group's spend: one query with a sum per group and kind, over the rows of all groups' members."""
    tree = team_selectors.team_tree()
    teams = list(Team.objects.select_related("parent"))
    if not teams:
        return []
    everyone = Q()
    sums = {}
    for team in teams:
        everyone |= Q(user_id__in=team_selectors.member_ids(team.pk, tree))
        counts = team_selectors.while_member(team.pk, tree)
        sums.update({f"team_{team.pk}_{name}": Sum(column, filter=counts)
                     for name, column in TOKEN_COLUMNS.items()})
    rows = list(calls.filter(everyone).order_by().values("model", "price_snapshot").annotate(**sums))
    folded = [
        {"team": team, "figures": sum((_figures(row, prices, f"team_{team.pk}_") for row in rows), CacheFigures())}
        for team in teams
    ]
    return sorted(folded, key=lambda row: (-row["figures"].saved, row["team"].name))
