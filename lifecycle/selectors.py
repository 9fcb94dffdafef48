"""Reads of the lifecycle table: the retired models (what the registry leaves out of the offer), one model's row,
and the words the picker and refusals use."""

import asyncio
import time
from dataclasses import dataclass, field
from datetime import date

from django.contrib.auth import get_user_model

from chat.models import Conversation
from lifecycle.models import ModelLifecycle

# Each process keeps the table this long: the registry reads it for every list of models, also in the event
# loop, where no query may run. Saving or deleting a row in this process forgets it at once (receivers.py);
# other processes follow within this time, and admission asks the database itself (`model_retired`).
PROCESS_SECONDS = 60


@dataclass
class _ProcessCopy:
    rows: dict[str, ModelLifecycle] = field(default_factory=dict)
    until: float = 0.0

    def fresh(self) -> bool:
        return time.monotonic() < self.until

    def keep(self, rows: dict[str, ModelLifecycle]) -> dict[str, ModelLifecycle]:
        self.rows, self.until = rows, time.monotonic() + PROCESS_SECONDS
        return rows


_process_copy = _ProcessCopy()


def lifecycles() -> dict[str, ModelLifecycle]:
    """Every row by model id, from this process's copy; read again when it is older than PROCESS_SECONDS. In
    the event loop (a socket checking a frame's model, a reply choosing its fallback) the copy is used as it
    is: admission, on a database thread, read it moments before."""
    if _process_copy.fresh() or _in_event_loop():
        return _process_copy.rows
    return _process_copy.keep({row.model: row for row in ModelLifecycle.objects.all()})


def lifecycles_forget() -> None:
    _process_copy.until = 0.0


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def retired_model_ids(today: date | None = None) -> frozenset[str]:
    """The models past their retirement date: never offered, never routed to."""
    today = today or ModelLifecycle.today()
    return frozenset(model for model, row in lifecycles().items() if row.retired(today))


def model_retired(model_id: str) -> ModelLifecycle | None:
    """The row of `model_id` if it is retired, asked of the database (not the process copy): the check that no
    request goes to a retired model, for admission and the API proxy alike."""
    row = ModelLifecycle.objects.filter(model=model_id).first()
    return row if row is not None and row.retired() else None


def model_usage(model_id: str) -> tuple[int, int]:
    """How many conversations are on `model_id`, and how many users have it as their default."""
    conversations = Conversation.objects.filter(model=model_id).count()
    defaults = get_user_model().objects.filter(default_model=model_id).count()
    return conversations, defaults


def day_shown(day: date) -> str:
    """"5 Mar 2027"."""
    return f"{day.day} {day:%b %Y}"


def model_name(model_id: str) -> str:
    # Imported here: the registry reads this module to leave retired models out of the offer.
    from chat.llm.registry import model_for

    return model_for(model_id).display_name


def deprecation_label(row: ModelLifecycle) -> str:
    """The picker's line for a deprecated model: "Deprecated: retires 5 Mar 2027, use Claude Sonnet 5.5"."""
    when = f"retires {day_shown(row.retires_on)}" if row.retires_on else "to be retired"
    use = f", use {model_name(row.successor)}" if row.successor else ""
    return f"Deprecated: {when}{use}"


def retirement_sentence(row: ModelLifecycle) -> str:
    """"Claude Sonnet 4.6 was retired on 5 Mar 2027; switch this conversation to Claude Sonnet 5.5." """
    retired = f"{model_name(row.model)} was retired on {day_shown(row.retires_on)}"
    if row.successor:
        return f"{retired}; switch this conversation to {model_name(row.successor)}."
    return f"{retired}; pick another model for this conversation."
