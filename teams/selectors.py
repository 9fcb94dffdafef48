"""Reads about groups: the tree of groups, who counts as a member of one, and who manages which.

A group's members, for its budget and its usage, are the people in it or in any group below it: a department's
budget covers its teams. What counts of their spend is what they spent while members (`while_member`). The
tree is read whole, in one query, and walked in Python: there are tens or hundreds of groups, not millions,
and a fixed number of queries matters more on the send path than a smaller read.
"""

from collections import defaultdict

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import Invite
from teams.models import Membership, Team

Tree = dict[int, int | None]


def team_tree() -> Tree:
    """Every group's parent, by id."""
    return dict(Team.objects.values_list("id", "parent_id"))


def with_ancestors(team_ids, tree: Tree) -> set[int]:
    """The groups and every group above them. A cycle (Team.clean refuses one) ends the walk, never loops."""
    found: set[int] = set()
    for start in team_ids:
        current = start
        while current is not None and current not in found:
            found.add(current)
            current = tree.get(current)
    return found


def with_descendants(team_id: int, tree: Tree) -> set[int]:
    """The group and every group below it."""
    children = defaultdict(list)
    for child, parent in tree.items():
        children[parent].append(child)
    found, frontier = set(), [team_id]
    while frontier:
        current = frontier.pop()
        if current not in found:
            found.add(current)
            frontier.extend(children[current])
    return found


def team_ids_above(user) -> tuple[set[int], Tree]:
    """The ids of `user`'s groups and of every group above them, and the tree they were found in (the budget
    reads need it again for each group's members). No groups: no tree is read."""
    direct = list(Membership.objects.filter(user=user).values_list("team_id", flat=True))
    if not direct:
        return set(), {}
    tree = team_tree()
    return with_ancestors(direct, tree), tree


def member_ids(team_id: int, tree: Tree) -> QuerySet:
    """A subquery of the user ids who count for the group: its members and those of the groups below it."""
    return Membership.objects.filter(team_id__in=with_descendants(team_id, tree)).values("user_id")


def while_member(team_id: int, tree: Tree) -> Exists:
    """A condition on ledger rows (or any rows with `user_id` and `created_at`): made by someone who counts
    for the group, after they joined it or a group below it. So neither the group's budget nor its managers'
    pages take in what a person spent before they accepted an invitation, this month or any earlier one."""
    return Exists(Membership.objects.filter(
        team_id__in=with_descendants(team_id, tree), user_id=OuterRef("user_id"),
        created_at__lte=OuterRef("created_at"),
    ))


def is_site_admin(user) -> bool:
    """Site admins manage every group, budgets included: staff who may change groups in the admin (superusers,
    or staff given the permission). A staff member without it sees no more here than in the admin."""
    return user.is_staff and user.has_perm("teams.change_team")


def may_set_budget(user) -> bool:
    """Site admins always; group managers for their own groups when the site allows it
    (TEAMS_MANAGERS_SET_BUDGET), since a budget is what the company pays."""
    return is_site_admin(user) or settings.TEAMS_MANAGERS_SET_BUDGET


def teams_for_manager(user) -> QuerySet[Team]:
    """The groups `user` manages (every group for a site admin), with their parent and member count."""
    teams = Team.objects.select_related("parent").annotate(member_count=Count("memberships"))
    if is_site_admin(user):
        return teams
    managed = Membership.objects.filter(user=user, role=Membership.Role.MANAGER).values("team_id")
    return teams.filter(pk__in=managed)


def team_for_manager(user, team_id) -> Team:
    """The group if `user` manages it (or is a site admin), else 404: the one door to every group page, so a
    member, an outsider and the manager of another group cannot tell a group they may not see from none."""
    teams = Team.objects.select_related("parent")
    if not is_site_admin(user):
        managed = Membership.objects.filter(user=user, role=Membership.Role.MANAGER).values("team_id")
        teams = teams.filter(pk__in=managed)
    return get_object_or_404(teams, pk=team_id)


def team_memberships(team: Team) -> QuerySet[Membership]:
    """The group's own members (not its subgroups'), for the members table."""
    return team.memberships.select_related("user").order_by("user__username")


def team_invites(team: Team) -> QuerySet:
    """The group's invitations that can still be used: the ones a manager may want to copy or revoke."""
    return team.invites.filter(used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())


def invite_for_joining(token: str) -> Invite:
    """The open invitation into a group with this token, else 404: a used, expired or revoked link, and an
    invitation to the site with no group, all look like no link at all."""
    invites = Invite.objects.select_related("team", "created_by")
    invite = invites.filter(token=token, team__isnull=False).first()
    if invite is None or not invite.is_usable:
        raise Http404("No open invitation into a group has this link.")
    return invite
