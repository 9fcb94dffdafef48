"""The API (`/api/anthropic/v1/...`: Messages, count_tokens, Models) and the settings page's API keys section.

The API's views authenticate by key alone (`x-api-key` or `Authorization: Bearer`): a session cookie
authorises nothing here, and there is no CSRF check because no cookie is trusted. Each view parses, asks the
services, and answers in the API's shape (apikeys/errors.py).
"""

import json
import logging
import re

import anthropic
import httpx2
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.forms import UserSettingsForm
from apikeys import selectors, services
from apikeys.errors import ApiError, error_body, error_response
from apikeys.forms import ApiKeyForm
from apikeys.relay import UNSENDABLE, Exchange, forwarded_headers, unsendable, upstream_client
from chat.db import db_async
from chat.llm import registry
from chat.llm.tokens import estimate_tokens
from lifecycle import selectors as lifecycle_selectors

log = logging.getLogger(__name__)

# --- the API -------------------------------------------------------------------------------------------


@csrf_exempt
@require_POST
async def messages_create(request):
    try:
        api_key = await _authorised(request)
        raw = request.read()
        body = _json_body(raw)
        model, max_tokens = await _model_checked(body), _max_tokens_checked(body)
        if not isinstance(body.get("messages"), list):
            raise ApiError(400, "invalid_request_error", "messages: Field required")
        if not isinstance(body.get("stream", False), bool):
            raise ApiError(400, "invalid_request_error", "stream: Input should be a valid boolean")
        _unbudgeted_refused(body, request.headers)
        # The body as JSON counts more than the API would: a generous estimate, never past the window.
        input_tokens = min(estimate_tokens(raw.decode(errors="replace")), registry.model_for(model).context_window)
        admitted = await db_async(services.api_call_admit)(
            api_key=api_key, model=model, input_tokens=input_tokens, max_tokens=max_tokens
        )
    except ApiError as refusal:
        return refusal.response()
    exchange = Exchange(admitted, model=model, stream=body.get("stream") is True)
    try:
        response = await exchange.send(body, forwarded_headers(request.headers))
        if exchange.stream:
            return RelayedStream(exchange, response.http_response.headers.get("request-id", ""))
        content = await response.read()
        exchange.read_message(content)
        return _relayed(response, content)
    except ApiError as refusal:  # the SDK could not encode the body: nothing was sent
        return refusal.response()
    except anthropic.APIStatusError as exc:
        exchange.failed(exc)
        return _relayed_error(exc)
    except (anthropic.APIError, httpx2.HTTPError) as exc:
        exchange.failed(exc)
        return ApiError(502, "api_error", exchange.upstream.error).response()
    finally:
        # A stream is done when its relay ends or its response closes (RelayedStream); anything else here.
        if not (exchange.stream and exchange.response is not None):
            exchange.done()


class RelayedStream(StreamingHttpResponse):
    """The upstream's events, relayed; however the response ends (even never iterated), its call settles."""

    def __init__(self, exchange: Exchange, request_id: str):
        super().__init__(exchange.relay(), content_type="text/event-stream")
        self.exchange = exchange
        self["cache-control"] = "no-cache"
        self["x-accel-buffering"] = "no"  # nginx: pass each event on as it comes
        if request_id:
            self["request-id"] = request_id

    def close(self):
        super().close()
        self.exchange.done_threadsafe()


@csrf_exempt
@require_POST
async def count_tokens(request):
    try:
        await _authorised(request)
        body = _json_body(request.read())
        await _model_checked(body)
    except ApiError as refusal:
        return refusal.response()
    known = {name: body.get(name) for name in ("model", "messages")}
    rest = {name: value for name, value in body.items() if name not in known}
    try:
        async with upstream_client().messages.with_streaming_response.count_tokens(
            **known, extra_body=rest, extra_headers=forwarded_headers(request.headers),
        ) as response:
            return _relayed(response, await response.read())
    except UNSENDABLE as exc:
        return unsendable(exc).response()
    except anthropic.APIStatusError as exc:
        return _relayed_error(exc)
    except (anthropic.APIError, httpx2.HTTPError):
        return ApiError(502, "api_error", "The model could not be reached. Try again in a moment.").response()


@require_GET
async def models_list(request):
    """The models this deployment offers, paged as the Models API pages (limit, after_id, before_id)."""
    try:
        await _authorised(request)
        await _offer_refreshed()
        return JsonResponse(_models_page(request.GET))
    except ApiError as refusal:
        return refusal.response()


@require_GET
async def model_detail(request, model_id: str):
    try:
        await _authorised(request)
        await _offer_refreshed()
        spec = next((spec for spec in registry.models_offered() if spec.id == model_id), None)
        if spec is None:
            raise ApiError(404, "not_found_error", f"model: {model_id}")
        return JsonResponse(model_info(spec))
    except ApiError as refusal:
        return refusal.response()


@csrf_exempt
async def not_served(request):
    return ApiError(404, "not_found_error", f"{request.method} {request.path} is not served here.").response()


async def _authorised(request):
    secret = selectors.presented_secret(request.headers)
    if not secret:
        raise ApiError(401, "authentication_error", "x-api-key header is required")
    return await db_async(services.api_key_authorise)(secret=secret)


# A JSON string escape of a UTF-16 surrogate: a lone one parses, but the SDK cannot encode it as UTF-8.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _json_body(raw: bytes) -> dict:
    """The body, read with `request.read()`: `request.body` refuses what passes DATA_UPLOAD_MAX_MEMORY_SIZE,
    while an API call may carry API_MAX_BODY_BYTES (config/body_limit.py has bounded it already). Only JSON
    the SDK can send again is let through: UTF-8, no NaN or Infinity, no lone surrogate, nesting that parses
    with PARSE_HEADROOM frames to spare (should the SDK's encoder still fail: `relay.unsendable`)."""
    try:
        text = raw.decode()
        body = _parsed(text)
        if SURROGATE_ESCAPE.search(text):
            json.dumps(body, ensure_ascii=False).encode()
    except ValueError:  # UnicodeDecodeError and UnicodeEncodeError are ValueErrors
        raise ApiError(400, "invalid_request_error", "The request body is not valid JSON.") from None
    except RecursionError:
        raise ApiError(400, "invalid_request_error", "The request body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request_error", "The request body must be a JSON object.")
    return body


# Python frames the parse leaves to spare: the SDK's encoder and the transport (the offline model parses the
# body again) run further down the stack, and must not meet a nesting that only just parsed here.
PARSE_HEADROOM = 200


def _parsed(text: str, headroom: int = PARSE_HEADROOM):
    """json.loads, `headroom` frames further down the stack, where the recursion limit comes that much sooner."""
    if headroom:
        return _parsed(text, headroom - 1)
    return json.loads(text, parse_constant=_not_json)


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


async def _offer_refreshed() -> None:
    """The Models API's list, and the lifecycle table that leaves retired models out of it, read afresh where
    they are old: the offer is then read in the event loop (chat.llm.registry.models_offered)."""
    await registry.models_refresh()
    await db_async(lifecycle_selectors.lifecycles)()


# What a model id may look like (the lifecycle table's column holds 100 characters).
MODEL_ID = re.compile(r"[\w.:@-]{1,100}", re.ASCII)


async def _model_checked(body: dict) -> str:
    """The body's model, when this deployment offers it; a retired one is refused with its successor."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "invalid_request_error", "model: Field required")
    if not MODEL_ID.fullmatch(model):  # before it is a query's parameter (PostgreSQL refuses a NUL, say)
        raise ApiError(404, "not_found_error", f"model: {model[:100]!r} is not a model id")
    if retired := await db_async(selectors.model_retirement)(model):
        raise ApiError(404, "not_found_error", retired)
    await _offer_refreshed()
    if not registry.model_offered(model):
        raise ApiError(404, "not_found_error", f"model: {model}")
    return model


# What a call may not ask for, because the budgets could not count what it costs: tools billed per use (a
# search, a container's hours), and betas priced beyond the price table (context-1m: dearer tokens past 200k,
# past the window the reservation assumes) or reading what belongs to the deployment's account, shared by every
# user (files-api: any file uploaded with its key).
UNBUDGETED_TOOL_TYPES = ("web_search", "code_execution")
UNBUDGETED_BETAS = ("context-1m", "files-api")


def _unbudgeted_refused(body: dict, headers) -> None:
    for beta in headers.get("anthropic-beta", "").split(","):
        if beta.strip().startswith(UNBUDGETED_BETAS):
            raise ApiError(400, "invalid_request_error", f"anthropic-beta: {beta.strip()} is not offered here.")
    tools = body.get("tools")
    for index, tool in enumerate(tools if isinstance(tools, list) else ()):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind.startswith(UNBUDGETED_TOOL_TYPES):
            raise ApiError(
                400, "invalid_request_error",
                f"tools.{index}: {kind} is billed per use, which this server's budgets cannot count; it is not "
                "offered here.",
            )


def _max_tokens_checked(body: dict) -> int:
    """`max_tokens`, within the model's own output limit (the worst case reserved is priced from it)."""
    max_tokens, model = body.get("max_tokens"), body["model"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(400, "invalid_request_error", "max_tokens: Input should be a positive integer")
    most = registry.model_for(model).max_output
    if max_tokens > most:
        raise ApiError(
            400, "invalid_request_error",
            f"max_tokens: {max_tokens} > {most}, which is the maximum allowed number of output tokens for {model}",
        )
    return max_tokens


def _relayed(response, content: bytes) -> HttpResponse:
    relayed = HttpResponse(content, status=response.status_code, content_type="application/json")
    if request_id := response.http_response.headers.get("request-id"):
        relayed["request-id"] = request_id
    return relayed


# The upstream refusing this server's own key (ANTHROPIC_API_KEY) is no fault of the caller's: relayed as it
# came, a 401 or 403 would tell the caller's SDK that its own key is bad.
SERVERS_OWN_KEY_REFUSED = (401, 403)


def _relayed_error(exc: anthropic.APIStatusError) -> HttpResponse:
    """The upstream's refusal with its status, in the API's shape (it is one already when it is the API's)."""
    if exc.status_code in SERVERS_OWN_KEY_REFUSED:
        log.error("the model refused this server's own API key: %s %s", exc.status_code, exc.message)
        return ApiError(502, "api_error", "The model refused this server's own credentials: tell an admin.").response()
    body = exc.body if isinstance(exc.body, dict) and exc.body.get("type") == "error" else error_body(
        "api_error", exc.message
    )
    relayed = error_response(exc.status_code, body)
    for name in ("retry-after", "request-id"):
        if value := exc.response.headers.get(name):
            relayed[name] = value
    return relayed


MAX_MODELS_PAGE = 1000


def _models_page(params) -> dict:
    try:
        limit = int(params.get("limit", 20))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_MODELS_PAGE:
        raise ApiError(400, "invalid_request_error", f"limit: Input should be between 1 and {MAX_MODELS_PAGE}")
    offered = list(registry.models_offered())
    ids = [spec.id for spec in offered]
    for name in ("after_id", "before_id"):
        if params.get(name) is not None and params[name] not in ids:
            raise ApiError(400, "invalid_request_error", f"{name}: unknown model {params[name]!r}")
    if "before_id" in params:
        before = offered[: ids.index(params["before_id"])]
        page, has_more = before[-limit:], len(before) > limit
    else:
        after = offered[ids.index(params["after_id"]) + 1 :] if "after_id" in params else offered
        page, has_more = after[:limit], len(after) > limit
    return {
        "data": [model_info(spec) for spec in page],
        "has_more": has_more,
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
    }


def model_info(spec) -> dict:
    """A ModelSpec in the Models API's shape."""
    return {
        "type": "model",
        "id": spec.id,
        "display_name": spec.display_name,
        "created_at": spec.created_at,
        "max_input_tokens": spec.context_window,
        "max_tokens": spec.max_output,
    }


# --- the settings page's section ------------------------------------------------------------------------


def api_keys_context(user, *, key_form: ApiKeyForm | None = None, secret: str = "") -> dict:
    """What the settings page's API keys section shows: the user's keys, the form for a new one, the secret of
    the key just made (this once), and why the API is closed to them, if it is."""
    return {
        "api_keys": selectors.keys_for_user(user),
        "api_key_form": key_form or ApiKeyForm(),
        "api_key_secret": secret,
        "api_refusal": selectors.api_access_refusal(user),
    }


# Keys a user may hold unrevoked at once: making them costs a row each, and nobody needs more.
MAX_OPEN_KEYS = 50


@login_required
@require_POST
def api_key_create(request):
    """Makes the key and shows its secret on the page this once: it is in this response only, never stored."""
    form = ApiKeyForm(request.POST)
    secret, status = "", 400
    refusal = selectors.api_access_refusal(request.user)
    if not refusal and selectors.open_keys_count(request.user) >= MAX_OPEN_KEYS:
        refusal = f"You have {MAX_OPEN_KEYS} keys that are not revoked: revoke one before you make another."
    if refusal:
        form.add_error(None, refusal)
    elif form.is_valid():
        _, secret = services.api_key_create(
            user=request.user, name=form.cleaned_data["name"], expires_at=form.expires_at(),
            monthly_cap=form.cleaned_data["monthly_cap"],
        )
        form, status = None, 201
    response = render(request, "accounts/settings.html", {
        "form": UserSettingsForm(instance=request.user),
        **api_keys_context(request.user, key_form=form, secret=secret),
    }, status=status)
    response["cache-control"] = "no-store"
    return response


@login_required
@require_POST
def api_key_revoke(request, key_id: int):
    api_key = selectors.api_key_for_user(request.user, key_id)
    services.api_key_revoke(api_key=api_key)
    messages.success(request, f"The key {api_key.name} is revoked: calls made with it are refused.")
    return redirect("user_settings")
