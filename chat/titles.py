"""Titles the model writes: a short summary of a conversation, asked for once, after its first complete reply.

A conversation is titled by its first message (`TitleSource.FIRST_MESSAGE`) when it starts. Once a reply of it
settles complete, the process that ran the reply asks the cheapest model on offer for a title of 3-6 words,
from the first user message and that reply (each cut to TITLE_EXCERPT_CHARS): one small request, no tools, no
thinking, TITLE_MAX_TOKENS of output. The title replaces the first message's only while that is still the
title (a conditional UPDATE: a rename in the meantime wins), and a `conversation` frame tells the
conversation's sockets.

When: after the first reply of the conversation that completes, whichever turn it is (a first reply that
failed or was stopped leaves the next complete one to ask), and never again once a title request was made
for the conversation (its ledger row says so, whatever came of it; until the row is written, a claim in the
cache keeps a reply completing in another process from asking too). A request refused for its budget or the
rate limits is not made; the next complete reply asks again, while the first message's title stays.

Money: the request is admitted like any other (every budget above the user, the rate limits: billing's
`request_admit_whole`), its worst case reserved before it is sent, and it is recorded as an `ApiCall` row with
`purpose` title, the conversation and no message, in the transaction that releases the reservation.

It runs as a task of its own after the reply's final frame, outside any transaction of the reply. Shutdown
(`titles_stop`, from `generations_drain`) stops the request in flight, and the row of a request that was made
is still written (a stopped one is billed its estimated input and a full TITLE_MAX_TOKENS); a title lost is
harmless, money spent is not. The request is bounded in all by TITLE_TIMEOUT (stopped, and its row written,
past it); a task cancelled any other way stops its request too, and its row goes to the log for
`manage.py ledger_replay`, as when settling gives up.
"""

import asyncio
import dataclasses
import logging
import re
import time

import anthropic
import httpx2
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction

from billing import ledger
from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.ledger import UpstreamRequest
from billing.models import Reservation
from chat import frames, selectors, services
from chat.db import db_async
from chat.llm import registry
from chat.llm.client import anthropic_client, attempt_recorder
from chat.llm.pricing import TokenUsage, usage_cost
from chat.llm.tokens import estimate_tokens
from chat.models import ApiCall, Conversation, Message, TitleSource
from chat.replies import generation
from chat.replies.fanout import fanout

log = logging.getLogger(__name__)

TITLE_MAX_TOKENS = 24
# What the request carries of the first user message and of the reply, each.
TITLE_EXCERPT_CHARS = 2_000
# The request is abandoned after this many seconds in all (asyncio.timeout around it: httpx's own timeout is
# per read, which a slow trickle of bytes never reaches), and never retried: a title is not worth the wait.
# Below CHAT_STREAM_STALE_AFTER, after which the stale sweep would release a reservation that has no message.
TITLE_TIMEOUT = 20.0
# How long a conversation's title request is claimed (title_admit): past any request and its settling.
TITLE_CLAIM_SECONDS = 300
# How long shutdown waits for titles to settle once their requests are stopped.
TITLE_STOP_TIMEOUT = 5.0
# The offline model recognises a title request by this opening (chat/llm/offline/reply.py).
TITLE_SYSTEM_PROMPT = (
    "Write a title of 3 to 6 words for the conversation below, in the language the user writes in. "
    "Answer with the title alone: no quotes, no full stop at the end, no explanation."
)
# Quotes and marks a model may wrap a title in; none is part of the title.
WRAPPING = "\"'`*#“”‘’«»„‚「」"

# Titles being written in this process, by conversation id: at most one each, and what shutdown stops.
running: dict[int, "TitleWriter"] = {}


@dataclasses.dataclass(frozen=True)
class TitleAsked:
    """An admitted title request: what to send, and what settling it needs."""

    conversation_id: int
    user_id: int
    reservation_id: int
    model: str
    request: dict  # keyword arguments of `messages.create`
    input_tokens: int  # the estimate: billed, with a full TITLE_MAX_TOKENS, when the request is cut off


def title_start(*, conversation_id: int, reply_id: int) -> None:
    """After `reply_id` settled complete (chat/replies/generation.py): ask for its conversation's title in a
    task of its own, unless titles are off, the process is shutting down, or one is being written already.
    Whether a title is due is decided in that task, where the database is (`title_admit`)."""
    if not settings.CHAT_MODEL_TITLES or generation.draining or conversation_id in running:
        return
    writer = TitleWriter(conversation_id, reply_id)
    running[conversation_id] = writer
    writer.task = asyncio.create_task(writer.run(), name=f"title-{conversation_id}")
    writer.task.add_done_callback(lambda task: _finished(writer, task))


def _finished(writer: "TitleWriter", task: asyncio.Task) -> None:
    if running.get(writer.conversation_id) is writer:
        del running[writer.conversation_id]
    if not task.cancelled() and task.exception() is not None:
        log.error("title of conversation %s failed", writer.conversation_id, exc_info=task.exception())


async def titles_stop(timeout: float = TITLE_STOP_TIMEOUT) -> None:
    """Shutdown: stop every title request in flight, and wait a moment for their rows to be written."""
    writers = list(running.values())
    for writer in writers:
        writer.stop_requested.set()
    tasks = [writer.task for writer in writers if writer.task]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


def title_clean(text: str) -> str:
    """The model's answer as a title: on one line, without wrapping quotes, a "Title:" label or a final full
    stop; empty when it is blank or longer than a title may be (services.TITLE_LENGTH), which keeps the first
    message's title."""
    title = " ".join(text.split()).strip(WRAPPING + " ")
    title = re.sub(r"^title\s*:\s*", "", title, flags=re.IGNORECASE).strip(WRAPPING + " ")
    title = title.removesuffix(".").strip()
    if not title or len(title) > services.TITLE_LENGTH:
        return ""
    return services.title_from(title)


# --- in the database: admission and settling ------------------------------------------------------------


def title_admit(*, conversation_id: int, reply_id: int) -> TitleAsked | None:
    """Admit the title request of the conversation that `reply_id` (a reply just settled complete) belongs to,
    with its reservation; None when no title is due (asked for already, renamed, the owner inactive) or the
    request is refused (budget, rate limits: the first message's title stays, and nobody is told)."""
    conversation = Conversation.objects.filter(
        pk=conversation_id, title_source=TitleSource.FIRST_MESSAGE
    ).first()
    if conversation is None:
        return None
    if ApiCall.objects.filter(conversation_id=conversation_id, purpose=ApiCall.Purpose.TITLE).exists():
        return None
    # Claimed in the cache (Redis with REDIS_URL, so across processes) until the request's row is written: of
    # two replies of the conversation completing while its title is asked for, only one asks.
    claim = f"chat:title-asked:{conversation_id}"
    if not cache.add(claim, True, timeout=TITLE_CLAIM_SECONDS):
        return None
    try:
        asked = _admitted(conversation, reply_id)
    except BaseException:
        cache.delete(claim)
        raise
    if asked is None:
        cache.delete(claim)
    return asked


def _admitted(conversation: Conversation, reply_id: int) -> TitleAsked | None:
    reply = Message.objects.filter(
        pk=reply_id,
        conversation_id=conversation.pk,
        role=Message.Role.ASSISTANT,
        status=Message.Status.COMPLETE,
    ).first()
    if reply is None:
        return None
    path = selectors.Tree.of(conversation.pk).path_to(reply.pk)
    question = Message.objects.filter(pk=path[0]).first() if path else None
    asked = _excerpt(question.text if question else "") or conversation.title
    answered = _excerpt(reply.text)
    content = f"<user>\n{asked}\n</user>\n\n<assistant>\n{answered or '(no text)'}\n</assistant>"
    input_tokens = estimate_tokens(TITLE_SYSTEM_PROMPT + content)
    with transaction.atomic():
        # Locked like a reply's admission: one user's admissions are one after another (billing/services.py).
        user = (
            get_user_model()
            .objects.select_for_update(no_key=True)
            .filter(pk=conversation.owner_id, is_active=True)
            .first()
        )
        if user is None:
            return None
        model = title_model(input_tokens)
        try:
            hold = billing_services.request_admit_whole(
                user=user, model=model, input_tokens=input_tokens, max_tokens=TITLE_MAX_TOKENS
            )
        except billing_services.RequestRefused as refusal:
            log.info("no title for conversation %s: %s", conversation.pk, refusal.code)
            return None
        reservation = billing_services.reservation_create(user=user, message=None, hold=hold)
    request = {
        "model": model,
        "max_tokens": TITLE_MAX_TOKENS,
        "system": TITLE_SYSTEM_PROMPT,
        "messages": [{"role": "user", "content": content}],
    }
    return TitleAsked(conversation.pk, user.pk, reservation.pk, model, request, input_tokens)


def _excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= TITLE_EXCERPT_CHARS else text[:TITLE_EXCERPT_CHARS].rstrip() + "…"


def title_model(input_tokens: int) -> str:
    """The model on offer (registry.models_offered) that writes the title for the least, at the prices in
    force; of equal prices, the first offered (the newest of its family)."""
    offered = registry.models_offered()
    priced = billing_selectors.prices_in_force(spec.id for spec in offered)
    usage = TokenUsage(input_tokens=input_tokens, output_tokens=TITLE_MAX_TOKENS)
    return min(offered, key=lambda spec: usage_cost(usage, priced.get(spec.id) or spec.prices)).id


def title_settle(*, asked: TitleAsked, requests: list[UpstreamRequest], title: str) -> dict | None:
    """Write the request's ledger rows, release its reservation and, when the model gave a title and the
    conversation still has its first message's, write it: one transaction. Returns the `conversation` frame
    to publish when the title was written. `requests` is empty when the request was never made."""
    conversation_id = asked.conversation_id
    written = None
    with transaction.atomic():
        # The conversation, or the user, may have been deleted meanwhile: the rows outlive them.
        conversation_exists = Conversation.objects.filter(pk=conversation_id).exists()
        user_exists = get_user_model().objects.filter(pk=asked.user_id).exists()
        calls = ledger.ledger_record(
            requests,
            user_id=asked.user_id if user_exists else None,
            conversation_id=conversation_id if conversation_exists else None,
            message=None,
            settle_key=_settle_key(asked),
        )
        Reservation.objects.filter(pk=asked.reservation_id).delete()
        if title and Conversation.objects.filter(
            pk=conversation_id, title_source=TitleSource.FIRST_MESSAGE
        ).update(title=title, title_source=TitleSource.MODEL):
            written = Conversation.objects.only("pk", "title", "model").get(pk=conversation_id)
    for call in calls:
        ledger.ledger_log(call)
    try:
        usage = sum((request.usage for request in requests), TokenUsage())
        billing_services.usage_settle(user_id=asked.user_id, usage=usage)
    except Exception:
        log.exception("settling the usage of the title of conversation %s failed", conversation_id)
    return frames.conversation_frame(written) if written is not None else None


def _settle_key(asked: TitleAsked) -> str:
    """Unique per reservation, so a settle retried after a lost acknowledgement writes nothing twice."""
    return f"title:{asked.conversation_id}:{asked.reservation_id}"


# --- in the event loop -----------------------------------------------------------------------------------


class TitleWriter:
    """One conversation's title: admitted, asked for, settled, published."""

    def __init__(self, conversation_id: int, reply_id: int):
        self.conversation_id = conversation_id
        self.reply_id = reply_id
        self.stop_requested = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.upstream: UpstreamRequest | None = None
        self.started = time.monotonic()

    async def run(self) -> None:
        # This task's own recorder: the context it was created in is the reply's, whose recorder is the reply's.
        attempt_recorder.set(self._record_attempt)
        await registry.models_refresh()
        asked = await db_async(title_admit)(conversation_id=self.conversation_id, reply_id=self.reply_id)
        if asked is None:
            return
        requests, title = [], ""
        if not self.stop_requested.is_set():
            self.upstream = UpstreamRequest(
                model=asked.model, status=ApiCall.Status.ERROR, purpose=ApiCall.Purpose.TITLE
            )
            requests = [self.upstream]
            try:
                title = await self._ask(asked)
            except asyncio.CancelledError:
                # Cancelled other than through stop_requested (the task itself): the request was stopped in
                # `_ask`, and its row goes to the log, as when settling gives up; the stale sweep releases
                # the reservation.
                self._log_unsaved(asked, requests)
                raise
        frame = await self._settle(asked, requests, title)
        if frame is not None:
            await fanout().publish(generation.conversation_group(self.conversation_id), frame)

    async def _ask(self, asked: TitleAsked) -> str:
        """The title the model wrote ("" for none), until it answers, fails, runs past TITLE_TIMEOUT or shutdown
        stops it. Whatever ends it, the request is over when this returns or raises (a cancelled task stops
        it too: a request left running would be spent with no row), and `self.upstream` says how it ended."""
        asking = asyncio.create_task(self._request(asked))
        stopping = asyncio.create_task(self.stop_requested.wait())
        upstream = self.upstream
        try:
            await asyncio.wait({asking, stopping}, return_when=asyncio.FIRST_COMPLETED)
            await self._request_stopped(asking)
            return self._answer(asking)
        except asyncio.CancelledError:
            await self._request_stopped(asking)
            raise
        finally:
            stopping.cancel()
            upstream.latency_ms = int((time.monotonic() - self.started) * 1000)
            answered = upstream.attempts and (upstream.attempts[-1].http_status or 0) >= 400
            if upstream.status != ApiCall.Status.OK and not answered:
                # No answer came, or it came cut off: the upstream may have billed all of it.
                upstream.usage = TokenUsage(input_tokens=asked.input_tokens, output_tokens=TITLE_MAX_TOKENS)

    async def _request_stopped(self, asking: asyncio.Task) -> None:
        """`asking` cancelled, unless it is done, and awaited: STOPPED when the cancel cut it off."""
        if not asking.done():
            asking.cancel()
            await asyncio.gather(asking, return_exceptions=True)
        if asking.cancelled():
            self.upstream.status = ApiCall.Status.STOPPED

    def _answer(self, asking: asyncio.Task) -> str:
        upstream = self.upstream
        try:
            return asking.result() if not asking.cancelled() else ""
        except TimeoutError:
            log.warning(
                "the title request of conversation %s took over %ss", self.conversation_id, TITLE_TIMEOUT
            )
            upstream.status = ApiCall.Status.STOPPED
            upstream.error = f"No title came within {TITLE_TIMEOUT:g} seconds; the request was stopped."
            return ""
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            log.warning("the title request of conversation %s failed: %r", self.conversation_id, exc)
            upstream.error = generation.upstream_error_reason(exc)
            return ""
        except Exception:
            # Whatever went wrong here, the request may have been made: its row is written all the same.
            log.exception("the title request of conversation %s failed", self.conversation_id)
            upstream.error = "The title could not be read from the model's answer."
            return ""

    async def _request(self, asked: TitleAsked) -> str:
        client = anthropic_client().with_options(max_retries=0, timeout=TITLE_TIMEOUT)
        self.started = time.monotonic()
        async with asyncio.timeout(TITLE_TIMEOUT):
            response = await client.messages.create(**asked.request)
        upstream = self.upstream
        upstream.usage = TokenUsage.from_sdk(response.usage)
        upstream.stop_reason = response.stop_reason or ""
        upstream.status = ApiCall.Status.OK
        if upstream.stop_reason != "end_turn":
            return ""  # cut off at max_tokens: longer than a title
        return title_clean("".join(block.text for block in response.content if block.type == "text"))

    async def _record_attempt(self, response: httpx2.Response) -> None:
        attempt = await generation.upstream_attempt(response, self.started)
        if attempt is not None and self.upstream is not None:
            self.upstream.attempts.append(attempt)

    async def _settle(self, asked: TitleAsked, requests: list[UpstreamRequest], title: str) -> dict | None:
        """Settled with the reply's backoff for CHAT_SETTLE_TIMEOUT; after that, or when shutdown cannot wait,
        the rows go to the log for `manage.py ledger_replay`, and the stale sweep releases the reservation."""
        deadline, delay = time.monotonic() + settings.CHAT_SETTLE_TIMEOUT, generation.SETTLE_FIRST_DELAY
        try:
            while True:
                try:
                    return await db_async(title_settle)(asked=asked, requests=requests, title=title)
                except Exception:
                    if time.monotonic() + delay > deadline:
                        raise
                    log.warning(
                        "settling the title of conversation %s failed; retrying",
                        self.conversation_id,
                        exc_info=True,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, generation.SETTLE_LONGEST_DELAY)
        except BaseException:
            if requests:
                self._log_unsaved(asked, requests)
            raise

    def _log_unsaved(self, asked: TitleAsked, requests: list[UpstreamRequest]) -> None:
        ledger.ledger_log_unsaved(
            requests,
            user_id=asked.user_id,
            conversation_id=asked.conversation_id,
            message_id=None,
            settle_key=_settle_key(asked),
        )
