"""Frames from the client: how many a socket may send, and the one schema they are parsed by.

docs/protocol.md ("Client to server") describes the same frames; a field added here belongs there too.
"""

import json
import time
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, Strict, TypeAdapter, ValidationError

from chat.refusals import Refusal

# The largest id a bigint primary key holds: a bigger number cannot name a row, and on PostgreSQL it would
# fail the query instead of finding nothing.
MAX_ROW_ID = 2**63 - 1
# How often a socket that sends too fast is told so; the frames themselves are dropped without a word.
SLOW_DOWN_NOTICE_SECONDS = 1.0
# The clock of the frame buckets, a name of its own so a test can hold time still.
clock = time.monotonic


class BadFrame(Refusal):
    """A frame refused with an `error` frame of this `code`; the socket stays open."""


class FrameBucket:
    """A token bucket for one socket's frames: `burst` at once, then `rate` a second. It runs before a frame
    is parsed, so a flood costs this arithmetic and nothing else (no JSON, no database)."""

    def __init__(self, *, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.filled_at = clock()
        self.noticed_at = float("-inf")

    def take(self) -> bool:
        now = clock()
        self.tokens = min(self.burst, self.tokens + (now - self.filled_at) * self.rate)
        self.filled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def notice_due(self) -> bool:
        """Whether to tell the client it is dropping frames: at most once per SLOW_DOWN_NOTICE_SECONDS."""
        now = clock()
        if now - self.noticed_at < SLOW_DOWN_NOTICE_SECONDS:
            return False
        self.noticed_at = now
        return True


def _storable(text: str) -> str:
    """JSON can carry what no database column takes: a lone surrogate ("\\ud800") is not UTF-8, and
    PostgreSQL refuses NUL in text and jsonb. Refused here, such text never reaches a query or a row."""
    if "\x00" in text:
        raise ValueError("NUL")
    text.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate
    return text


Text = Annotated[str, Strict(), AfterValidator(_storable)]
RowId = Annotated[int, Strict(), Field(ge=1, le=MAX_ROW_ID)]


class Send(BaseModel):
    type: Literal["send"]
    text: Text = Field(description="a string of valid Unicode text (no NUL, no lone surrogate)")
    attachments: list[RowId] = Field(default_factory=list, description="a list of attachment ids")
    model: Text | None = Field(default=None, description='a model id or "auto"')
    batch: Annotated[bool, Strict()] = Field(
        default=False, description='true or false ("not urgent: half price": the reply is queued in a batch)'
    )


class Stop(BaseModel):
    type: Literal["stop"]
    message: RowId | None = Field(default=None, description="the id of the reply to stop")


class Cancel(BaseModel):
    type: Literal["cancel"]
    message: RowId = Field(description="the id of the queued reply to cancel")


class Resume(BaseModel):
    type: Literal["resume"]
    message: RowId = Field(description="a message id")


class Regenerate(BaseModel):
    type: Literal["regenerate"]
    message: RowId | None = Field(default=None, description="the id of the reply to write again")
    model: Text | None = Field(default=None, description='a model id or "auto"')


class Edit(BaseModel):
    type: Literal["edit"]
    message: RowId = Field(description="a message id")
    text: Text = Field(description="a string of valid Unicode text (no NUL, no lone surrogate)")
    model: Text | None = Field(default=None, description='a model id or "auto"')


class Continue(BaseModel):
    type: Literal["continue"]
    message: RowId = Field(description="a message id")


class Switch(BaseModel):
    type: Literal["switch"]
    message: RowId = Field(description="a message id")


class Delete(BaseModel):
    type: Literal["delete"]
    message: RowId = Field(description="a message id")


class TreeRequest(BaseModel):
    type: Literal["tree"]


FRAME_TYPES = {
    "send": Send,
    "stop": Stop,
    "cancel": Cancel,
    "resume": Resume,
    "regenerate": Regenerate,
    "edit": Edit,
    "continue": Continue,
    "switch": Switch,
    "delete": Delete,
    "tree": TreeRequest,
}
FRAME = TypeAdapter(Annotated[
    Send | Stop | Cancel | Resume | Regenerate | Edit | Continue | Switch | Delete | TreeRequest,
    Field(discriminator="type"),
])


def frame_parse(raw: str | None) -> dict:
    """The client's frame as a dict of validated fields, every optional one present (None or empty when the
    client left it out); unknown fields are ignored. Anything else raises BadFrame `bad_frame`.

    json.loads alone is not enough for untrusted text: it raises RecursionError on deep nesting and ValueError
    on an integer of thousands of digits, and returns lone surrogates and NUL that the database would refuse."""
    if raw is None:
        raise BadFrame("bad_frame", "Frames must be text, not binary.")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadFrame("bad_frame", "Frames must be valid JSON.") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise BadFrame("bad_frame", "Frames must be JSON objects with a string `type`.")
    if data["type"] not in FRAME_TYPES:
        raise BadFrame("bad_frame", f"Unknown frame type {data['type'][:40]!r}.")
    try:
        return FRAME.validate_python(data).model_dump()
    except ValidationError as error:
        field = error.errors()[0]["loc"][1]
        description = FRAME_TYPES[data["type"]].model_fields[field].description
        raise BadFrame("bad_frame", f"`{field}` must be {description}.") from None
