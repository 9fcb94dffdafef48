"""The refusal of a turn on a retired model: its `error` frame names the successor, so the page can offer
to switch the conversation to it in one click."""

from chat.refusals import Refusal
from lifecycle.models import ModelLifecycle
from lifecycle.selectors import model_name, model_retired, retirement_sentence


class ModelRetired(Refusal):
    def __init__(self, row: ModelLifecycle):
        super().__init__("model_retired", retirement_sentence(row))
        self.model, self.successor = row.model, row.successor

    def as_frame(self) -> dict:
        frame = super().as_frame()
        if self.successor:
            frame["successor"] = {"id": self.successor, "display_name": model_name(self.successor)}
        return frame


def retired_model_refuse(model_id: str) -> None:
    """Raise ModelRetired when `model_id` is retired (asked of the database); else nothing."""
    if (row := model_retired(model_id)) is not None:
        raise ModelRetired(row)
