"""Writes about groups: memberships and budgets. (Invitations to a group are accounts.services's.)

The changes people make on the group pages are audited here, not in the views, so whatever calls these leaves
the same record. `membership_ensure` is the exception: single sign-on calls it on every sign-in and records
the sign-in itself.
"""

from decimal import Decimal

from django.db import transaction

from audit.services import audit_record
from teams.models import Membership, Team


def membership_ensure(*, team: Team, user, role: str = Membership.Role.MEMBER) -> Membership:
    """Make `user` a member of `team` with `role`, creating the membership or changing its role.

    Idempotent, so single sign-on can call it on every sign-in with the groups its claim names; a role that
    is already right is not written again.
    """
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(team=team, user=user, defaults={"role": role})
        if not created and membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
    return membership


def _subject(membership: Membership) -> str:
    return f"{membership.user} in {membership.team}"


def membership_add(*, team: Team, user, role: str, by, request=None) -> Membership:
    """Add `user` to the group with `role` (or give a member that role). A member who already has it is left
    alone and nothing is recorded."""
    previous = Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()
    membership = membership_ensure(team=team, user=user, role=role)
    if previous != role:
        audit_record(
            actor=by, action="group.member_added" if previous is None else "group.member_role_changed",
            subject=_subject(membership), request=request,
            detail={"group": team.pk, "user": user.pk, "role": role, "previous_role": previous},
        )
    return membership


def membership_role_set(*, membership: Membership, role: str, by, request=None) -> None:
    previous = membership.role
    if previous == role:
        return
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        actor=by, action="group.member_role_changed", subject=_subject(membership), request=request,
        detail={
            "group": membership.team_id, "user": membership.user_id, "role": role, "previous_role": previous,
        },
    )


def membership_remove(*, membership: Membership, by, request=None) -> None:
    """Take the user out of the group. Their spend this month leaves the group's total with them: a group's
    budget counts its members' spend, not a running total (docs/deploy.md, "Groups and budgets")."""
    subject = _subject(membership)
    detail = {"group": membership.team_id, "user": membership.user_id, "role": membership.role}
    membership.delete()
    audit_record(actor=by, action="group.member_removed", subject=subject, detail=detail, request=request)


def team_budget_set(*, team: Team, monthly_budget: Decimal | None, by, request=None) -> None:
    """Set the group's monthly budget (None: no group budget). The caller has checked that `by` may
    (teams.selectors.may_set_budget). Admission reads the budget from the locked row, so the next send sees
    it."""
    previous = team.monthly_budget
    if previous == monthly_budget:
        return
    team.monthly_budget = monthly_budget
    team.save(update_fields=["monthly_budget"])
    audit_record(
        actor=by, action="group.budget_changed", subject=str(team), request=request,
        detail={"group": team.pk, "monthly_budget": _amount(monthly_budget), "previous": _amount(previous)},
    )


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"
