"""Who may create an account: the site's registration policy and the one rule that applies it.

Sign-up (accounts/views.py) and single sign-on (accounts/oidc.py) both ask `sign_up_allowed`, so an account
is never created by one path that the other would refuse.
"""

from django.conf import settings

from accounts.models import Invite, RegistrationPolicy


def registration_policy() -> RegistrationPolicy:
    """The one row, created on first use from REGISTRATION_MODE and REGISTRATION_DOMAINS: the environment
    seeds it and an admin's later choice in the admin wins, across restarts."""
    policy, _ = RegistrationPolicy.objects.get_or_create(
        id=1, defaults={"mode": settings.REGISTRATION_MODE, "domains": "\n".join(settings.REGISTRATION_DOMAINS)},
    )
    return policy


def registration_mode() -> str:
    return registration_policy().mode


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
