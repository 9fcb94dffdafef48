from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils import timezone as django_timezone
from django.views.decorators.http import require_GET

from billing import selectors
from chat.llm.pricing import COST_QUANTUM
from config.spreadsheets import csv_response

CHART_WIDTH, CHART_HEIGHT = 720, 160
DASHBOARD_PERIODS = (7, 30, 90)


def spend_chart(days: list) -> dict:
    """Geometry of a bar chart of (day, dollars), for plain SVG in billing/_spend_chart.html: readable without
    JavaScript, with each bar's `<title>` as its tooltip. The users', the groups' and the admins' usage pages
    all draw it."""
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


def cost_cell(cost: Decimal) -> Decimal:
    """A summed cost for a CSV, to the micro-dollar as the ledger stores each call's (and as the api-calls
    export writes it): a sum on SQLite comes back with fifteen digits (42.1700000000000)."""
    return Decimal(cost).quantize(COST_QUANTUM)


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
        "chart": spend_chart(by_day),
        "by_model": selectors.spend_by_model(calls),
        "by_conversation": selectors.spend_by_conversation(calls),
    })


def _dashboard_period(request) -> tuple[int, date]:
    """The dashboard's last 7, 30 or 90 days (30 unless asked), and its first day."""
    days = int(request.GET["days"]) if request.GET.get("days") in {str(p) for p in DASHBOARD_PERIODS} else 30
    return days, django_timezone.now().date() - timedelta(days=days - 1)


def _admin_ledger_reader(request) -> None:
    """Staff only (admin_view, in urls.py), and only those who may read the ledger: these pages show every
    user's and every group's spend."""
    if not request.user.has_perm("chat.view_apicall"):
        raise PermissionDenied


def admin_usage(request):
    """The admins' usage dashboard over the last 7, 30 or 90 days."""
    _admin_ledger_reader(request)
    days, first = _dashboard_period(request)
    calls = selectors.calls_since(_midnight(first))
    totals = selectors.ledger_totals(calls)
    hit_ratio = selectors.cache_hit_ratio(totals)
    by_team = selectors.spend_by_team(since=_midnight(first))
    return render(request, "admin/billing/usage.html", {
        **admin.site.each_context(request),
        "title": "Usage",
        "days": days,
        "periods": DASHBOARD_PERIODS,
        "first": first,
        "totals": totals,
        "chart": spend_chart(selectors.spend_by_day(calls, first=first, last=django_timezone.now().date())),
        "by_model": selectors.spend_by_model(calls, limit=selectors.TOP),
        "by_user": selectors.spend_by_user(calls),
        "by_team": by_team[:selectors.TOP],
        "team_count": len(by_team),
        "cache_hit_percent": None if hit_ratio is None else hit_ratio * 100,
        "cache_savings": selectors.cache_savings(calls),
        "error_percent": _percent(totals["errors"], totals["calls"]),
        "fallback_percent": _percent(totals["fallbacks"], totals["calls"]),
    })


def admin_usage_by_team_csv(request):
    """Every group's spend over the dashboard's period, as a spreadsheet."""
    _admin_ledger_reader(request)
    days, first = _dashboard_period(request)
    rows = (
        (row["team"].name, row["team"].parent.name if row["team"].parent else "", cost_cell(row["cost"]),
         row["team"].monthly_budget)
        for row in selectors.spend_by_team(since=_midnight(first))
    )
    return csv_response(
        f"usage-by-group-{first:%Y%m%d}-{days}d.csv", ["group", "parent", "spend", "monthly_budget"], rows,
    )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)
