"""Single sign-on with OpenID Connect. mozilla-django-oidc speaks the protocol (PKCE, state, nonce, the RS256
signature against the provider's JWKS); this module decides who a provider's identity is here.

A provider's identity becomes an account through its email address, and only one the provider says it
verified: anyone can type any address into an account at some providers, and matching that to an existing
account would hand the account over. A first sign-in creates the account only if the registration mode lets
that address sign up (accounts/registration.py), so single sign-on is never a way around a closed deployment.
"""

import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.shortcuts import render
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView

from accounts.registration import sign_up_allowed
from audit.services import audit_record
from teams.models import Membership, Team
from teams.services import membership_add, membership_remove

# Why a sign-in that the provider completed was not let in, as the refusal page says it.
REFUSALS = {
    "unverified_email": "Your account at {provider} has no verified email address, so it cannot be matched "
    "to an account here. Ask whoever runs {provider} to verify it.",
    "sign_up_closed": "This deployment does not accept new accounts from single sign-on; ask an admin for an "
    "invite.",
    "inactive": "This account has been deactivated; ask an admin.",
}
NOT_COMPLETED = "Single sign-on did not sign you in. Try again, or log in with your password."


class SsoRefused(Exception):
    """A sign-in the provider completed that this deployment does not let in. Raised through
    django.contrib.auth.authenticate rather than returned as None, so it is not a failed sign-in to
    django-axes: the provider knew who this was, and nobody is guessing a password."""

    def __init__(self, reason: str, email: str):
        super().__init__(reason)
        self.reason, self.email = reason, email


def sso_provider(request) -> dict:
    """Context processor, installed only when single sign-on is configured: the login page's button."""
    return {"sso_provider_name": settings.OIDC_PROVIDER_NAME}


class OidcBackend(OIDCAuthenticationBackend):
    def verify_token(self, token, **kwargs):
        """The library checks the signature, expiry and nonce; an ID token is also only ours if our issuer
        issued it to this client (OpenID Connect Core 3.1.3.7)."""
        payload = super().verify_token(token, **kwargs)
        audience = payload.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience or []
        if payload.get("iss") != settings.OIDC_ISSUER or self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("The ID token was not issued by OIDC_ISSUER to this client.")
        return payload

    def get_or_create_user(self, access_token, id_token, payload):
        """The account for a completed sign-in; SsoRefused says why there is none."""
        claims = self.get_userinfo(access_token, id_token, payload)
        if claims.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("The userinfo response is about another subject than the ID token.")
        email = (claims.get("email") or "").strip()
        if not email or claims.get("email_verified") not in (True, "true"):
            raise SsoRefused("unverified_email", email)
        user = get_user_model().objects.filter(email__iexact=email).first()
        if user is None:
            if not sign_up_allowed(email=email):
                raise SsoRefused("sign_up_closed", email)
            user = sso_user_create(email=email, claims=claims, request=self.request)
        elif not user.is_active:
            raise SsoRefused("inactive", email)
        sso_memberships_sync(user=user, claims=claims, request=self.request)
        return user


def sso_user_create(*, email: str, claims: dict, request):
    """A new account for a first sign-in. It has no usable password: it signs in through the provider (or
    sets a password by reset, where email is configured)."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(sso_username_free(claims, email), email=email)
        audit_record(
            actor=user, action="sso.account_created", subject=user.username,
            detail={"issuer": settings.OIDC_ISSUER, "email": email}, request=request,
        )
    return user


def sso_username_free(claims: dict, email: str) -> str:
    """The provider's preferred_username (else the address's local part) in the characters Django allows,
    with -2, -3, ... until no account has it in any letter case."""
    for candidate in (claims.get("preferred_username") or "", email.partition("@")[0], "user"):
        base = re.sub(r"[^\w.@+-]", "", candidate)[:140]
        if base:
            break
    similar = get_user_model().objects.filter(username__istartswith=base).values_list("username", flat=True)
    taken = {username.lower() for username in similar}
    username, suffix = base, 1
    while username.lower() in taken:
        suffix += 1
        username = f"{base}-{suffix}"
    return username


def sso_memberships_sync(*, user, claims: dict, request) -> None:
    """Groups with an sso_claim_value follow the provider's groups claim (a list, or one string): the user
    joins those it names and leaves those it no longer names, each change audited as the group pages' are,
    with no actor (the provider made it). A membership that stays keeps its role, so a manager stays a
    manager; groups without a claim value, and every group when the claim is missing from the response
    altogether (a scope not granted), are left alone."""
    if settings.OIDC_GROUPS_CLAIM not in claims:
        return
    named = claims[settings.OIDC_GROUPS_CLAIM]
    values = [named] if isinstance(named, str) else [value for value in named or [] if isinstance(value, str)]
    current = Membership.objects.filter(user=user).exclude(team__sso_claim_value="").select_related("team")
    for membership in current:
        if membership.team.sso_claim_value not in values:
            membership_remove(membership=membership, by=None, request=request)
    for team in Team.objects.filter(sso_claim_value__in=values).exclude(memberships__user=user):
        membership_add(team=team, user=user, role=Membership.Role.MEMBER, by=None, request=request)


class OidcCallbackView(OIDCAuthenticationCallbackView):
    """The library's callback, with a page that says why a sign-in was refused, not a silent redirect."""

    def get(self, request):
        try:
            return super().get(request)
        except SsoRefused as refusal:
            audit_record(
                actor=None, action="sso.refused", subject=refusal.email, detail={"reason": refusal.reason},
                request=request,
            )
            return self.refusal_page(REFUSALS[refusal.reason].format(provider=settings.OIDC_PROVIDER_NAME))

    def login_failure(self):
        return self.refusal_page(NOT_COMPLETED)

    def refusal_page(self, message: str):
        return render(self.request, "accounts/sso_refused.html", {"message": message}, status=403)
