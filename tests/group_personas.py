"""The people of the group tests: Alice manages Marketing (budget $500), Bob is a member of it, Dave manages
Sales, and Charlie belongs to no group. Marketing sits inside the Company department (no budget of its own
until a test gives it one)."""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model

from teams.models import Membership, Team


@dataclass
class Personas:
    company: Team
    marketing: Team
    sales: Team
    alice: object
    bob: object
    charlie: object
    dave: object


def group_personas() -> Personas:
    users = get_user_model().objects
    company = Team.objects.create(name="Company")
    marketing = Team.objects.create(name="Marketing", parent=company, monthly_budget=Decimal("500"))
    sales = Team.objects.create(name="Sales", parent=company)
    alice, bob, charlie, dave = (
        users.create_user(username=name, email=f"{name}@example.com", password=f"a-long-passphrase-{name}")
        for name in ("alice", "bob", "charlie", "dave")
    )
    Membership.objects.create(team=marketing, user=alice, role=Membership.Role.MANAGER)
    Membership.objects.create(team=marketing, user=bob)
    Membership.objects.create(team=sales, user=dave, role=Membership.Role.MANAGER)
    return Personas(company, marketing, sales, alice, bob, charlie, dave)
