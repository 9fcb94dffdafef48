"""Writes about money: admitting a request (budget, rate limits), settling it, and alerting the admins.

Admission happens before the user's message is stored or anything is sent upstream; settlement happens after
the ledger rows are written (`chat.services.message_finish`), with the real cost.
"""

import logging
import math
import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import mail_admins, send_mail
from django.urls import reverse

from billing import selectors
from billing.models import BudgetAlert, Reservation
from chat.llm import registry
from chat.llm.catalog import model_spec
from chat.llm.pricing import MILLION, TokenUsage
from chat.llm.server_tools import server_tools_enabled, server_tools_worst_case
from chat.models import Conversation
from chat.refusals import Refusal
from chat.selectors import Tree
from teams import selectors as team_selectors
from teams.models import Membership, Team

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# A window's counter outlives its minute, so it cannot expire while its minute is still counting.
WINDOW_TTL = 2 * WINDOW_SECONDS
# Seconds since the epoch; tests pin it so a window boundary never falls in the middle of a test.
clock = time.time


class RequestRefused(Refusal):
    """The request may not be sent now: its budget or the rate limits."""


# A reply shorter than this is not worth sending: below it the send is refused rather than cut to nothing.
MIN_REPLY_TOKENS = 256


@dataclass(frozen=True)
class Hold:
    """What admission reserves for a reply: its worst-case cost, and the caps that cost paid for when the
    remaining budget could not cover a full reply (`max_tokens`, `tool_rounds`: None for no cap). `notice`
    says so in the reply."""

    amount: Decimal
    input_tokens: int
    max_tokens: int | None = None
    tool_rounds: int | None = None
    notice: str = ""


def request_admit(
    *, user, conversation: Conversation, text: str, model: str, max_tokens: int, attachment_ids: list[int] = (),
    conversation_tree: Tree | None = None, batch: bool = False,
) -> Hold:
    """What to reserve for a reply from `model` of at most `max_tokens` a request, or RequestRefused.

    The caller holds the transaction that stores the turn and has locked the user's row (admission in
    chat/replies/admission.py); the rows of the user's budgeted groups are locked here, in the same
    transaction. So the budgets read here (settled spend plus open reservations) and the reservation written
    with the returned Hold are one step, and concurrent sends, by one user or by several members of a group,
    cannot overspend. The budget is checked before the rate limits count the request, so a request refused for
    its budget uses no quota. `conversation_tree`: the conversation's tree, when the caller has read it already.
    `batch`: a reply queued in a Message Batch (batches/): one request, no tool rounds, at the batch price.
    """
    prices = selectors.price_for_model(model)
    if batch:
        prices = selectors.batch_prices(prices)
    estimate = selectors.request_estimate(
        conversation=conversation, text=text, model=model, attachment_ids=attachment_ids, max_tokens=max_tokens,
        prices=prices, tree=conversation_tree,
    )
    teams, tree = _budget_teams_lock(user)
    limits = selectors.budget_limits(user, teams=teams, tree=tree)
    rounds = 1 if batch else settings.CHAT_TOOL_MAX_ROUNDS + 1
    # The reply may use every enabled server tool its max_uses times, over all its requests (searches are billed
    # per use; chat/llm/server_tools.py offers a later request only what the reply has left).
    server_tools = server_tools_worst_case(server_tools_enabled(), supported=registry.model_for(model).server_tools)
    hold = _hold_within_budget(limits, model, prices, estimate, rounds, server_tools)
    _rate_limits_take(user, estimate.input_tokens)
    return hold


def batch_admit(*, user, model: str, requests: list[tuple[int, int]]) -> list[Hold]:
    """What to reserve for each request of a bulk Message Batch (batches/), `(input_tokens, max_tokens)` each,
    at the batch price, or RequestRefused: the whole batch's worst case fits every budget, or nothing is held.
    As `request_admit_whole`: the caller holds the transaction and has locked the user's row. The rate limits
    count the batch as one request (it is one upstream call) with all its input tokens."""
    prices = selectors.batch_prices(selectors.price_for_model(model))
    window = model_spec(model).context_window
    holds = [
        Hold(selectors.reply_worst_case(
            input_tokens=input_tokens, max_tokens=max_tokens, requests=1, window=window, prices=prices,
        ), input_tokens, max_tokens=max_tokens, tool_rounds=0)
        for input_tokens, max_tokens in requests
    ]
    teams, tree = _budget_teams_lock(user)
    tightest = _tightest_budget(selectors.budget_limits(user, teams=teams, tree=tree))
    total = sum((hold.amount for hold in holds), Decimal(0))
    if tightest is not None and tightest.status.remaining < total:
        raise _too_little_left(tightest, total)
    _rate_limits_take(user, sum(hold.input_tokens for hold in holds))
    return holds


def request_admit_whole(*, user, model: str, input_tokens: int, max_tokens: int, api_key=None) -> Hold:
    """What to reserve for one request of about `input_tokens` in and at most `max_tokens` out, made for the
    user but not asked for by them (a conversation's title, chat/titles.py), or made with their personal key
    `api_key` (apikeys/, whose monthly cap is one more budget), or RequestRefused.

    As `request_admit`: the caller holds the transaction and has locked the user's row, the budgeted groups'
    rows are locked here, the budget is checked before the rate limits count the request. Unlike a reply, the
    request is never cut down: its worst case fits every budget whole, or it is refused.
    """
    prices = selectors.price_for_model(model)
    amount = selectors.reply_worst_case(
        input_tokens=input_tokens, max_tokens=max_tokens, requests=1,
        window=model_spec(model).context_window, prices=prices,
        cache_ttl="5m" if api_key is None else "1h",  # an API call sets its own cache_control, 1h the dearest
    )
    teams, tree = _budget_teams_lock(user)
    limits = selectors.budget_limits(user, teams=teams, tree=tree, api_key=api_key)
    tightest = _tightest_budget(limits)
    if tightest is not None and tightest.status.remaining < amount:
        raise _too_little_left(tightest, amount)
    _rate_limits_take(user, input_tokens)
    return Hold(amount, input_tokens, max_tokens=max_tokens, tool_rounds=0)


def _budget_teams_lock(user) -> tuple[list[Team], team_selectors.Tree]:
    """Lock the budgeted groups that a send by `user` counts against: theirs and every one above them.

    All at once and by id, so two admissions that share groups take their locks in one order and cannot
    deadlock (every admission has locked its user's row first; users' rows are never locked by another's
    admission). FOR NO KEY UPDATE, like the user's row: it serialises admissions against each other but does
    not block the membership inserts that reference the group. The budgets come from the locked rows, so an
    edit committed a moment ago counts.
    """
    team_ids, tree = team_selectors.team_ids_above(user)
    if not team_ids:
        return [], tree
    locked = Team.objects.select_for_update(no_key=True).filter(pk__in=team_ids, monthly_budget__isnull=False)
    return list(locked.order_by("pk")), tree


def reservation_create(*, user, message, hold: Hold) -> Reservation:
    """`message`: the reply it pays for; None for a request that belongs to no message (a title), whose
    reservation the stale sweep releases once it is as old as a stale heartbeat, if nothing did before."""
    return Reservation.objects.create(
        user=user, message=message, amount=hold.amount, max_tokens=hold.max_tokens, tool_rounds=hold.tool_rounds
    )


def _dollars(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def _budget_words(limit: selectors.BudgetLimit) -> tuple[str, str]:
    """Whose budget it is and its name, for notices and refusals: ("your group Marketing's", "budget")."""
    if limit.kind == "cap":
        return "your own", "cap"
    if limit.kind == "key":
        return "this API key's", "cap"
    if limit.kind == "group":
        return f"your group {limit.team.name}'s", "budget"
    return "your", "budget"


def _resets() -> str:
    return f"{selectors.next_month_start():%B} 1"


def _tightest_budget(limits: list[selectors.BudgetLimit]) -> selectors.BudgetLimit | None:
    """The budget with the least left (None when there is none), or the refusal that names one used up: the
    one budget check of a reply (`_hold_within_budget`) and of a request made for the user
    (`request_admit_whole`)."""
    exhausted = next((limit for limit in limits if limit.status.exceeded), None)
    if exhausted is not None:
        raise _exhausted(exhausted, _resets())
    return min(limits, key=lambda limit: limit.status.remaining) if limits else None


def _too_little_left(limit: selectors.BudgetLimit, least: Decimal) -> RequestRefused:
    """The refusal of a request whose smallest worst case, `least`, is more than `limit` has left."""
    status = limit.status
    whose, noun = _budget_words(limit)
    reserved = f" and {_dollars(status.reserved)} is held for replies being written" if status.reserved else ""
    return RequestRefused(
        "budget_exceeded",
        f"Even a short reply could cost up to {_dollars(least)}, and {_dollars(status.remaining)} is "
        f"left of {whose} {_dollars(status.budget)} monthly {noun} "
        f"({_dollars(status.spent)} spent{reserved}). "
        f"A new chat (shorter history) or a cheaper model costs less; the {noun} resets on {_resets()}.",
    )


def _exhausted(limit: selectors.BudgetLimit, resets: str) -> RequestRefused:
    status = limit.status
    if limit.kind == "cap":
        detail = (
            f"You have used the monthly cap of {_dollars(status.budget)} you set yourself "
            f"({_dollars(status.spent)} spent). New requests are refused until {resets}, unless you raise it "
            "in your settings."
        )
    elif limit.kind == "key":
        detail = (
            f"This API key has used its monthly cap of {_dollars(status.budget)} ({_dollars(status.spent)} "
            f"spent). Its calls are refused until {resets}: make a key with a higher cap in your settings, or "
            "ask an admin to raise this one's."
        )
    elif limit.kind == "group":
        detail = (
            f"Your group {limit.team.name} has used its monthly budget of {_dollars(status.budget)} "
            f"({_dollars(status.spent)} spent by its members). New requests are refused until {resets}, "
            "unless the group's budget is raised."
        )
    else:
        detail = (
            f"You have used your monthly budget of {_dollars(status.budget)} ({_dollars(status.spent)} spent). "
            f"New requests are refused until {resets}, unless an admin raises your budget."
        )
    return RequestRefused("budget_exceeded", detail)


def _hold_within_budget(
    limits: list[selectors.BudgetLimit], model: str, prices, estimate, rounds: int,
    server_tools: Decimal = Decimal(0),
) -> Hold:
    """The whole reply's worst case (`rounds` requests, plus `server_tools`: what their server tool use can cost
    beside the tokens) when every budget has room for it; else a reply cut to what the tightest budget has left
    (one request, fewer output tokens, no tools: `tool_choice` none, so no server tool either), said in its
    notice; else a refusal that names the budget in the way."""
    spec = model_spec(model)

    def worst(max_tokens: int, requests: int) -> Decimal:
        return selectors.reply_worst_case(
            input_tokens=estimate.input_tokens, max_tokens=max_tokens, requests=requests,
            window=spec.context_window, prices=prices, cache_ttl=estimate.cache_ttl,
        )

    full = worst(estimate.output_tokens, rounds) + server_tools
    tightest = _tightest_budget(limits)
    if tightest is None:
        return Hold(full, estimate.input_tokens)
    left = tightest.status.remaining
    if full <= left:
        return Hold(full, estimate.input_tokens)
    whose, noun = _budget_words(tightest)
    has_left = f"{whose[0].upper()}{whose[1:]} monthly {noun} has {_dollars(left)} left this month"
    single = worst(estimate.output_tokens, 1)
    if single <= left:
        notice = f"{has_left}, so this reply makes no tool calls."
        return Hold(single, estimate.input_tokens, tool_rounds=0, notice=notice)
    input_cost = worst(0, 1)
    affordable = int((left - input_cost) * MILLION / prices.output) if left > input_cost else 0
    if affordable >= MIN_REPLY_TOKENS:
        max_tokens = min(affordable, estimate.output_tokens)
        return Hold(worst(max_tokens, 1), estimate.input_tokens, max_tokens=max_tokens, tool_rounds=0, notice=(
            f"{has_left}, so this reply is limited to about {max_tokens:,} tokens, without thinking or tool "
            "calls."
        ))
    raise _too_little_left(tightest, worst(MIN_REPLY_TOKENS, 1))


def _limit(own: int | None, site_default: int) -> int:
    """The user's own limit, else the site's; 0 means no limit."""
    return site_default if own is None else own


def _window_key(kind: str, user_id: int, now: float) -> str:
    return f"ratelimit:{kind}:{user_id}:{int(now // WINDOW_SECONDS)}"


def _window_add(key: str, amount: int) -> int:
    """Add `amount` to a window's counter, atomically across processes, and return the new total.

    `incr` is atomic (in Redis, and under a lock in locmem) but raises ValueError for a missing key, and a
    counter can vanish between any two calls: the local-memory cache evicts when full, Redis under maxmemory.
    So where `incr` finds none, `add` creates it holding the amount; `add` creates only if missing, so when
    another process created it first, the loop increments theirs instead of overwriting it."""
    while True:
        try:
            return cache.incr(key, amount)
        except ValueError:
            if cache.add(key, amount, timeout=WINDOW_TTL):
                return amount


def _window_give_back(key: str, amount: int) -> None:
    """Take back an amount `_window_add` counted. A counter evicted since holds nothing to give back."""
    try:
        cache.decr(key, amount)
    except ValueError:
        pass


def _window_take(key: str, amount: int, limit: int) -> bool:
    """Count `amount` into a per-minute window. Over the limit, the amount is given back and False returned;
    a request alone in an empty window always passes, so one large request is not refused forever."""
    total = _window_add(key, amount)
    if total > limit and total > amount:
        _window_give_back(key, amount)
        return False
    return True


def _rate_limits_take(user, input_tokens: int) -> None:
    now = clock()
    retry_after = max(1, math.ceil(WINDOW_SECONDS - now % WINDOW_SECONDS))
    requests_limit = _limit(user.rate_limit_requests_per_minute, settings.CHAT_RATE_LIMIT_REQUESTS_PER_MINUTE)
    tokens_limit = _limit(user.rate_limit_tokens_per_minute, settings.CHAT_RATE_LIMIT_TOKENS_PER_MINUTE)
    requests_key = _window_key("requests", user.pk, now)
    if requests_limit and not _window_take(requests_key, 1, requests_limit):
        raise RequestRefused(
            "rate_limited",
            f"You can send {requests_limit} requests a minute. Try again in {retry_after} seconds.",
            retry_after=retry_after,
        )
    if tokens_limit and not _window_take(_window_key("tokens", user.pk, now), input_tokens, tokens_limit):
        if requests_limit:
            _window_give_back(requests_key, 1)
        raise RequestRefused(
            "rate_limited",
            f"You can use {tokens_limit:,} tokens a minute and this conversation needs about {input_tokens:,}. "
            f"Try again in {retry_after} seconds.",
            retry_after=retry_after,
        )


def usage_settle(*, user_id: int | None, usage: TokenUsage) -> None:
    """After a reply's ledger rows are written: count its output tokens into this minute's token window (its
    input was counted at admission), and alert the admins if the user's spend crossed a threshold, and the
    managers of each group above the user whose members' spend did."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return
    if usage.output_tokens:
        _window_add(_window_key("tokens", user.pk, clock()), usage.output_tokens)
    budget_alerts_send(user=user)
    team_budget_alerts_send(user=user)


def budget_alerts_send(*, user) -> list[BudgetAlert]:
    """Email the admins once per month for each threshold the user's spend has reached.

    The BudgetAlert row is created first and its unique constraint decides who sends: of several processes
    settling calls at once, exactly one creates it. A mail failure is logged, never raised: it must not undo
    the settling of a reply.
    """
    status = selectors.budget_status(user)
    if status.percent is None:
        return []
    month = selectors.month_start().date()
    sent = []
    for threshold in BudgetAlert.Threshold:
        if status.percent < threshold:
            continue
        alert, created = BudgetAlert.objects.get_or_create(
            user=user, month=month, threshold=threshold, defaults={"spent": status.spent, "budget": status.budget}
        )
        if created:
            _alert_mail(alert)
            sent.append(alert)
    return sent


def _alert_mail(alert: BudgetAlert) -> None:
    user_page = reverse("admin:accounts_user_change", args=[alert.user_id])
    subject = f"{alert.user} has used {alert.threshold}% of their monthly budget"
    body = (
        f"{alert.user} has spent {_dollars(alert.spent)} of their {_dollars(alert.budget)} budget for "
        f"{alert.month:%B %Y}.\n"
        + ("New requests from them are refused until next month.\n" if alert.threshold >= 100 else "")
        + f"\nTheir budget and limits: {user_page}\n"
    )
    try:
        mail_admins(subject, body)
    except Exception:
        log.exception("budget alert email for %s (%s%%) failed", alert.user, alert.threshold)


def team_budget_alerts_send(*, user) -> list[BudgetAlert]:
    """Email the managers of each budgeted group above `user` once per month for each threshold its members'
    settled spend has reached; as for a user's alerts, the unique constraint on the row decides who sends."""
    team_ids, tree = team_selectors.team_ids_above(user)
    teams = list(Team.objects.filter(pk__in=team_ids, monthly_budget__isnull=False))
    statuses = selectors.team_budget_statuses(teams, tree)
    month = selectors.month_start().date()
    sent = []
    for team in teams:
        status = statuses[team.pk]
        for threshold in BudgetAlert.Threshold:
            if status.percent < threshold:
                continue
            alert, created = BudgetAlert.objects.get_or_create(
                team=team, month=month, threshold=threshold,
                defaults={"spent": status.spent, "budget": status.budget},
            )
            if created:
                _team_alert_mail(alert)
                sent.append(alert)
    return sent


def _team_alert_mail(alert: BudgetAlert) -> None:
    """To the group's managers who have an address; a group without one goes to the admins, so the alert is
    never lost."""
    team = alert.team
    recipients = list(
        team.memberships.filter(role=Membership.Role.MANAGER).exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    subject = f"The group {team} has used {alert.threshold}% of its monthly budget"
    body = (
        f"The members of {team} have spent {_dollars(alert.spent)} of its {_dollars(alert.budget)} budget "
        f"for {alert.month:%B %Y}.\n"
        + ("New requests from its members are refused until next month.\n" if alert.threshold >= 100 else "")
        + f"\nThe group's usage, members and budget: {reverse('team_detail', args=[team.pk])}\n"
    )
    try:
        if recipients:
            send_mail(settings.EMAIL_SUBJECT_PREFIX + subject, body, None, recipients)
        else:
            mail_admins(subject, body)
    except Exception:
        log.exception("budget alert email for the group %s (%s%%) failed", team, alert.threshold)
