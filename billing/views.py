from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone as django_timezone
from django.views.decorators.http import require_GET

from apikeys.selectors import spend_by_key
from billing import cache_report, selectors
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
        # The API's calls belong to no conversation: they have their own lines, per key.
        "by_conversation": selectors.spend_by_conversation(calls.filter(api_key__isnull=True)),
        "by_key": spend_by_key(calls),
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
    cache = cache_report.cache_totals(calls)
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
        "cache_hit_percent": cache.hit_percent,
        "cache_savings": cache.saved,
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


# --- the cache report (billing/cache_report.py) ---------------------------------------------------------

CACHE_CSV_HEADER = (
    "table", "row", "input_tokens", "uncached_input_tokens", "cache_read_input_tokens",
    "cache_creation_5m_input_tokens", "cache_creation_1h_input_tokens", "hit_rate", "saved",
)


def cache_report_asked(request, calls_since, **options) -> tuple[int | None, cache_report.CacheReport]:
    """The report the request asks for (`?days=7|30|90`, else this month; `?by=week`, else by day) over the
    rows `calls_since(since)` returns, already narrowed to what the reader may see: the admins' page, a group's,
    and their CSVs."""
    days, since = cache_report.report_period(request.GET.get("days"))
    report = cache_report.cache_report(
        calls_since(since), first=since.date(), last=django_timezone.now().date(),
        bucket=cache_report.report_bucket(request.GET.get("by")), **options,
    )
    return days, report


def cache_page_context(days: int | None, report: cache_report.CacheReport) -> dict:
    """What billing/_cache_report.html needs beside the report: the period links and the chart."""
    return {"report": report, "days": days, "periods": cache_report.PERIODS, "chart": cache_chart(report.series)}


def cache_chart(series: list) -> dict:
    """Geometry of the cache report's bars (billing/_cache_chart.html): each day's or week's hit rate out of
    100%, with what it saved in the bar's `<title>`. A hit rate, unlike savings, is never negative."""
    slot = CHART_WIDTH / max(len(series), 1)
    bars = []
    for index, (start, figures) in enumerate(series):
        height = round((figures.hit_rate or 0) * CHART_HEIGHT, 2)
        bars.append({
            "start": start, "figures": figures, "height": height, "y": round(CHART_HEIGHT - height, 2),
            "x": round(index * slot + slot * 0.1, 2), "width": round(slot * 0.8, 2),
        })
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "bars": bars}


def cache_report_csv(report: cache_report.CacheReport, prefix: str, days: int | None) -> HttpResponse:
    """The report as one table, a row per line of each of its tables (`table`: total, model, user, group, day
    or week), for a pivot table; named by `prefix` and the period."""
    lines = [
        ("total", "", report.total),
        *(("model", row["model"], row["figures"]) for row in report.by_model),
        *(("user", row["user__username"] or "(deleted users)", row["figures"]) for row in report.by_user),
        *(("group", row["team"].name, row["figures"]) for row in report.by_team or ()),
        *((report.bucket, start.isoformat(), figures) for start, figures in report.series),
    ]
    rows = (
        (table, name, figures.input_tokens, figures.uncached, figures.read, figures.written_5m,
         figures.written_1h, None if figures.hit_rate is None else round(figures.hit_rate, 6),
         cost_cell(figures.saved))
        for table, name, figures in lines
    )
    filename = f"{prefix}-{report.first:%Y%m%d}-{f'{days}d' if days else 'month'}-by-{report.bucket}.csv"
    return csv_response(filename, CACHE_CSV_HEADER, rows)


def admin_cache(request):
    """The admins' cache report: every user's and group's hit rate and savings (top ten users; the CSV has
    all)."""
    _admin_ledger_reader(request)
    days, report = cache_report_asked(request, selectors.calls_since, by_team=True, users=selectors.TOP)
    return render(request, "admin/billing/cache.html", {
        **admin.site.each_context(request), "title": "Prompt cache", **cache_page_context(days, report),
    })


def admin_cache_csv(request):
    _admin_ledger_reader(request)
    days, report = cache_report_asked(request, selectors.calls_since, by_team=True)
    return cache_report_csv(report, "cache", days)
