"""The ledger's writes: one ApiCall row per HTTP attempt of every request made to the model, and its log line.

The reads (sums, summaries, budgets) are in billing/selectors.py. A reply describes what it asked for as
`UpstreamRequest`s, each with the `UpstreamAttempt`s the SDK made (its retries included); settling a reply
(chat/services.py `message_finish`) turns them into rows here, in the transaction that saves the reply.
"""

import json
import logging
from dataclasses import asdict, dataclass, field, fields

from billing import selectors
from chat.llm.pricing import TokenUsage, usage_cost
from chat.llm.server_tools import server_tool_cost
from chat.models import ApiCall, Conversation, Message

# One line per upstream call, for operators who follow spend in their logs (see `ledger_log`).
ledger_logger = logging.getLogger("chat.ledger")


@dataclass
class UpstreamAttempt:
    """One HTTP request to the model, as the ledger records it. `http_status` is None when no response came
    (connection refused, DNS, TLS): the attempt still gets its row, with the error."""

    http_status: int | None
    request_id: str = ""
    error: str = ""
    latency_ms: int | None = None


@dataclass
class UpstreamRequest:
    """One request to the model and its HTTP attempts (the SDK's retries). A reply that uses tools makes
    several requests, and a fallback to another model one more."""

    model: str
    attempts: list[UpstreamAttempt] = field(default_factory=list)
    usage: TokenUsage = TokenUsage()
    status: str = ApiCall.Status.OK
    stop_reason: str = ""
    error: str = ""
    first_token_ms: int | None = None
    latency_ms: int | None = None
    is_fallback: bool = False
    purpose: str = ApiCall.Purpose.REPLY  # a reply's request, a conversation's title, a batch's (batch rate)
    api_key_id: int | None = None  # the personal key of a call of the API (apikeys/)
    server_tool_use: dict = field(default_factory=dict)  # the usage's server tool counts ({"web_search_requests": 2})


def ledger_record(
    requests: list[UpstreamRequest], *, user_id: int, conversation_id: int | None, message, settle_key: str
) -> list[ApiCall]:
    """Write the rows of `requests`; the caller holds the transaction and logs the rows once it commits.

    Each row gets a unique `settle_key` made of the reply's `settle_key`, the request's and the attempt's
    number: a settle retried after a commit whose acknowledgement was lost, or a log line replayed twice,
    writes nothing twice. The rows returned are the ones this call wrote.
    """
    rows = [
        row for number, request in enumerate(requests, start=1)
        for row in _request_rows(request, user_id, conversation_id, message, f"{settle_key}:{number}")
    ]
    existing = set(ApiCall.objects.filter(settle_key__in=[row.settle_key for row in rows])
                   .values_list("settle_key", flat=True))
    return ApiCall.objects.bulk_create([row for row in rows if row.settle_key not in existing])


def _request_rows(
    request: UpstreamRequest, user_id: int, conversation_id: int | None, message, settle_key: str
) -> list[ApiCall]:
    """A request's rows: the failed attempts the SDK retried, then the last one, which carries the usage."""
    prices = selectors.price_for_model(request.model)
    if request.purpose == ApiCall.Purpose.BATCH:
        prices = selectors.batch_prices(prices)  # the snapshot is the batch rate, so cost = usage x snapshot
    tool_cost = server_tool_cost(request.server_tool_use)
    cost = usage_cost(request.usage, prices) + tool_cost
    attempts = request.attempts or [UpstreamAttempt(http_status=None, error=request.error)]
    rows = []
    for number, attempt in enumerate(attempts, start=1):
        is_last = number == len(attempts)
        rows.append(ApiCall(
            user_id=user_id,
            conversation_id=conversation_id,
            message=message,
            api_key_id=request.api_key_id,
            model=request.model,
            purpose=request.purpose,
            status=request.status if is_last else ApiCall.Status.ERROR,
            **asdict(request.usage if is_last else TokenUsage()),  # the token kinds are ApiCall's column names
            price_snapshot=prices.as_dict(),
            cost=cost if is_last else 0,
            server_tool_use=request.server_tool_use if is_last else {},
            server_tool_cost=tool_cost if is_last else 0,
            latency_ms=request.latency_ms if is_last else attempt.latency_ms,
            first_token_ms=request.first_token_ms if is_last else None,
            stop_reason=request.stop_reason if is_last else "",
            request_id=attempt.request_id,
            http_status=attempt.http_status,
            error=attempt.error or (request.error if is_last else ""),
            attempt=number,
            is_retry=number > 1,
            is_fallback=request.is_fallback,
            settle_key=f"{settle_key}:{number}",
        ))
    return rows


def ledger_log(call: ApiCall) -> None:
    """`api_call {json}`: who, which model, tokens of each kind, cost, timings and the upstream's request id."""
    ledger_logger.info("api_call %s", json.dumps(_log_fields(call)))


def ledger_log_unsaved(requests: list[UpstreamRequest], *, user_id: int, conversation_id: int | None,
                       message_id: int, settle_key: str) -> None:
    """`api_call_unsaved {json}`: the rows a reply could not write because the database stayed unreachable.

    One line per reply with everything `manage.py ledger_replay` needs to write them later, so money spent is
    never lost from the ledger even when settling gives up.
    """
    payload = {
        "user": user_id,
        "conversation": conversation_id,
        "message": message_id,
        "settle_key": settle_key,
        "requests": [
            {**asdict(request), "usage": asdict(request.usage)} for request in requests
        ],
    }
    ledger_logger.error("api_call_unsaved %s", json.dumps(payload))


def ledger_replay(line: str) -> list[ApiCall]:
    """Write the rows of one `api_call_unsaved` log line (the part from `{` on)."""
    payload = json.loads(line[line.index("{"):])
    requests = [
        UpstreamRequest(**{
            **request,
            "usage": TokenUsage(**request["usage"]),
            "attempts": [UpstreamAttempt(**attempt) for attempt in request["attempts"]],
        })
        for request in payload["requests"]
    ]
    message = Message.objects.filter(pk=payload["message"]).first()
    conversation_id = payload["conversation"]
    if not Conversation.objects.filter(pk=conversation_id).exists():
        conversation_id = None
    return ledger_record(
        requests, user_id=payload["user"], conversation_id=conversation_id, message=message,
        settle_key=payload["settle_key"],
    )


def _log_fields(call: ApiCall) -> dict:
    return {
        "user": call.user_id,
        "conversation": call.conversation_id,
        "message": call.message_id,
        "model": call.model,
        "purpose": call.purpose,
        "api_key": call.api_key_id,
        "status": call.status,
        **{kind.name: getattr(call, kind.name) for kind in fields(TokenUsage)},
        "cost": str(call.cost),
        "server_tool_use": call.server_tool_use,
        "latency_ms": call.latency_ms,
        "first_token_ms": call.first_token_ms,
        "stop_reason": call.stop_reason,
        "request_id": call.request_id,
        "http_status": call.http_status,
        "attempt": call.attempt,
        "is_retry": call.is_retry,
        "is_fallback": call.is_fallback,
    }
