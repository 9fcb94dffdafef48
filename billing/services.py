"""Writes about money: admitting a request (budget, rate limits), settling it, and alerting the admins.

Admission happens before the user's message is stored or anything is sent upstream; settlement happens after
the ledger rows are written (`chat.services.message_finish`), with the real cost.
"""

import logging
import math
import time
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import mail_admins
from django.urls import reverse

from billing import selectors
from billing.models import BudgetAlert
from chat.llm.pricing import TokenUsage
from chat.models import Conversation

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# A window's counter outlives its minute, so it cannot expire while its minute is still counting.
WINDOW_TTL = 2 * WINDOW_SECONDS
# Seconds since the epoch; tests pin it so a window boundary never falls in the middle of a test.
clock = time.time


class RequestRefused(Exception):
    """The request may not be sent now. `code` and `detail` become an `error` frame (docs/protocol.md)."""

    def __init__(self, code: str, detail: str, *, retry_after: int | None = None):
        super().__init__(detail)
        self.code, self.detail, self.retry_after = code, detail, retry_after


def request_admit(
    *, user_id: int, conversation: Conversation, text: str, model: str, attachment_ids: list[int] = ()
) -> None:
    """Raise RequestRefused unless the user may send this request now.

    The budget is checked first and only reads; the rate limits then count the request, so a request refused
    for its budget uses no rate-limit quota. The user is re-read, so an admin's change applies at once.
    """
    user = get_user_model().objects.get(pk=user_id)
    estimate = selectors.request_estimate(
        conversation=conversation, text=text, model=model, attachment_ids=attachment_ids
    )
    _budget_check(user, estimate.cost)
    _rate_limits_take(user, estimate.input_tokens)


def _dollars(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def _budget_check(user, estimated_cost: Decimal) -> None:
    status = selectors.budget_status(user)
    if status.budget is None:
        return
    resets = f"{selectors.next_month_start():%B} 1"
    if status.exceeded:
        raise RequestRefused(
            "budget_exceeded",
            f"You have used your monthly budget of {_dollars(status.budget)} ({_dollars(status.spent)} spent). "
            f"New requests are refused until {resets}, unless an admin raises your budget.",
        )
    if status.spent + estimated_cost > status.budget:
        raise RequestRefused(
            "budget_exceeded",
            f"This request could cost up to {_dollars(estimated_cost)}, and {_dollars(status.remaining)} is left "
            f"of your {_dollars(status.budget)} monthly budget. A new chat (shorter history) or a cheaper model "
            f"costs less; your budget resets on {resets}.",
        )


def _limit(own: int | None, site_default: int) -> int:
    """The user's own limit, else the site's; 0 means no limit."""
    return site_default if own is None else own


def _window_key(kind: str, user_id: int, now: float) -> str:
    return f"ratelimit:{kind}:{user_id}:{int(now // WINDOW_SECONDS)}"


def _window_take(key: str, amount: int, limit: int) -> bool:
    """Count `amount` into a per-minute window, atomically across processes: `add` creates the counter only
    if it is missing, `incr` is atomic in Redis and under a lock in locmem. Over the limit, the amount is given
    back and False returned; a request alone in an empty window always passes, so one large request is not
    refused forever."""
    cache.add(key, 0, timeout=WINDOW_TTL)
    total = cache.incr(key, amount)
    if total > limit and total > amount:
        cache.decr(key, amount)
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
            cache.decr(requests_key)
        raise RequestRefused(
            "rate_limited",
            f"You can use {tokens_limit:,} tokens a minute and this conversation needs about {input_tokens:,}. "
            f"Try again in {retry_after} seconds.",
            retry_after=retry_after,
        )


def usage_settle(*, user_id: int | None, usage: TokenUsage) -> None:
    """After a reply's ledger rows are written: count its output tokens into this minute's token window (its
    input was counted at admission), and alert the admins if the user's spend crossed a threshold."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return
    if usage.output_tokens:
        key = _window_key("tokens", user.pk, clock())
        cache.add(key, 0, timeout=WINDOW_TTL)
        cache.incr(key, usage.output_tokens)
    budget_alerts_send(user=user)


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
