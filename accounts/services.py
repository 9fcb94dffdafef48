"""Writes about accounts: settings, invites, the two steps of signing up, and a password reset's end."""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.lockout import account_failures_forget
from accounts.mail import account_mail_allowed, mail_send_later
from accounts.models import Invite, User
from accounts.registration import sign_up_allowed
from audit.services import audit_record
from teams.services import membership_ensure

SIGN_UP_SALT = "accounts.sign_up"
INVITE_UNUSABLE = (
    "This invite link can no longer be used: it was used already, it expired, or it was revoked. "
    "Ask whoever sent it for a new one."
)
LINK_USED = "This link was used already, or the username was taken meanwhile. Log in, or sign up again."


class SignUpRefused(Exception):
    """A confirmation link that cannot create its account (any more); the message says why, to its user."""


def user_settings_update(
    *, user: User, default_model: str, system_prompt: str, time_zone: str, theme: str,
    monthly_cap: Decimal | None, batch_email: bool = False, location_city: str = "", location_region: str = "",
    location_country: str = "", default_thinking: str = "", request=None,
) -> None:
    """New conversations take the defaults when they are created; existing ones keep their own. The cap is
    the user's own and only ever lowers what their budgets allow (billing's admission takes the lowest); a
    change of it is audited, like every other change to what someone may spend. The previous cap is read
    from the database: a ModelForm has already written the new one onto `user`."""
    previous_cap, previous_zone = User.objects.filter(pk=user.pk).values_list("monthly_cap", "time_zone").get()
    user.default_model = default_model
    user.system_prompt = system_prompt.strip()
    user.time_zone = time_zone
    # A zone changed here was chosen: the chat page stops proposing the browser's (user_time_zone_answer).
    user.time_zone_confirmed = user.time_zone_confirmed or time_zone != previous_zone
    user.theme = theme
    user.monthly_cap = monthly_cap
    user.batch_email = batch_email  # an email when a half-price reply lands (batches/worker.py)
    # The approximate place web search is told (chat/llm/server_tools.py `user_location`).
    user.location_city, user.location_region = location_city.strip(), location_region.strip()
    user.location_country = location_country
    # New conversations think this much (chat/services.py `conversation_new`); "" keeps what it was.
    user.default_thinking = default_thinking or user.default_thinking
    user.save(update_fields=[
        "default_model", "system_prompt", "time_zone", "time_zone_confirmed", "theme", "monthly_cap", "batch_email",
        "location_city", "location_region", "location_country", "default_thinking",
    ])
    if monthly_cap != previous_cap:
        audit_record(
            actor=user, action="account.cap_changed", subject=user.username, request=request,
            detail={"monthly_cap": _amount(monthly_cap), "previous": _amount(previous_cap)},
        )


def user_theme_set(*, user: User, theme: str) -> None:
    """Light, dark or "" (the system's): base.html renders it on <html>, so the next page is drawn in it."""
    user.theme = theme
    user.save(update_fields=["theme"])


def user_time_zone_answer(*, user: User, time_zone: str) -> None:
    """The chat page's proposal answered, "Use it" (the browser's zone) or "Keep" (the saved one): either way
    the user has now chosen, and is not asked again. The caller has checked that the zone exists."""
    user.time_zone = time_zone
    user.time_zone_confirmed = True
    user.save(update_fields=["time_zone", "time_zone_confirmed"])


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def invite_create(*, created_by: User, team=None, role: str = "member", email: str = "", days: int = 7,
                  request=None) -> Invite:
    """A single-use sign-up link, valid for `days`. The caller has checked that `created_by` may invite
    (a site admin, or a manager of `team`)."""
    invite = Invite.objects.create(
        created_by=created_by, team=team, role=role, email=email.strip(),
        expires_at=timezone.now() + timedelta(days=days),
    )
    audit_record(
        actor=created_by, action="invite.created", subject=invite.email or f"invite {invite.pk}", request=request,
        detail={"invite": invite.pk, "team": invite.team_id, "role": role, "expires_at": invite.expires_at.isoformat()},
    )
    return invite


def invite_revoke(*, invite: Invite, by: User, request=None) -> None:
    """The link stops working at once. A used invite stays as it was: its account exists."""
    revoked = Invite.objects.filter(pk=invite.pk, used_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    invite.refresh_from_db(fields=["revoked_at"])
    if revoked:
        audit_record(
            actor=by, action="invite.revoked", subject=invite.email or f"invite {invite.pk}", request=request,
            detail={"invite": invite.pk, "team": invite.team_id},
        )


def sign_up_request(*, username: str, email: str, invite: Invite | None, request) -> None:
    """The first step of signing up: one email to `email`, whatever already exists, so that the page after it
    tells a visitor nothing about which usernames or addresses have accounts.

    - A new username and address get a confirmation link; the account is created only when it is opened
      (`sign_up_complete`), so an address is proven before it is attached to an account.
    - An address that already has an account gets a notice naming that account, with links to log in and to
      reset the password: only the address's owner learns that it exists.
    - A username that is taken (for a new address) gets a message asking to sign up with another one: the
      owner of a mailbox can learn that a username exists, as on any site that lets people pick usernames,
      but only by reading their own email.

    Past the email limits (accounts/mail.py) nothing is sent, and the caller answers the same.

    The caller has checked `sign_up_allowed` (the mode is public; refusing by mode reveals nothing)."""
    if not account_mail_allowed(address=email, request=request, purpose="sign-up"):
        return
    existing = User.objects.filter(email__iexact=email).first()
    if existing is not None:
        _mail(email, "sign_up_account_exists", request, {
            "user": existing, "login_url": reverse("login"), "reset_url": reverse("password_reset"),
        })
    elif User.objects.filter(username__iexact=username).exists():
        _mail(email, "sign_up_username_taken", request, {
            "username": username, "sign_up_url": invite.url if invite else reverse("sign_up"),
        })
    else:
        token = signing.dumps(
            {"username": username, "email": email, "invite": invite.token if invite else None}, salt=SIGN_UP_SALT,
        )
        _mail(email, "sign_up_confirm", request, {
            "username": username, "confirm_url": reverse("sign_up_confirm", args=[token]),
            "hours": settings.SIGN_UP_LINK_HOURS,
        })


def _mail(address: str, template: str, request, context: dict) -> None:
    """Send accounts/email/<template>.txt, its first line the subject, off the request path (the three kinds
    of message must not take different times to answer); paths in `*_url` become absolute."""
    context = {
        key: request.build_absolute_uri(value) if key.endswith("_url") else value for key, value in context.items()
    }
    subject, _, body = render_to_string(f"accounts/email/{template}.txt", context).partition("\n")
    mail_send_later(EmailMessage(subject.strip(), body.strip() + "\n", None, [address]))


def sign_up_pending(token: str) -> dict:
    """What a confirmation link carries (username, email, invite token), if it is ours and not too old."""
    try:
        return signing.loads(token, salt=SIGN_UP_SALT, max_age=timedelta(hours=settings.SIGN_UP_LINK_HOURS))
    except signing.SignatureExpired:
        raise SignUpRefused("This link has expired. Sign up again to get a new one.") from None
    except signing.BadSignature:
        raise SignUpRefused("This link is not valid. Check that it was copied whole, or sign up again.") from None


def sign_up_complete(*, pending: dict, password: str, request) -> User:
    """Create the account a confirmation link describes, with the password its owner chose. Everything is
    checked again here: the mode, the invite and the username may have changed since the link was sent.
    The invite is marked used by a conditional update, so two tabs cannot both spend it."""
    invite = None
    if pending["invite"]:
        invite = Invite.objects.select_related("team").filter(token=pending["invite"]).first()
        if invite is None or not invite.is_usable:
            raise SignUpRefused(INVITE_UNUSABLE)
    if not sign_up_allowed(email=pending["email"], invite=invite):
        raise SignUpRefused("Sign-up is closed for this address now. Ask an admin for an invite.")
    taken = Q(username__iexact=pending["username"]) | Q(email__iexact=pending["email"])
    with transaction.atomic():
        if User.objects.filter(taken).exists():
            raise SignUpRefused(LINK_USED)
        try:
            with transaction.atomic():
                user = User.objects.create_user(pending["username"], email=pending["email"], password=password)
        except IntegrityError:
            raise SignUpRefused(LINK_USED) from None
        detail = {"email": user.email}
        if invite is not None:
            spent = Invite.objects.filter(
                pk=invite.pk, used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now(),
            ).update(used_at=timezone.now(), used_by=user)
            if not spent:
                raise SignUpRefused(INVITE_UNUSABLE)
            if invite.team is not None:
                membership_ensure(team=invite.team, user=user, role=invite.role)
            detail |= {"invite": invite.pk, "team": invite.team_id, "role": invite.role}
            audit_record(actor=user, action="invite.used", subject=user.username, detail=detail, request=request)
        audit_record(actor=user, action="account.signed_up", subject=user.username, detail=detail, request=request)
    return user



def password_reset_done(*, user: User, request) -> None:
    """A reset by email has set `user`'s password: the owner of the account's mailbox is back in, so the
    sign-in failures at this account are forgotten, as the lockout page promises."""
    account_failures_forget(user.get_username())
    audit_record(actor=user, action="password_reset.done", subject=user.username, request=request)
