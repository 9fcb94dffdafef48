"""Reads about money: prices in force, a user's budget and spend, and summaries of the ledger.

The ledger is `chat.ApiCall`: every summary here is a query over its rows, so what users and admins see
always agrees with the rows themselves.
"""

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Literal

from django.conf import settings
from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone as django_timezone

from billing.models import Price, Reservation
from chat.llm.catalog import model_spec
from chat.llm.pricing import BATCH_DISCOUNT, COST_QUANTUM, TokenUsage, usage_cost
from chat.llm.tokens import estimate_tokens
from chat.llm.cache_plan import document_wants_one_hour
from chat.models import ApiCall, Attachment, CacheTtl, Conversation, Message
from chat.selectors import Tree
from projects.selectors import project_in_reach
from teams import selectors as team_selectors
from teams.models import Team

ZERO = Decimal("0")
WARNING_PERCENT = 80
TOP = 10


def month_start(moment: datetime | None = None) -> datetime:
    """Midnight UTC on the first of the month: budgets run by calendar month in UTC, whatever TIME_ZONE says."""
    moment = (moment or django_timezone.now()).astimezone(timezone.utc)
    return datetime.combine(moment.date().replace(day=1), time.min, tzinfo=timezone.utc)


def next_month_start(moment: datetime | None = None) -> datetime:
    return month_start(month_start(moment) + timedelta(days=32))


def price_for_model(model_id: str) -> Price:
    """The admins' price for `model_id`; without a row, the catalog's (for an unknown id, its conservative
    default). The fallback is an unsaved Price so callers handle one type."""
    return Price.objects.filter(model=model_id).first() or Price.from_catalog(model_spec(model_id))


def batch_prices(prices: Price) -> Price:
    """`prices` at the Message Batches rate (every kind times BATCH_DISCOUNT), unsaved: what a batch request's
    reservation is sized by and what its ledger row is charged and snapshots (batches/)."""
    kinds = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
    return Price(model=prices.model, **{kind: Decimal(getattr(prices, kind)) * BATCH_DISCOUNT for kind in kinds})


def prices_in_force(model_ids) -> dict[str, Price]:
    """The admins' price rows for `model_ids`, by model id, in one query: a model without a row is charged the
    catalog's prices (price_for_model)."""
    return {price.model: price for price in Price.objects.filter(model__in=list(model_ids))}


# --- budgets ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetStatus:
    budget: Decimal | None  # dollars this month; None: no budget
    spent: Decimal
    reserved: Decimal = ZERO  # held for replies being written now (billing.Reservation)

    @property
    def percent(self) -> int | None:
        """Share of the budget spent, rounded down; a zero budget counts as fully used."""
        if self.budget is None:
            return None
        if self.budget <= 0:
            return 100
        return int(self.spent * 100 / self.budget)

    @property
    def remaining(self) -> Decimal | None:
        """What a new reply may still reserve: the budget less settled spend and open reservations."""
        return None if self.budget is None else max(self.budget - self.spent - self.reserved, ZERO)

    @property
    def warning(self) -> bool:
        return self.percent is not None and self.percent >= WARNING_PERCENT

    @property
    def exceeded(self) -> bool:
        return self.budget is not None and self.spent >= self.budget


def user_budget(user) -> Decimal | None:
    return user.monthly_budget if user.monthly_budget is not None else settings.CHAT_DEFAULT_MONTHLY_BUDGET


def user_spend(user, *, since: datetime) -> Decimal:
    """What the ledger says `user` spent since `since` (index apicall_user_created)."""
    return ApiCall.objects.filter(user=user, created_at__gte=since).aggregate(total=Sum("cost"))["total"] or ZERO


def user_reserved(user) -> Decimal:
    """The user's open reservations (index reservation_user)."""
    return Reservation.objects.filter(user=user).aggregate(total=Sum("amount"))["total"] or ZERO


def budget_status(user) -> BudgetStatus:
    budget = user_budget(user)
    reserved = user_reserved(user) if budget is not None else ZERO
    return BudgetStatus(budget=budget, spent=user_spend(user, since=month_start()), reserved=reserved)


@dataclass(frozen=True)
class BudgetLimit:
    """One budget a send must fit in: the user's own (`user`), the lower cap they set themselves (`cap`), or
    that of a group they are in or one above it (`group`, with its `team`)."""

    kind: Literal["user", "cap", "group", "key"]
    status: BudgetStatus
    team: Team | None = None


def budget_limits(user, *, teams: list[Team], tree: team_selectors.Tree, api_key=None) -> list[BudgetLimit]:
    """Every budget that a send by `user` must fit: theirs, their cap, and those of `teams` (the budgeted
    groups above them; admission passes them locked), and, for a call of the API, the monthly cap of its key
    (`api_key`, apikeys.ApiKey; kind `key`). The user's spend is read once for budget and cap."""
    limits = []
    budget, cap = user_budget(user), user.monthly_cap
    if budget is not None or cap is not None:
        spent, reserved = user_spend(user, since=month_start()), user_reserved(user)
        limits += [BudgetLimit(kind, BudgetStatus(amount, spent, reserved))
                   for kind, amount in (("user", budget), ("cap", cap)) if amount is not None]
    statuses = team_budget_statuses(teams, tree)
    limits += [BudgetLimit("group", statuses[team.pk], team) for team in teams]
    if api_key is not None and api_key.monthly_cap is not None:
        limits.append(BudgetLimit("key", key_budget_status(api_key)))
    return limits


def key_budget_status(api_key) -> BudgetStatus:
    """A key's monthly cap, what its calls spent this month (the ledger rows that name it: the index of the
    foreign key) and what its calls in flight hold (apikeys.KeyReservation)."""
    spent = ApiCall.objects.filter(api_key=api_key, created_at__gte=month_start()).aggregate(total=Sum("cost"))
    reserved = Reservation.objects.filter(api_hold__api_key=api_key).aggregate(total=Sum("amount"))
    return BudgetStatus(api_key.monthly_cap, spent["total"] or ZERO, reserved["total"] or ZERO)


def team_budget_statuses(teams, tree: team_selectors.Tree) -> dict[int, BudgetStatus]:
    """Each group's budget, with this month's settled spend and the open reservations of everyone who counts
    for it, made while they did (teams.selectors.while_member): two queries for any number of groups."""
    members = {team.pk: team_selectors.member_ids(team.pk, tree) for team in teams}
    if not members:
        return {}
    spent = _sums_by_team(ApiCall.objects.filter(created_at__gte=month_start()), "cost", members, tree)
    reserved = _sums_by_team(Reservation.objects.all(), "amount", members, tree)
    return {
        team.pk: BudgetStatus(budget=team.monthly_budget, spent=spent[team.pk], reserved=reserved[team.pk])
        for team in teams
    }


def spend_by_team(*, since: datetime) -> list[dict]:
    """Every group's spend since `since`, by its members while members (its subgroups' members included, so a
    department's row is the sum of its own people and its teams'), costliest first: the admins' dashboard and
    its CSV. Three queries."""
    tree = team_selectors.team_tree()
    teams = list(Team.objects.select_related("parent"))
    if not teams:
        return []
    members = {team.pk: team_selectors.member_ids(team.pk, tree) for team in teams}
    spent = _sums_by_team(ApiCall.objects.filter(created_at__gte=since), "cost", members, tree)
    rows = [{"team": team, "cost": spent[team.pk]} for team in teams]
    return sorted(rows, key=lambda row: (-row["cost"], row["team"].name))


def _sums_by_team(
    rows: QuerySet, field: str, members: dict[int, QuerySet], tree: team_selectors.Tree,
) -> dict[int, Decimal]:
    """Sum `field` over `rows` (ledger rows or reservations) for each group, of its members while members
    (teams.selectors.while_member), in one query. The rows are narrowed to all the groups' members first, so
    the per-user indexes serve, not a scan of everyone's."""
    everyone = Q()
    for ids in members.values():
        everyone |= Q(user_id__in=ids)
    sums = rows.filter(everyone).order_by().aggregate(**{
        f"team_{pk}": Sum(field, filter=team_selectors.while_member(pk, tree)) for pk in members
    })
    return {pk: sums[f"team_{pk}"] or ZERO for pk in members}


def calls_for_team(team: Team, tree: team_selectors.Tree, *, since: datetime) -> QuerySet[ApiCall]:
    """The calls of everyone who counts for the group, made while they did: what its usage page and CSV
    summarise, so a manager sees no one's spend from before they joined."""
    return ApiCall.objects.filter(
        team_selectors.while_member(team.pk, tree),
        user_id__in=team_selectors.member_ids(team.pk, tree), created_at__gte=since,
    )


# What one round of our tools may add to the next request's input, beyond the model's own output: the
# results of the built-in tools are short (chat/llm/tools.py caps each), this bounds them all together.
TOOL_RESULT_TOKENS = 2_000
# What every request carries beside the conversation: the tool definitions (~300 tokens today), the API's own
# tool-use system prompt (~350), message framing. Generous, so a reservation is a true worst case.
REQUEST_OVERHEAD_TOKENS = 1_500


@dataclass(frozen=True)
class RequestEstimate:
    input_tokens: int
    output_tokens: int
    cost: Decimal
    # The dearest cache TTL the request's breakpoints may use ("5m" or "1h": chat/llm/cache_plan.py), which prices
    # the worst case of its cache writes.
    cache_ttl: str = "5m"


def request_estimate(
    *, conversation: Conversation, text: str, model: str, attachment_ids: list[int] = (),
    max_tokens: int | None = None, prices: Price | None = None, tree: Tree | None = None,
) -> RequestEstimate:
    """An upper bound on what the next request will cost, before anything is stored or sent.

    Input: the local `estimate_tokens` over the system prompt, the messages of the active path (what the
    request sends; other branches are not sent) as JSON (which counts more than the API would) and the new
    text, plus the estimated tokens of the path's attachments and of
    the new message's own (`attachment_ids`, the user's unclaimed uploads), and its project's instructions and
    files (the prefix every request of the conversation starts with, while its owner may open the project:
    `project_in_reach`), capped at the context window, all
    at the full input price as if nothing were cached. Output: a full `max_tokens` (thinking included; by
    default CHAT_MAX_OUTPUT_TOKENS). `tree`: the conversation's, when the caller has read it already.
    """
    spec = model_spec(model)
    path = (tree or Tree.of(conversation.pk)).path_to(conversation.current_leaf_id)
    stored = Message.objects.filter(pk__in=path).values_list("content", flat=True)
    project = project_in_reach(conversation)
    instructions = project.instructions if project else ""
    prompt = "".join([instructions, conversation.system_prompt, text, *map(json.dumps, stored)])
    carried = Q(message_id__in=path) | Q(
        pk__in=attachment_ids, owner_id=conversation.owner_id, message__isnull=True, project__isnull=True
    )
    if project:
        carried |= Q(project=project)
    attachments = Attachment.objects.filter(carried)
    sums = attachments.aggregate(
        total=Sum("tokens"), longest_document=Max("tokens", filter=~Q(kind=Attachment.Kind.IMAGE)),
    )
    attachment_tokens = sums["total"] or 0
    input_tokens = min(estimate_tokens(prompt) + attachment_tokens, spec.context_window)
    output_tokens = max_tokens or min(settings.CHAT_MAX_OUTPUT_TOKENS, spec.max_output)
    prices = prices or price_for_model(model)
    cost = usage_cost(TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens), prices)
    # A conversation kept for an hour, or a long document (which moves every breakpoint before it to an hour),
    # may write the whole prefix at the 1-hour price.
    one_hour = conversation.cache_ttl == CacheTtl.ONE_HOUR or document_wants_one_hour(
        sums["longest_document"] or 0, settings.CACHE_1H_MIN_TOKENS
    )
    return RequestEstimate(input_tokens, output_tokens, cost, cache_ttl="1h" if one_hour else "5m")


def reply_worst_case(
    *, input_tokens: int, max_tokens: int, requests: int, window: int, prices, cache_ttl: str = "5m"
) -> Decimal:
    """The most a reply of `requests` requests can cost: each request's input (the estimate, plus what every
    request carries beside the conversation) grows by the previous answer and tool results (never past the
    window), every input token is priced as a cache write (the dearest kind of input: the breakpoints may
    write all of it) of `cache_ttl`, "5m" or "1h", and every request writes its full `max_tokens`."""
    total = ZERO
    for round_number in range(requests):
        grown = input_tokens + REQUEST_OVERHEAD_TOKENS + round_number * (max_tokens + TOOL_RESULT_TOKENS)
        written = {f"cache_creation_{cache_ttl}_input_tokens": min(grown, window)}
        usage = TokenUsage(**written, output_tokens=max_tokens)
        total += usage_cost(usage, prices)
    return total


# --- summaries of the ledger -----------------------------------------------------------------------------


def calls_for_user(user, *, since: datetime) -> QuerySet[ApiCall]:
    return ApiCall.objects.filter(user=user, created_at__gte=since)


def calls_since(since: datetime) -> QuerySet[ApiCall]:
    """Every user's calls: for the admins only."""
    return ApiCall.objects.filter(created_at__gte=since)


def ledger_totals(calls: QuerySet[ApiCall]) -> dict:
    """Sums over `calls` (any filtered queryset): the admin's totals row, the dashboard and the usage page."""
    totals = calls.order_by().aggregate(
        calls=Count("id"),
        errors=Count("id", filter=Q(status=ApiCall.Status.ERROR)),
        fallbacks=Count("id", filter=Q(is_fallback=True)),
        input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"),
        cache_read_input_tokens=Sum("cache_read_input_tokens"),
        cache_creation_5m_input_tokens=Sum("cache_creation_5m_input_tokens"),
        cache_creation_1h_input_tokens=Sum("cache_creation_1h_input_tokens"),
        cost=Sum("cost"),
        server_tool_cost=Sum("server_tool_cost"),  # part of `cost`: web searches, billed beside the tokens
    )
    totals = {name: value or 0 for name, value in totals.items()}
    totals["cost"] = Decimal(totals["cost"]).quantize(COST_QUANTUM)
    totals["server_tool_cost"] = Decimal(totals["server_tool_cost"]).quantize(COST_QUANTUM)
    return totals


def spend_by_day(calls: QuerySet[ApiCall], *, first: date, last: date) -> list[tuple[date, Decimal]]:
    """(day, dollars) for every day from `first` to `last`, days without calls included as zero."""
    rows = calls.order_by().annotate(day=TruncDate("created_at")).values("day").annotate(cost=Sum("cost"))
    spent = {row["day"]: row["cost"] for row in rows}
    days = (first + timedelta(days=offset) for offset in range((last - first).days + 1))
    return [(day, spent.get(day) or ZERO) for day in days]


# Input the API bills apart from `input_tokens` (only what follows the last cache breakpoint): a prompt served
# from the cache, or written to it, is input all the same.
CACHED_INPUT = (
    F("cache_read_input_tokens") + F("cache_creation_5m_input_tokens") + F("cache_creation_1h_input_tokens")
)


def spend_by_model(calls: QuerySet[ApiCall], *, limit: int | None = None) -> list[dict]:
    """Per model, costliest first: `input_tokens` is every input token, cached ones included, and
    `cached_input_tokens` those read from or written to the prompt cache."""
    rows = (
        calls.order_by()
        .values("model")
        .annotate(calls=Count("id"), input_tokens=Sum(F("input_tokens") + CACHED_INPUT),
                  cached_input_tokens=Sum(CACHED_INPUT), output_tokens=Sum("output_tokens"), cost=Sum("cost"))
        .order_by("-cost", "model")
    )
    return list(rows[:limit] if limit else rows)


def spend_by_user(calls: QuerySet[ApiCall], *, limit: int | None = TOP) -> list[dict]:
    rows = (
        calls.order_by()
        .values("user_id", "user__username")
        .annotate(calls=Count("id"), cost=Sum("cost"))
        .order_by("-cost", "user__username")
    )
    return list(rows[:limit])


def usage_by_day_member_model(calls: QuerySet[ApiCall]) -> QuerySet:
    """One row per day, user and model, with every kind of token: the group's CSV, for a pivot table."""
    return (
        calls.order_by()
        .annotate(day=TruncDate("created_at"))
        .values("day", "user__username", "model")
        .annotate(
            calls=Count("id"), input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"),
            cache_read_input_tokens=Sum("cache_read_input_tokens"),
            cache_creation_5m_input_tokens=Sum("cache_creation_5m_input_tokens"),
            cache_creation_1h_input_tokens=Sum("cache_creation_1h_input_tokens"), cost=Sum("cost"),
        )
        .order_by("day", "user__username", "model")
    )


def spend_by_conversation(calls: QuerySet[ApiCall]) -> list[dict]:
    """Per conversation, costliest first; calls of deleted conversations come as one row with id None."""
    return list(
        calls.order_by()
        .values("conversation_id", "conversation__title")
        .annotate(calls=Count("id"), cost=Sum("cost"))
        .order_by("-cost", "conversation_id")
    )


def conversation_cost(conversation: Conversation) -> Decimal:
    return ApiCall.objects.filter(conversation=conversation).aggregate(total=Sum("cost"))["total"] or ZERO
