"""Login throttling with django-axes: whose address counts, what a locked-out visitor reads, and which
failures a successful sign-in or a password reset forgives (settings: the "Sign-in" section)."""

import math

from axes.helpers import get_cool_off
from axes.utils import reset as axes_reset
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.shortcuts import render


def client_address(request) -> str | None:
    """REMOTE_ADDR and nothing else. A client writes its own X-Forwarded-For, so trusting it here would let
    every request claim a fresh address and never reach the limit; behind a proxy that the deployment trusts,
    uvicorn has already put the real client's address in REMOTE_ADDR."""
    return request.META.get("REMOTE_ADDR")


def lockout_message(request) -> str:
    """Every refused try restarts the cool-off (axes's AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so the
    wait from now is the whole cool-off."""
    minutes = math.ceil(get_cool_off(request).total_seconds() / 60)
    return (
        f"Too many failed sign-ins from your network. Wait {minutes} minute{'' if minutes == 1 else 's'} "
        "before trying again; each try before then starts the wait again. Forgot your password? Reset it by "
        "email, which also forgets your account's failed sign-ins."
    )


def lockout_response(request, original_response=None, credentials=None):
    """The login page again, with the reason and the wait, and 429 Too Many Requests."""
    context = {"form": AuthenticationForm(request), "lockout": lockout_message(request)}
    return render(request, "accounts/login.html", context, status=429)


def account_failures_forget(username: str, address: str | None = None) -> None:
    """Forget the failed sign-ins at account `username`: from `address` only, when given."""
    axes_reset(username=username, ip=address)


@receiver(user_logged_in)
def failures_forget_on_sign_in(sender, request, user, **kwargs):
    """Once the password is shown to be known from an address, the account's failures from there are
    forgiven. Not its failures from elsewhere: a guesser's count would start again at each of the owner's
    sign-ins. Nor the address's at other accounts: one valid account would reset a password spray's count."""
    address = client_address(request) if request is not None else None
    if address:
        account_failures_forget(user.get_username(), address)
