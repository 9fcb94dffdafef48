"""Writes about groups: memberships, budgets, and accepting an invitation into a group. (Creating and revoking
invitations is accounts.services's.)

The changes made on the group pages, by single sign-on (accounts/oidc.py calls `membership_add` and
`membership_remove` with no actor) and by accepting an invitation are audited here, not in the views, so
whatever calls these leaves the same record. `membership_ensure` records nothing: its caller, signing up with
an invitation (accounts.services.sign_up_complete), records the invitation's use with the group and role.
"""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import Invite
from audit.services import audit_record
from teams.models import Membership, Team


def membership_ensure(*, team: Team, user, role: str = Membership.Role.MEMBER) -> Membership:
    """Make `user` a member of `team` with `role`, creating the membership or changing its role.

    Idempotent, so a caller need not check first (a sign-up's invitation into a group the new account may
    already be in by single sign-on); a role that is already right is not written again.
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
    budget counts its members' spend while members (teams.selectors.while_member), not a running total. So
    only site admins (the group pages check) and single sign-on (the provider's claim) remove members: a
    manager who could would escape the group's budget by inviting people and removing them."""
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


def invite_accept(*, invite: Invite, user, request=None) -> Membership | None:
    """`user`, signed in, accepts an invitation into its group: they join it with its role, and the group's
    managers see their spend from now on. None when the invitation was spent meanwhile: it is marked used by
    a conditional update, as at sign-up (accounts.services.sign_up_complete), so two tabs cannot both use it.
    The caller has checked that the invitation is for this user (`invite.email`)."""
    now = timezone.now()
    with transaction.atomic():
        spent = Invite.objects.filter(
            pk=invite.pk, used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now,
        ).update(used_at=now, used_by=user)
        if not spent:
            return None
        membership = membership_add(team=invite.team, user=user, role=invite.role, by=user, request=request)
        audit_record(
            actor=user, action="invite.used", subject=user.username, request=request,
            detail={"invite": invite.pk, "team": invite.team_id, "role": invite.role},
        )
    return membership
