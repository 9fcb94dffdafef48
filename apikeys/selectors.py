"""Reads about API keys: the key a call presents, the policy, a user's keys, and spend by key."""

import hashlib

from django.db.models import Count, Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone

from apikeys.errors import ApiError
from apikeys.models import ApiKey, ApiPolicy
from lifecycle import selectors as lifecycle_selectors
from teams import selectors as team_selectors

SECRET_PREFIX = "sk-chat-"
# Longer than any key this app makes: a longer header is refused without hashing or a query.
SECRET_MAX_LENGTH = 128


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def presented_secret(headers) -> str:
    """The key a call presents: `x-api-key`, or `Authorization: Bearer` (what the official SDK 2.x sends)."""
    secret = headers.get("x-api-key", "")
    authorization = headers.get("authorization", "")
    if not secret and authorization[:7].lower() == "bearer ":
        secret = authorization[7:]
    return secret.strip()


def api_key_for_secret(secret: str) -> ApiKey | None:
    """The key with this secret, whatever its state, with its user; None for anything that is not one of ours.
    The lookup is by the secret's hash (unique index), so no secret is ever compared in the clear."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > SECRET_MAX_LENGTH:
        return None
    return ApiKey.objects.select_related("user").filter(secret_sha256=secret_sha256(secret)).first()


def api_key_usable(api_key: ApiKey | None) -> ApiKey:
    """`api_key` when a call may be made with it, else the 401 that says why."""
    if api_key is None:
        raise ApiError(401, "authentication_error", "invalid x-api-key")
    if api_key.revoked_at is not None:
        raise ApiError(401, "authentication_error", "This API key has been revoked.")
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        raise ApiError(401, "authentication_error", "This API key has expired.")
    if not api_key.user.is_active:
        raise ApiError(401, "authentication_error", "The owner of this API key cannot sign in any more.")
    return api_key


def api_policy() -> ApiPolicy:
    """The one row of the policy, made with its defaults (on, for everyone) the first time it is read."""
    return ApiPolicy.objects.get_or_create(pk=1)[0]


def api_access_refusal(user) -> str:
    """Why `user` may not use the API now ("" when they may): it is off, or kept to groups they are not in."""
    policy = api_policy()
    if not policy.enabled:
        return "The API is turned off on this server."
    allowed = set(policy.groups.values_list("pk", flat=True))
    if allowed and not allowed & team_selectors.team_ids_above(user)[0]:
        return "The API is open only to some groups on this server, and you are in none of them."
    return ""


def model_retirement(model_id: str) -> str:
    """Why a call may not name `model_id` ("" when it may): it is retired (the lifecycle table, asked of the
    database), and what to name instead. Never sent a request, as the chat's own turns are not."""
    row = lifecycle_selectors.model_retired(model_id)
    if row is None:
        return ""
    instead = f"; use {row.successor} instead" if row.successor else ""
    return f"model: {model_id} was retired on {row.retires_on:%Y-%m-%d}{instead}."


def keys_for_user(user) -> list[ApiKey]:
    """The settings page's list: every key of the user, revoked ones included (they say so), newest first."""
    return list(ApiKey.objects.filter(user=user))


def open_keys_count(user) -> int:
    """The user's keys not revoked (the index `apikey_user_open`), expired ones included: they can be revoked."""
    return ApiKey.objects.filter(user=user, revoked_at__isnull=True).count()


def api_key_for_user(user, key_id: int) -> ApiKey:
    """The key, when it is the user's; 404 for anyone else's, as for every object of another user."""
    return get_object_or_404(ApiKey, pk=key_id, user=user)


def spend_by_key(calls) -> list[dict]:
    """Per key, costliest first, over `calls` (a user's calls this month on the usage page); the chat's own
    calls, which name no key, are left out."""
    return list(
        calls.order_by()
        .filter(api_key__isnull=False)
        .values("api_key_id", "api_key__name", "api_key__prefix")
        .annotate(calls=Count("id"), cost=Sum("cost"))
        .order_by("-cost", "api_key__name")
    )


def api_key_may_call(secret: str) -> bool:
    """Whether a call presenting `secret` would be let through (config/body_limit.py: the larger body)."""
    try:
        api_key = api_key_usable(api_key_for_secret(secret))
    except ApiError:
        return False
    return not api_access_refusal(api_key.user)
