"""Writes about API keys: making and revoking them, and admitting and settling the calls made with them.

A call is admitted like a title request (billing.services.request_admit_whole: every budget above the user,
the user's own cap, the rate limits) with the key's monthly cap as one more budget; its worst case is reserved
(billing.Reservation, with a KeyReservation naming the key) before anything is sent, and settling writes its
ledger row and deletes the reservation in one transaction.
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apikeys import selectors
from apikeys.errors import ApiError
from apikeys.models import ApiKey, KeyReservation
from billing import ledger
from billing import services as billing_services
from billing.ledger import UpstreamRequest
from billing.models import Reservation
from chat.llm.pricing import TokenUsage

SECRET_BYTES = 32
PREFIX_CHARS = len(selectors.SECRET_PREFIX) + 4  # "sk-chat-" and four characters of the random part
# `last_used_at` is written at most this often per key, so a busy key costs no write per call.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_key_create(*, user, name: str, expires_at=None, monthly_cap=None) -> tuple[ApiKey, str]:
    """A new key and its secret, which is returned this once and never stored: only its SHA-256 is kept."""
    secret = selectors.SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    api_key = ApiKey.objects.create(
        user=user, name=name, prefix=secret[:PREFIX_CHARS], secret_sha256=selectors.secret_sha256(secret),
        expires_at=expires_at, monthly_cap=monthly_cap,
    )
    return api_key, secret


def api_key_revoke(*, api_key: ApiKey) -> None:
    """From now on every call with the key is refused (401); its ledger rows keep naming it."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])


def api_key_authorise(*, secret: str) -> ApiKey:
    """The key a call presents, when it may call the API now, else the ApiError (401, 403) that refuses it.
    Marks the key used, at most once a LAST_USED_RESOLUTION (a conditional UPDATE: no write on most calls)."""
    api_key = selectors.api_key_usable(selectors.api_key_for_secret(secret))
    refusal = selectors.api_access_refusal(api_key.user)
    if refusal:
        raise ApiError(403, "permission_error", refusal)
    now = timezone.now()
    ApiKey.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION), pk=api_key.pk
    ).update(last_used_at=now)
    return api_key


@dataclass(frozen=True)
class ApiCallAdmitted:
    """An admitted call: whose it is and the reservation that holds its worst case."""

    user_id: int
    api_key_id: int
    reservation_id: int
    input_tokens: int  # the estimate, billed (with the full max_tokens) when no usage ever came back
    max_tokens: int


def api_call_admit(*, api_key: ApiKey, model: str, input_tokens: int, max_tokens: int) -> ApiCallAdmitted:
    """Reserve the call's worst case against every budget of the key's owner and the key's cap, or ApiError
    (402 for a budget, 429 for a rate limit). The user's row is locked first, as every admission does, so
    concurrent calls and chat replies cannot together overspend; the key is read again under the lock, so a
    key revoked a moment ago admits nothing."""
    with transaction.atomic():
        user = get_user_model().objects.select_for_update(no_key=True).filter(pk=api_key.user_id).first()
        fresh = ApiKey.objects.filter(pk=api_key.pk).first() if user is not None else None
        if fresh is not None:
            fresh.user = user  # the locked row, read just now
        api_key = selectors.api_key_usable(fresh)
        try:
            hold = billing_services.request_admit_whole(
                user=user, model=model, input_tokens=input_tokens, max_tokens=max_tokens, api_key=api_key,
            )
        except billing_services.RequestRefused as refusal:
            raise ApiError.from_refusal(refusal) from None
        reservation = billing_services.reservation_create(user=user, message=None, hold=hold)
        KeyReservation.objects.create(reservation=reservation, api_key=api_key)
    return ApiCallAdmitted(user.pk, api_key.pk, reservation.pk, input_tokens, max_tokens)


def api_call_keep(*, admitted: ApiCallAdmitted) -> None:
    """A call still in flight: its reservation is dated now, so the stale sweep (which releases reservations
    of no reply once they are CHAT_STREAM_STALE_AFTER old) leaves it alone however long the call streams."""
    Reservation.objects.filter(pk=admitted.reservation_id).update(created_at=timezone.now())


def api_call_settle(*, admitted: ApiCallAdmitted, upstream: UpstreamRequest) -> None:
    """The call's ledger row, and its reservation released, in one transaction; then its output counted into
    the token rate limit and the budget alerts sent, as after a reply."""
    with transaction.atomic():
        user_exists = get_user_model().objects.filter(pk=admitted.user_id).exists()
        calls = ledger.ledger_record(
            [upstream], user_id=admitted.user_id if user_exists else None, conversation_id=None, message=None,
            settle_key=settle_key(admitted),
        )
        Reservation.objects.filter(pk=admitted.reservation_id).delete()
    for call in calls:
        ledger.ledger_log(call)
    billing_services.usage_settle(user_id=admitted.user_id, usage=upstream.usage or TokenUsage())


def settle_key(admitted: ApiCallAdmitted) -> str:
    """Unique per reservation: a settle retried after a lost acknowledgement writes nothing twice."""
    return f"api:{admitted.reservation_id}"
