"""Refusals of the API in the Anthropic API's own shape, `{"type": "error", "error": {"type", "message"}}`, with
the status its SDKs map to an exception class (docs/api.md lists them)."""

import json

from django.http import HttpResponse

# The prefix every URL of the API sits under (apikeys/urls.py): config/body_limit.py reads it too.
API_PREFIX = "/api/anthropic/"

# The refusal codes of billing (billing.services.RequestRefused) as the API's status and error type. A spent
# budget is 402 `billing_error`, which the SDK raises as PaymentRequiredError and never retries; a rate limit
# is 429 with `retry-after`, which the SDK honours when it retries.
REFUSAL_STATUSES = {
    "budget_exceeded": (402, "billing_error"),
    "rate_limited": (429, "rate_limit_error"),
}


def error_body(error_type: str, message: str) -> dict:
    return {"type": "error", "error": {"type": error_type, "message": message}}


class ApiError(Exception):
    """A call refused before (or instead of) reaching the model: its status, the API's error type, a message."""

    def __init__(self, status: int, error_type: str, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.error_type, self.message, self.retry_after = status, error_type, message, retry_after

    @classmethod
    def from_refusal(cls, refusal) -> "ApiError":
        status, error_type = REFUSAL_STATUSES.get(refusal.code, (400, "invalid_request_error"))
        return cls(status, error_type, refusal.detail, retry_after=refusal.retry_after)

    def response(self) -> HttpResponse:
        response = error_response(self.status, error_body(self.error_type, self.message))
        if self.retry_after is not None:
            response["retry-after"] = str(self.retry_after)
        return response


def error_response(status: int, body: object) -> HttpResponse:
    return HttpResponse(json.dumps(body), status=status, content_type="application/json")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIX)
