from datetime import datetime, time, timedelta, timezone

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils import timezone as django_timezone
from django.views.decorators.http import require_GET

from billing import selectors

CHART_WIDTH, CHART_HEIGHT = 720, 160
DASHBOARD_PERIODS = (7, 30, 90)


def _bar_chart(days: list) -> dict:
    """Geometry of a bar chart of (day, dollars), for plain SVG in the template: readable without JavaScript,
    with each bar's `<title>` as its tooltip."""
    peak = max((cost for _, cost in days), default=0)
    slot = CHART_WIDTH / max(len(days), 1)
    bars = []
    for index, (day, cost) in enumerate(days):
        height = round(float(cost / peak) * CHART_HEIGHT, 2) if peak else 0
        bars.append({
            "day": day, "cost": cost, "height": height, "y": round(CHART_HEIGHT - height, 2),
            "x": round(index * slot + slot * 0.1, 2), "width": round(slot * 0.8, 2),
        })
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "bars": bars, "peak": peak}


def _percent(part: float, whole: float) -> float | None:
    return part * 100 / whole if whole else None


@login_required
@require_GET
def usage(request):
    """The signed-in user's own spend this month: there is no user in the URL, so nobody can ask for another's."""
    since = selectors.month_start()
    calls = selectors.calls_for_user(request.user, since=since)
    by_day = selectors.spend_by_day(calls, first=since.date(), last=django_timezone.now().date())
    return render(request, "billing/usage.html", {
        "month": since,
        "budget_status": selectors.budget_status(request.user),
        "totals": selectors.ledger_totals(calls),
        "chart": _bar_chart(by_day),
        "by_model": selectors.spend_by_model(calls),
        "by_conversation": selectors.spend_by_conversation(calls),
    })


def admin_usage(request):
    """The admins' usage dashboard over the last 7, 30 or 90 days. Staff only (admin_view, in urls.py), and
    only for those who may read the ledger, since it shows every user's spend."""
    if not request.user.has_perm("chat.view_apicall"):
        raise PermissionDenied
    days = int(request.GET["days"]) if request.GET.get("days") in {str(p) for p in DASHBOARD_PERIODS} else 30
    today = django_timezone.now().date()
    first = today - timedelta(days=days - 1)
    calls = selectors.calls_since(datetime.combine(first, time.min, tzinfo=timezone.utc))
    totals = selectors.ledger_totals(calls)
    hit_ratio = selectors.cache_hit_ratio(totals)
    return render(request, "admin/billing/usage.html", {
        **admin.site.each_context(request),
        "title": "Usage",
        "days": days,
        "periods": DASHBOARD_PERIODS,
        "first": first,
        "totals": totals,
        "chart": _bar_chart(selectors.spend_by_day(calls, first=first, last=today)),
        "by_model": selectors.spend_by_model(calls, limit=selectors.TOP),
        "by_user": selectors.spend_by_user(calls),
        "cache_hit_percent": None if hit_ratio is None else hit_ratio * 100,
        "cache_savings": selectors.cache_savings(calls),
        "error_percent": _percent(totals["errors"], totals["calls"]),
        "fallback_percent": _percent(totals["fallbacks"], totals["calls"]),
    })
