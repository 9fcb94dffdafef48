"""Who may create an account: the site's registration policy and the one rule that applies it.

Sign-up (accounts/views.py) and single sign-on (accounts/oidc.py) both ask `sign_up_allowed`, so an account
is never created by one path that the other would refuse.
"""

import os

from django.conf import settings
from django.core import checks
from django.db import DatabaseError

from accounts.models import Invite, RegistrationPolicy


def registration_policy() -> RegistrationPolicy:
    """The one row, created on first use from REGISTRATION_MODE and REGISTRATION_DOMAINS: the environment
    seeds it and an admin's later choice in the admin wins, across restarts. A REGISTRATION_MODE set later
    that the row contradicts is reported by `registration_mode_check`, not applied."""
    policy, _ = RegistrationPolicy.objects.get_or_create(
        id=1, defaults={"mode": settings.REGISTRATION_MODE, "domains": "\n".join(settings.REGISTRATION_DOMAINS)},
    )
    return policy


def registration_mode_check(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """A system check (manage.py check, check --deploy, migrate): a REGISTRATION_MODE set in the environment
    that the stored policy contradicts. The row is created on the first visit, so a database made by
    `make run` (open) stays open in production whatever the variable says, unless someone notices. It reads
    the database even without --database, or `check --deploy` would not say it; a database that is not
    there yet (before migrate) or not reachable has nothing to contradict."""
    if "REGISTRATION_MODE" not in os.environ:
        return []
    try:
        stored = RegistrationPolicy.objects.filter(id=1).values_list("mode", flat=True).first()
    except DatabaseError:
        return []
    if stored is None or stored == settings.REGISTRATION_MODE:
        return []
    return [checks.Warning(
        f"REGISTRATION_MODE is {settings.REGISTRATION_MODE}, but this site's registration policy, stored in "
        f"its database, is {stored}: {stored} applies. The variable only sets the first value.",
        hint="Choose the mode in the admin (Accounts, Registration policy), or unset REGISTRATION_MODE.",
        id="accounts.W001",
    )]


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower()


def sign_up_allowed(*, email: str, invite: Invite | None = None) -> bool:
    """Whether an account for `email` may be created now. An invite works in every mode, but only while it is
    unused, unexpired and unrevoked, and only for its own address when it names one. Without an invite the
    mode decides: open lets anyone in, domains the addresses of its listed domains, closed and invite
    nobody."""
    if invite is not None:
        return invite.is_usable and (not invite.email or invite.email.lower() == email.strip().lower())
    policy = registration_policy()
    if policy.mode == RegistrationPolicy.Mode.OPEN:
        return True
    if policy.mode == RegistrationPolicy.Mode.DOMAINS:
        return bool(email) and email_domain(email) in policy.domain_list
    return False
