"""The group managers' pages: their groups, and for each its usage, members, budget and invitations; and the
page where someone accepts an invitation into a group.

Every manager's view reaches its group through `team_for_manager`, so a member, an outsider and the manager of
another group get the same 404 on every URL here. Site admins see every group. People join a group only by
accepting an invitation (`team_join`): a manager cannot put someone's spend on their page, or under their
group's budget, without that person's consent. Adding and removing members directly is for site admins.
"""

from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone as django_timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services as account_services
from billing import cache_report
from billing import selectors as billing_selectors
from billing.views import cache_page_context, cache_report_asked, cache_report_csv, cost_cell, spend_chart
from config.spreadsheets import csv_response
from teams import selectors, services
from teams.forms import InviteForm, MemberAddForm, MemberRoleForm, TeamBudgetForm
from teams.models import Membership

CSV_COLUMNS = (
    "day", "user__username", "model", "calls", "input_tokens", "output_tokens", "cache_read_input_tokens",
    "cache_creation_5m_input_tokens", "cache_creation_1h_input_tokens", "cost",
)


@login_required
@require_GET
def team_list(request):
    teams = list(selectors.teams_for_manager(request.user))
    statuses = billing_selectors.team_budget_statuses(teams, selectors.team_tree() if teams else {})
    return render(request, "teams/team_list.html", {
        "rows": [{"team": team, "status": statuses[team.pk]} for team in teams],
    })


def _team_page(request, team, *, status=200, **forms):
    """The group's page; a form that failed comes back bound, with its errors, in place of a blank one."""
    tree = selectors.team_tree()
    since = billing_selectors.month_start()
    calls = billing_selectors.calls_for_team(team, tree, since=since)
    totals = billing_selectors.ledger_totals(calls)
    cache = cache_report.cache_totals(calls)
    is_site_admin = selectors.is_site_admin(request.user)
    may_set_budget = selectors.may_set_budget(request.user)
    budget_form = forms.get("budget_form") or TeamBudgetForm(initial={"monthly_budget": team.monthly_budget})
    return render(request, "teams/team_detail.html", {
        "team": team,
        "month": since,
        "budget_status": billing_selectors.team_budget_statuses([team], tree)[team.pk],
        "totals": totals,
        "chart": spend_chart(billing_selectors.spend_by_day(
            calls, first=since.date(), last=django_timezone.now().date(),
        )),
        "by_member": billing_selectors.spend_by_user(calls, limit=None),
        "by_model": billing_selectors.spend_by_model(calls),
        "cache_hit_percent": cache.hit_percent,
        "cache_savings": cache.saved,
        "memberships": selectors.team_memberships(team),
        "invites": selectors.team_invites(team),
        "roles": Membership.Role.choices,
        "may_remove": is_site_admin,
        "add_form": (forms.get("add_form") or MemberAddForm()) if is_site_admin else None,
        "budget_form": budget_form if may_set_budget else None,
        "invite_form": forms.get("invite_form") or InviteForm(),
    }, status=status)


@login_required
@require_GET
def team_detail(request, team_id):
    return _team_page(request, selectors.team_for_manager(request.user, team_id))


@login_required
@require_POST
def team_member_add(request, team_id):
    team = selectors.team_for_manager(request.user, team_id)
    _site_admin_only(request.user, "Group managers bring people in by invitation, which they accept.")
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        return _team_page(request, team, status=400, add_form=form)
    membership = services.membership_add(
        team=team, user=form.cleaned_data["who"], role=form.cleaned_data["role"], by=request.user,
        request=request,
    )
    messages.success(request, _role_said(membership))
    return redirect("team_detail", team_id=team.pk)


@login_required
@require_POST
def team_member_role(request, team_id, membership_id):
    team = selectors.team_for_manager(request.user, team_id)
    membership = get_object_or_404(team.memberships.select_related("user"), pk=membership_id)
    form = MemberRoleForm(request.POST)
    if form.is_valid():
        services.membership_role_set(
            membership=membership, role=form.cleaned_data["role"], by=request.user, request=request,
        )
        messages.success(request, _role_said(membership))
    return redirect("team_detail", team_id=team.pk)


@login_required
@require_POST
def team_member_remove(request, team_id, membership_id):
    team = selectors.team_for_manager(request.user, team_id)
    _site_admin_only(request.user, "Only site admins remove members: their spend leaves the group's total.")
    membership = get_object_or_404(team.memberships.select_related("user"), pk=membership_id)
    services.membership_remove(membership=membership, by=request.user, request=request)
    messages.success(request, f"{membership.user} is no longer in {team}.")
    return redirect("team_detail", team_id=team.pk)


@login_required
@require_POST
def team_budget(request, team_id):
    team = selectors.team_for_manager(request.user, team_id)
    if not selectors.may_set_budget(request.user):
        raise PermissionDenied("Only site admins set group budgets here (TEAMS_MANAGERS_SET_BUDGET).")
    form = TeamBudgetForm(request.POST)
    if not form.is_valid():
        return _team_page(request, team, status=400, budget_form=form)
    services.team_budget_set(
        team=team, monthly_budget=form.cleaned_data["monthly_budget"], by=request.user, request=request,
    )
    messages.success(request, f"The budget of {team} is saved.")
    return redirect("team_detail", team_id=team.pk)


@login_required
@require_POST
def team_invite_create(request, team_id):
    team = selectors.team_for_manager(request.user, team_id)
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _team_page(request, team, status=400, invite_form=form)
    invite = account_services.invite_create(
        created_by=request.user, team=team, role=form.cleaned_data["role"], email=form.cleaned_data["email"],
        request=request,
    )
    messages.success(request, f"Invitation link, to send yourself: {_join_link(request, invite)}")
    return redirect("team_detail", team_id=team.pk)


@login_required
@require_POST
def team_invite_revoke(request, team_id, invite_id):
    team = selectors.team_for_manager(request.user, team_id)
    invite = get_object_or_404(team.invites, pk=invite_id)
    account_services.invite_revoke(invite=invite, by=request.user, request=request)
    messages.success(request, "The invitation is revoked.")
    return redirect("team_detail", team_id=team.pk)


@login_required
@require_GET
def team_usage_csv(request, team_id):
    """The group's usage in a month (this one, or `?month=2026-11`), one row per day, member and model, of its
    members while members."""
    team = selectors.team_for_manager(request.user, team_id)
    since = _month(request.GET.get("month"))
    calls = billing_selectors.calls_for_team(team, selectors.team_tree(), since=since).filter(
        created_at__lt=billing_selectors.next_month_start(since),
    )
    rows = (
        [*(row[column] for column in CSV_COLUMNS[:-1]), cost_cell(row["cost"])]
        for row in billing_selectors.usage_by_day_member_model(calls)
    )
    return csv_response(f"group-{team.pk}-usage-{since:%Y-%m}.csv", ["day", "member", *CSV_COLUMNS[2:]], rows)


@login_required
@require_GET
def team_cache(request, team_id):
    """The group's cache report: hit rate and savings of its members while members, by model, member and day."""
    team = selectors.team_for_manager(request.user, team_id)
    days, report = _team_cache_report(request, team)
    return render(request, "teams/team_cache.html", {"team": team, **cache_page_context(days, report)})


@login_required
@require_GET
def team_cache_csv(request, team_id):
    team = selectors.team_for_manager(request.user, team_id)
    days, report = _team_cache_report(request, team)
    return cache_report_csv(report, f"group-{team.pk}-cache", days)


def _team_cache_report(request, team):
    tree = selectors.team_tree()
    return cache_report_asked(
        request, lambda since: billing_selectors.calls_for_team(team, tree, since=since),
    )


@require_http_methods(["GET", "POST"])
def team_join(request, token):
    """An invitation into a group, opened by someone who may already have an account here. Signed in, they
    see the group and its budget and join only by accepting (POST); signed out, they may sign up with the
    invitation or log in and come back."""
    invite = selectors.invite_for_joining(token)
    if not request.user.is_authenticated:
        if request.method == "POST":
            return redirect_to_login(request.path)
        return render(request, "teams/join.html", {"invite": invite})
    if invite.email and invite.email.lower() != request.user.email.lower():
        return render(request, "teams/join.html", {"invite": invite, "wrong_address": True}, status=403)
    joined = None
    if request.method == "POST":
        joined = services.invite_accept(invite=invite, user=request.user, request=request)
        if joined is None:
            raise Http404("This invitation was used meanwhile.")
    return render(request, "teams/join.html", {
        "invite": invite, "joined": joined,
        "budget_status": billing_selectors.team_budget_statuses([invite.team], selectors.team_tree())[
            invite.team.pk],
    })


def _join_link(request, invite) -> str:
    """The link a manager sends: it works for someone with an account and for someone without (team_join)."""
    return request.build_absolute_uri(reverse("team_join", args=[invite.token]))


def _site_admin_only(user, why: str) -> None:
    if not selectors.is_site_admin(user):
        raise PermissionDenied(why)


def _role_said(membership: Membership) -> str:
    return f"{membership.user} is a {membership.get_role_display().lower()} of {membership.team}."


def _month(value: str | None) -> datetime:
    """Midnight UTC on the first of the month `value` names (YYYY-MM); this month's when it names none."""
    try:
        return datetime.strptime(value or "", "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        return billing_selectors.month_start()
