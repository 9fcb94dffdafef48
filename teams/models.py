"""Groups of users (departments, teams) and who manages them; a group may sit inside another and may have a
monthly dollar budget that its members' spend counts against, together with every budget above it."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models


class Team(models.Model):
    """A department or team. Named "Team" in code so it is never confused with django.contrib.auth's Group
    (permissions); the pages call it a group."""

    name = models.CharField(max_length=120, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children",
        help_text="The group this one belongs to (a team inside a department): its budget counts too.",
    )
    monthly_budget = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="Dollars per calendar month (UTC) for all members together. Empty: no group budget. "
        "0: members may spend nothing.",
    )
    sso_claim_value = models.CharField(
        max_length=200, blank=True,
        help_text="Members are added on single sign-on when the groups claim holds this value. Empty: never.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        """A group may not sit inside itself, directly or further down: the budget walk up the tree would then
        never reach a top."""
        ancestor, seen = self.parent, set()
        while ancestor is not None and ancestor.pk not in seen:
            if self.pk is not None and ancestor.pk == self.pk:
                raise ValidationError({"parent": "A group cannot sit inside itself or one of its subgroups."})
            seen.add(ancestor.pk)
            ancestor = ancestor.parent


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        MANAGER = "manager", "Manager"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_once_per_team"),
        ]
        indexes = [
            # The admission's walk from a user to their groups, and a manager's "my groups".
            models.Index(fields=["user", "role"], name="membership_user_role"),
        ]

    def __str__(self):
        return f"{self.user} in {self.team} ({self.role})"
