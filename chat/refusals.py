"""The one refusal type: something a user asked for that is not done, with a code and a sentence for them.

Every refusal (a bad frame, a turn that does not apply, a budget or rate limit, an attachment) becomes the same
`error` frame or JSON error (docs/protocol.md), so callers catch this one type.
"""


class Refusal(Exception):
    def __init__(self, code: str, detail: str, *, retry_after: int | None = None):
        super().__init__(detail)
        self.code, self.detail, self.retry_after = code, detail, retry_after

    def as_frame(self) -> dict:
        frame = {"type": "error", "code": self.code, "detail": self.detail}
        if self.retry_after is not None:
            frame["retry_after"] = self.retry_after
        return frame
