"""Login throttling with django-axes: whose address counts, what a locked-out visitor reads, and which
failures a successful sign-in forgives (settings: the "Sign-in" section)."""

import math

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
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
        f"Too many failed sign-ins for this account or from your network. Wait {minutes} "
        f"minute{'' if minutes == 1 else 's'} before trying again; each try before then starts the wait again. "
        "Forgot your password? Reset it by email."
    )


def lockout_response(request, original_response=None, credentials=None):
    """The login page again, with the reason and the wait, and 429 Too Many Requests."""
    context = {"form": AuthenticationForm(request), "lockout": lockout_message(request)}
    return render(request, "accounts/login.html", context, status=429)


@receiver(user_logged_in)
def account_failures_forget(sender, request, user, **kwargs):
    """The account's failures are forgiven once its password is shown to be known; its address's failures at
    other accounts still count, or one valid account would reset a password spray's count."""
    AccessAttempt.objects.filter(username=user.get_username()).delete()
