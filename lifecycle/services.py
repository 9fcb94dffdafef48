"""Writes of the lifecycle table and what follows from it: the Models API's dates, moving conversations and
defaults to a successor, a user's own switch, and the admins' emails before a retirement."""

import logging
import smtplib
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from audit.services import audit_record
from chat.models import Conversation
from chat.refusals import Refusal
from lifecycle.models import ModelLifecycle, RetirementNotice
from lifecycle.selectors import day_shown, lifecycles_forget, model_name, model_usage

log = logging.getLogger(__name__)

# Besides LIFECYCLE_NOTICE_DAYS: the admins hear again a week and a day before.
LATER_NOTICE_DAYS = (7, 1)


def lifecycles_from_api(*, infos) -> int:
    """Bring the table in line with the Models API's list (`ModelInfo`s: `lifecycle`, `deprecated_at`,
    `retires_at`, `line`); returns how many rows changed. A row an admin edited (source `admin`) is never
    touched: the update is conditional on the source in the database, so an edit saved meanwhile still wins. A
    model the API calls active loses the dates a built-in row gave it; a deprecated or retired one gets the
    API's dates, and as successor the row's own, else the API's newest active model of the same line."""
    newest_of_line = {}
    for info in infos:
        if info.lifecycle == "active" and info.line:
            newest_of_line.setdefault(info.line, info.id)
    known = {row.model: row for row in ModelLifecycle.objects.filter(model__in=[info.id for info in infos])}
    changed = 0
    for info in infos:
        row = known.get(info.id)
        if row is not None and row.source == ModelLifecycle.Source.ADMIN:
            continue
        if info.lifecycle == "active":
            if row is None or (row.deprecated_on is None and row.retires_on is None):
                continue
            fields = {"deprecated_on": None, "retires_on": None}
        else:
            retires_on = info.retires_at.date() if info.retires_at else None
            if info.lifecycle == "retired" and retires_on is None:
                retires_on = (row and row.retires_on) or ModelLifecycle.today()
            fields = {
                "deprecated_on": info.deprecated_at.date() if info.deprecated_at else None,
                "retires_on": retires_on,
                "successor": (row and row.successor) or newest_of_line.get(info.line, ""),
            }
        if row is not None and row.source == ModelLifecycle.Source.MODELS_API and all(
            getattr(row, name) == value for name, value in fields.items()
        ):
            continue  # as the last refresh left it: no write every hour
        changed += _api_row_write(info.id, row, fields)
    lifecycles_forget()
    return changed


def _api_row_write(model_id: str, row: ModelLifecycle | None, fields: dict) -> int:
    source = ModelLifecycle.Source.MODELS_API
    if row is not None:
        return ModelLifecycle.objects.filter(pk=row.pk).exclude(source=ModelLifecycle.Source.ADMIN).update(
            **fields, source=source, updated_at=timezone.now(),
        )
    try:
        with transaction.atomic():
            ModelLifecycle.objects.create(model=model_id, source=source, **fields)
    except IntegrityError:  # an admin (or another process) added it meanwhile: theirs stands
        return 0
    return 1


@dataclass(frozen=True)
class Moved:
    conversations: int
    defaults: int


def models_move(*, lifecycle: ModelLifecycle, actor=None, request=None) -> Moved:
    """Move every conversation on the model, and every user's default model, to its successor: one
    transaction, audited. A reply already streaming finishes on the model it started with (the reply's own
    `model`); the conversation's next turn goes to the successor. The sidebar order stays (no `updated_at`)."""
    if not lifecycle.successor:
        raise ValueError(f"{lifecycle.model} has no successor to move to")
    with transaction.atomic():
        conversations = Conversation.objects.filter(model=lifecycle.model).update(model=lifecycle.successor)
        defaults = get_user_model().objects.filter(default_model=lifecycle.model).update(
            default_model=lifecycle.successor
        )
        moved = Moved(conversations, defaults)
        audit_record(
            actor=actor, action="lifecycle.models_moved", subject=f"{lifecycle.model} → {lifecycle.successor}",
            detail={"conversations": conversations, "defaults": defaults}, request=request,
        )
    return moved


def conversation_model_switch(*, conversation: Conversation) -> str:
    """Switch one conversation from its deprecated or retired model to the successor (the page's one click
    after a `model_retired` refusal); returns the successor's id. Refused when the model has none."""
    row = ModelLifecycle.objects.filter(model=conversation.model).exclude(successor="").first()
    if row is None:
        raise Refusal("no_successor", "This conversation's model has no successor to switch to.")
    conversation.model = row.successor
    conversation.save(update_fields=["model"])
    return row.successor


def notice_days() -> tuple[int, ...]:
    """The thresholds, widest first: (30, 7, 1) by default."""
    return tuple(sorted({settings.LIFECYCLE_NOTICE_DAYS, *LATER_NOTICE_DAYS}, reverse=True))


def retirements_notify(*, today: date | None = None) -> list[RetirementNotice]:
    """Email the admins about each model whose retirement is within a threshold (notice_days) and that has not
    had that threshold's email: the tightest threshold due, so a run missed for a week sends one email, not
    three. Safe to run as often as anyone likes, from cron (`manage.py lifecycle_notify`) or a worker loop, in
    several processes at once: each email's RetirementNotice row is written first, and its unique constraint
    lets only one run send it. Returns the notices sent."""
    today = today or ModelLifecycle.today()
    recipients = list(
        get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
        .values_list("email", flat=True)
    )
    sent = []
    for row in ModelLifecycle.objects.filter(retires_on__gte=today):
        days_left = (row.retires_on - today).days
        due = [days for days in notice_days() if days_left <= days]
        if not due:
            continue
        if not recipients:
            log.warning("%s retires on %s, but no active staff user has an email address", row.model, row.retires_on)
            break
        notice = _notice_send(row, min(due), days_left, recipients)
        if notice is not None:
            sent.append(notice)
    return sent


def _notice_send(row: ModelLifecycle, days_before: int, days_left: int, recipients: list[str]):
    conversations, defaults = model_usage(row.model)
    try:
        with transaction.atomic():
            notice = RetirementNotice.objects.create(
                model=row.model, retires_on=row.retires_on, days_before=days_before,
                conversations=conversations, defaults=defaults, recipients=len(recipients),
            )
            _notice_email(row, days_left, conversations, defaults, recipients).send()
    except IntegrityError:
        return None  # already sent, by this run's predecessor or by a concurrent one
    except (smtplib.SMTPException, OSError):
        log.exception("the retirement notice for %s could not be sent; the next run tries again", row.model)
        return None
    return notice


def _notice_email(row, days_left, conversations, defaults, recipients) -> EmailMessage:
    name = model_name(row.model)
    when = "today" if days_left == 0 else "tomorrow" if days_left == 1 else f"in {days_left} days"
    successor = model_name(row.successor) if row.successor else "no successor set"
    body = "\n".join((
        (f"{name} ({row.model}) retires {when}, on {day_shown(row.retires_on)}. From that day this deployment "
         "sends it no request: turns on it are refused and the user is offered the successor."),
        "",
        f"Conversations on it: {conversations}",
        f"Users with it as their default model: {defaults}",
        f"Successor: {successor}",
        "",
        ("Move them all to the successor in one action: the admin's Model lifecycle page, "
         f"{reverse('admin:lifecycle_modellifecycle_changelist')}, action \"Move conversations and defaults to "
         "the successor\"."),
    ))
    return EmailMessage(
        subject=f"{name} retires {when} ({day_shown(row.retires_on)})", body=body, to=recipients,
    )
