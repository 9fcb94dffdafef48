"""Writes, with their side effects. Callers pass objects they already fetched through the selectors."""

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q, Sum, prefetch_related_objects
from django.utils import timezone

from billing import ledger
from billing import services as billing_services
from billing.ledger import UpstreamAttempt, UpstreamRequest
from billing.models import Reservation
from chat import selectors
from chat.attachments.blocks import reference_block
from chat.attachments.limits import AttachmentRefused
from chat.attachments.services import attachments_claim, attachments_copy, attachments_for_turn
from chat.llm.pricing import TokenUsage
from chat.models import INTERRUPTED_REASON, ApiCall, Conversation, Message, ThinkingLevel, TitleSource
from chat.refusals import Refusal

log = logging.getLogger(__name__)

TITLE_LENGTH = 60


class ConversationBusy(Exception):
    """A reply is already streaming in this conversation."""


class TurnRefused(Refusal):
    """A regenerate, edit or continue that does not apply to the conversation as it is."""


def conversation_new(*, owner, model: str = "") -> Conversation:
    """A conversation with the owner's defaults (or the chosen `model`), not saved: the new chat page shows its
    model and settings before the first message creates it."""
    return Conversation(
        owner=owner,
        model=model or owner.default_model or settings.CHAT_DEFAULT_MODEL,
        system_prompt=owner.system_prompt,
        # The user's default thinking (accounts' settings page); one no longer a level thinks not at all.
        thinking=owner.default_thinking if owner.default_thinking in ThinkingLevel.values else ThinkingLevel.OFF,
    )


def conversation_create(*, owner, model: str = "") -> Conversation:
    conversation = conversation_new(owner=owner, model=model)
    conversation.save(force_insert=True)
    return conversation


class TitleRefused(Refusal):
    """A rename to a title that cannot be one (blank)."""


def conversation_rename(*, conversation: Conversation, title: str) -> None:
    """The user's own title (`title_source` user); a blank one is refused."""
    title = " ".join(title.split())[:200]
    if not title:
        raise TitleRefused("blank_title", "A title cannot be blank. The conversation keeps its title.")
    conversation.title, conversation.title_source = title, TitleSource.USER
    conversation.save(update_fields=["title", "title_source", "updated_at"])


def conversation_pin(*, conversation: Conversation, pinned: bool) -> None:
    """Pin (to the top of the sidebar) or unpin. Not a change of `updated_at`: nothing was said in it. An
    archived conversation is unarchived by a pin, since a pin is asking to see it."""
    conversation.pinned_at = timezone.now() if pinned else None
    if pinned:
        conversation.archived_at = None
    conversation.save(update_fields=["pinned_at", "archived_at"])


def conversation_archive(*, conversation: Conversation, archived: bool) -> None:
    """Archive (out of the sidebar, onto the Archived page; unpinned) or bring it back where its last activity
    puts it."""
    conversation.archived_at = timezone.now() if archived else None
    if archived:
        conversation.pinned_at = None
    conversation.save(update_fields=["pinned_at", "archived_at"])


def conversation_settings_update(
    *, conversation: Conversation, system_prompt: str, thinking: str, cache_ttl: str | None = None
) -> None:
    """Takes effect from the next request: a reply already streaming keeps what it started with. `cache_ttl`
    None keeps the conversation's."""
    conversation.system_prompt = system_prompt.strip()
    conversation.thinking = thinking
    if cache_ttl is not None:
        conversation.cache_ttl = cache_ttl
    conversation.save(update_fields=["system_prompt", "thinking", "cache_ttl", "updated_at"])


def conversation_delete(*, conversation: Conversation) -> None:
    from batches.services import queued_replies_delete  # here: batches builds on this module

    # Before, in its own transaction: a reply queued in between is let go of by the cascade, and its answer,
    # should it come, is billed and stored nowhere all the same (BatchItem.reply_deleted).
    queued_replies_delete(message_ids=conversation.messages.filter(status=Message.Status.QUEUED).values("pk"))
    conversation.delete()


def title_from(text: str) -> str:
    """`text` on one line, cut to TITLE_LENGTH: the first message's title, and a title the model wrote."""
    first_line = " ".join(text.split())
    return first_line if len(first_line) <= TITLE_LENGTH else first_line[: TITLE_LENGTH - 1].rstrip() + "…"


@dataclass
class Turn:
    """What a turn stored, for the frames admission builds. A `send` or a `continue` is told with `message`
    frames; a regenerate or an edit, which puts the conversation on a new branch, with a `tree` frame, from
    `tree` (the tree after the turn) and `known` (the ids of the path before it, which clients already have)."""

    user_message: Message | None  # the message the reply answers; None for a continued reply
    assistant_message: Message
    conversation_changed: bool
    tree: selectors.Tree | None = None
    known: frozenset[int] = frozenset()


def turn_start(
    *, conversation: Conversation, text: str, model: str | None = None, attachment_ids: list[int] = (),
    reply_model: str = "", route_reason: str = "", tree: selectors.Tree | None = None,
) -> Turn:
    """Store the user's message and the assistant's `streaming` placeholder, atomically, at the end of the
    active path: the message answers the current leaf, and the reply becomes the leaf.

    The partial unique index on streaming messages makes this fail with ConversationBusy when another reply is
    streaming in the conversation, in this process or any other; the user's message is then not stored.
    The message claims the owner's uploads `attachment_ids` and refers to them ahead of its text; when one
    cannot be claimed, or the next request would break the API's limits, AttachmentRefused says so, and
    nothing is stored either. `model` is the user's pick for the conversation (it may be "auto");
    `reply_model` the model that answers, with Auto's `route_reason` (chat/llm/routing.py). `tree`: the
    conversation's, when the caller has read it already.
    """
    attachments = []
    if attachment_ids:
        attachments = attachments_for_turn(conversation=conversation, attachment_ids=attachment_ids, tree=tree)
    content = [reference_block(attachment.pk) for attachment in attachments]
    if text:
        content.append({"type": "text", "text": text})
    changed_fields = ["model"] if _model_changed(conversation, model) else []
    if not conversation.title:
        conversation.title = title_from(text or attachments[0].name)
        conversation.title_source = TitleSource.FIRST_MESSAGE
        changed_fields += ["title", "title_source"]
    try:
        with transaction.atomic():
            user_message = Message.objects.create(
                conversation=conversation, parent_id=conversation.current_leaf_id, role=Message.Role.USER,
                content=content,
            )
            attachments_claim(attachments=attachments, message=user_message)
            assistant_message = _reply_placeholder(conversation, user_message, reply_model, route_reason)
            conversation.save(update_fields=[*changed_fields, "current_leaf", "updated_at"])
    except IntegrityError as error:
        conversation.refresh_from_db()
        raise ConversationBusy from error
    except AttachmentRefused:
        conversation.refresh_from_db()
        raise
    prefetch_related_objects([user_message], "attachments")  # its frame is built where queries can't run
    return Turn(user_message, assistant_message, conversation_changed=bool(changed_fields))


def _model_changed(conversation: Conversation, model: str | None) -> bool:
    """Take the user's pick of `model` for the conversation; whether it changed (unsaved yet)."""
    if not model or model == conversation.model:
        return False
    conversation.model = model
    return True


def _reply_placeholder(
    conversation: Conversation, question: Message, reply_model: str, route_reason: str
) -> Message:
    """The `streaming` reply to `question`, made the conversation's current leaf (the caller saves it)."""
    reply = Message.objects.create(
        conversation=conversation,
        parent=question,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model=reply_model or conversation.model,
        route_reason=route_reason,
        heartbeat_at=timezone.now(),
        owner_token=ownership_token(),
    )
    conversation.current_leaf = reply
    return reply


def ownership_token() -> str:
    """A new owner for a streaming reply (Message.owner_token)."""
    return secrets.token_hex(16)


def regenerated_question(
    *, conversation: Conversation, tree: selectors.Tree, message: Message | None
) -> Message:
    """The user message a regenerate answers again: the one that `message` (a reply on the active path)
    answers; by default the one the path's last reply answers, or the path's last message itself when that is
    a user message left without a reply (its replies were deleted)."""
    path = tree.path_to(conversation.current_leaf_id)
    if message is None and path:
        message = conversation.messages.get(pk=path[-1])
        if message.role == Message.Role.USER:
            return message
    if message is None or message.role != Message.Role.ASSISTANT or message.pk not in path or not message.parent_id:
        raise TurnRefused("nothing_to_regenerate", "There is no reply here to write again.")
    return conversation.messages.get(pk=message.parent_id)


def turn_regenerate(
    *, conversation: Conversation, question: Message, tree: selectors.Tree, model: str | None = None,
    reply_model: str = "", route_reason: str = "",
) -> Turn:
    """Answer `question` (`regenerated_question`) again: a new `streaming` reply beside the ones before, which
    are kept with their ledger rows, and the active path now ends in it. `tree` is the conversation's, read by
    the caller. ConversationBusy while a reply streams (the unique index, as for `turn_start`)."""
    known = frozenset(tree.path_to(conversation.current_leaf_id))
    changed = _model_changed(conversation, model)
    try:
        with transaction.atomic():
            reply = _reply_placeholder(conversation, question, reply_model, route_reason)
            _path_changed_save(conversation, ["model", "current_leaf", "updated_at"])
    except IntegrityError as error:
        conversation.refresh_from_db()
        raise ConversationBusy from error
    return Turn(question, reply, conversation_changed=changed, tree=tree.with_messages(reply), known=known)


def turn_edit(
    *, conversation: Conversation, message: Message, text: str, tree: selectors.Tree, model: str | None = None,
    reply_model: str = "", route_reason: str = "",
) -> Turn:
    """A new version of `message`, any user message on the active path: a sibling holding `text` in place of its
    text and the same attachments (new rows naming the same files), with its `streaming` reply, where the
    active path now ends. The original and everything under it are kept."""
    known = frozenset(tree.path_to(conversation.current_leaf_id))
    if message.role != Message.Role.USER or message.pk not in known:
        raise TurnRefused("not_editable", "Only your own messages in the conversation as shown can be edited.")
    kept = [block for block in message.content if block.get("type") != "text"]
    if not kept and not text:
        raise TurnRefused("empty", "Write a message first.")
    changed = _model_changed(conversation, model)
    try:
        with transaction.atomic():
            edited = Message.objects.create(
                conversation=conversation, parent_id=message.parent_id, role=Message.Role.USER
            )
            copies = attachments_copy(attachments=list(message.attachments.all()), message=edited,
                                      owner=conversation.owner)
            edited.content = [_reference_to_copy(block, copies) for block in kept if _copied(block, copies)]
            if text:
                edited.content.append({"type": "text", "text": text})
            edited.save(update_fields=["content"])
            reply = _reply_placeholder(conversation, edited, reply_model, route_reason)
            _path_changed_save(conversation, ["model", "current_leaf", "updated_at"])
    except IntegrityError as error:
        conversation.refresh_from_db()
        raise ConversationBusy from error
    return Turn(edited, reply, conversation_changed=changed, tree=tree.with_messages(edited, reply), known=known)


def _copied(block: dict, copies: dict) -> bool:
    """Whether the block goes into the edited message: not a reference to an attachment that is gone."""
    return block.get("type") != "attachment" or block.get("attachment_id") in copies


def _reference_to_copy(block: dict, copies: dict) -> dict:
    return reference_block(copies[block["attachment_id"]].pk) if block.get("type") == "attachment" else block


@dataclass(frozen=True)
class BranchChange:
    """A switch or a deleted branch: the tree after it, and the ids of the path before it."""

    tree: selectors.Tree
    known: frozenset[int]


def branch_switch(*, conversation: Conversation, message_id: int) -> BranchChange:
    """Show the branch through `message_id` (any message of the conversation): the active path becomes the one
    down to the newest leaf under it. Refused while a reply streams (ConversationBusy): the reply's branch
    stays the one shown until it ends."""
    with transaction.atomic():
        tree, known = _branch_locked(conversation, message_id)
        _leaf_move(conversation, tree.newest_leaf_under(message_id))
    return BranchChange(tree, known)


def branch_delete(*, conversation: Conversation, message_id: int) -> BranchChange:
    """Delete `message_id` and everything under it. Their ledger rows stay, with the message emptied. A leaf
    that was inside moves to the newest leaf under the newest remaining version of the message, else to its
    parent (None when nothing is left). Refused while a reply streams (ConversationBusy)."""
    from batches.services import queued_replies_delete  # here: batches builds on this module

    with transaction.atomic():
        tree, known = _branch_locked(conversation, message_id)
        gone = tree.subtree(message_id)
        queued_replies_delete(message_ids=gone)  # their batch items cancelled, or told to store nothing
        # Every level at once, by id: a cascade from the top would collect the branch one level per query.
        Message.objects.filter(pk__in=gone).delete()
        remaining = tree.without(gone)
        leaf = conversation.current_leaf_id
        if leaf in gone:
            parent = tree.parents[message_id]
            versions = remaining.children(parent)
            leaf = remaining.newest_leaf_under(versions[-1]) if versions else parent
        _leaf_move(conversation, leaf)
    return BranchChange(remaining, known - gone)


def _branch_locked(conversation: Conversation, message_id: int) -> tuple[selectors.Tree, frozenset[int]]:
    """The conversation's row locked, fresh (another tab may have switched), with no reply streaming, and
    `message_id` one of its messages: its tree, and the path shown now. Locking the row orders this after an
    admission that is storing a turn (it locks the row too), so a branch never changes under a new reply."""
    # no_key: the lock must not block the ledger rows of a settling reply, which reference the conversation.
    locked = Conversation.objects.select_for_update(no_key=True).filter(pk=conversation.pk)
    row = locked.values("current_leaf_id", "tree_version").first()
    if row is None:
        raise TurnRefused("not_found", "This conversation no longer exists.")
    conversation.current_leaf_id, conversation.tree_version = row["current_leaf_id"], row["tree_version"]
    if selectors.streaming_message_id(conversation.pk, None) is not None:
        raise ConversationBusy
    tree = selectors.Tree.of(conversation.pk)
    if message_id not in tree.parents:
        raise TurnRefused("not_found", "No such message in this conversation.")
    return tree, frozenset(tree.path_to(conversation.current_leaf_id))


def _leaf_move(conversation: Conversation, leaf_id: int | None) -> None:
    """A new end for the active path. Not a change of the conversation's `updated_at`: nothing was written."""
    conversation.current_leaf_id = leaf_id
    _path_changed_save(conversation, ["current_leaf"])


def _path_changed_save(conversation: Conversation, update_fields: list[str]) -> None:
    """Save a change of the active path that a `tree` frame tells, with `tree_version` one higher: F() + 1 in
    the row, in the caller's transaction, and on the instance the value the row now holds. The caller read the
    conversation with its row locked in that transaction, so no other change comes between the read and this,
    and the frame built from the instance carries the version of the path it shows (docs/protocol.md)."""
    version = conversation.tree_version
    conversation.tree_version = F("tree_version") + 1
    conversation.save(update_fields=[*update_fields, "tree_version"])
    conversation.tree_version = version + 1


def message_continue_start(*, message: Message) -> Message:
    """Reopen a reply that max_tokens cut short, for a generation to extend it (chat/replies/generation.py).
    Only the active path's last message can be continued.

    Trailing whitespace is stripped from its last text block: the API refuses a prefill that ends in whitespace,
    and the continuation brings its own.
    """
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message.pk)
        last = message.conversation.current_leaf_id == message.pk
        if not last or message.stop_reason != "max_tokens" or message.status != Message.Status.COMPLETE:
            raise TurnRefused("cannot_continue", "Only the last reply, cut off at its length limit, can be continued.")
        if message.content and message.content[-1].get("type") == "text":
            message.content[-1]["text"] = message.content[-1]["text"].rstrip()
        message.status, message.stop_reason, message.heartbeat_at = Message.Status.STREAMING, "", timezone.now()
        message.owner_token = ownership_token()
        try:
            message.save(update_fields=["content", "status", "stop_reason", "heartbeat_at", "owner_token"])
        except IntegrityError as error:
            raise ConversationBusy from error
    return message


def messages_checkpoint(writes: list[tuple[int, str, list[dict] | None, int]]) -> set[int]:
    """Checkpoint several replies at once, `(message_id, token, content, seq)` each, in one transaction: the
    process's checkpointer (chat/replies/checkpoints.py) writes every reply due in one hop and one commit.
    Returns the ids no longer owned by their token."""
    lost = set()
    with transaction.atomic():
        for message_id, token, content, seq in writes:
            try:
                # Its own savepoint: a row the database refuses fails alone, not every reply of the process.
                with transaction.atomic():
                    if not message_checkpoint(message_id=message_id, token=token, content=content, seq=seq):
                        lost.add(message_id)
            except DatabaseError:
                log.exception("checkpointing reply %s failed", message_id)
    return lost


def message_checkpoint(*, message_id: int, token: str, content: list[dict] | None, seq: int) -> bool:
    """Save a streaming reply's progress and prove its process is alive; False when the reply is no longer
    this generation's (stopped, swept as stale, deleted): the caller must stop writing it.

    `content` None is a heartbeat alone: nothing changed since the last checkpoint, so the reply is not
    rewritten. Called at a bounded rate, never per token.
    """
    changes = {"heartbeat_at": timezone.now()}
    if content is not None:
        changes.update(content=storable(content), seq=seq)
    return bool(_owned(message_id, token).update(**changes))


def storable(value):
    """`value` (a reply's blocks) with every string storable in any database: the model's text may hold NUL or
    a lone surrogate, which PostgreSQL's jsonb refuses; each becomes U+FFFD."""
    if isinstance(value, str):
        if value.isascii():
            return value.replace("\x00", "\ufffd")
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace").replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {key: storable(item) for key, item in value.items()}
    return value


def message_fail(*, message_id: int, token: str, content: list[dict], seq: int, error: str) -> bool:
    """The last word on a reply whose settling gave up: `failed`, with everything it had generated. One small
    conditional UPDATE, tried once; its ledger rows went to the log (`ledger_log_unsaved`)."""
    return bool(_owned(message_id, token).update(
        status=Message.Status.FAILED, content=storable(content), seq=seq, error=error, owner_token=""
    ))


def _owned(message_id: int, token: str):
    """The reply while `token` owns it: the condition of every write a generation makes."""
    return Message.objects.filter(pk=message_id, status=Message.Status.STREAMING, owner_token=token)


LEDGER_STATUS = {
    Message.Status.COMPLETE: ApiCall.Status.OK,
    Message.Status.STOPPED: ApiCall.Status.STOPPED,
    Message.Status.INTERRUPTED: ApiCall.Status.STOPPED,
}


def message_finish(
    *,
    message_id: int,
    user_id: int,
    conversation_id: int,
    status: str,
    content: list[dict],
    seq: int,
    model: str,
    token: str = "",
    reservation_id: int | None = None,
    usage: TokenUsage = TokenUsage(),
    stop_reason: str = "",
    error: str = "",
    first_token_ms: int | None = None,
    duration_ms: int | None = None,
    attempts: list[UpstreamAttempt] = (),
    requests: list[UpstreamRequest] | None = None,
    notices: list[str] | None = None,
    context: tuple[int, int] | None = None,
) -> Message | None:
    """Settle a reply: its final content and state, one ApiCall row per HTTP attempt of each request, and the
    release of its reservation, in one transaction.

    The reply is written only while `token` still owns it; a reply that was swept or taken over meanwhile
    keeps what the sweep left, and None is returned. The ledger rows are written whatever happened to the
    message (it is money spent), and the reservation is released either way. `requests` are the reply's
    upstream requests in order; without them the reply made one request to `model`, described by `usage`,
    `stop_reason`, `first_token_ms`, `duration_ms` and `attempts`. The message's tokens and cost are the sum of
    its ledger rows (a continued reply's earlier rows included). `context` is (tokens, window) for the gauge.
    Afterwards the user's rate-limit window and budget alerts are settled with the real usage.
    """
    if requests is None:
        requests = [UpstreamRequest(
            model, list(attempts), usage, LEDGER_STATUS.get(status, ApiCall.Status.ERROR), stop_reason or "", error,
            first_token_ms, duration_ms,
        )]
    with transaction.atomic():
        message = _owned(message_id, token).select_for_update().first()
        # A reply swept or taken over meanwhile keeps its row, and its ledger rows still point at it.
        billed = message or Message.objects.filter(pk=message_id).only("pk").first()
        # The conversation, or the user, may have been deleted mid-reply: the rows outlive them.
        conversation_exists = Conversation.objects.filter(pk=conversation_id).exists()
        user_exists = get_user_model().objects.filter(pk=user_id).exists()
        calls = ledger.ledger_record(
            requests, user_id=user_id if user_exists else None,
            conversation_id=conversation_id if conversation_exists else None, message=billed,
            settle_key=f"{message_id}:{token}",
        )
        if reservation_id is not None:
            Reservation.objects.filter(pk=reservation_id).delete()
        if message is not None:
            message.status = status
            message.content = storable(content)
            message.seq = seq
            message.model = model
            message.stop_reason = stop_reason or ""
            message.error = error
            message.first_token_ms = first_token_ms
            message.duration_ms = duration_ms
            message.owner_token = ""
            if notices is not None:
                message.notices = notices
            if context is not None:
                message.context_tokens, message.context_window = context
            _totals_from_ledger(message)
            message.save()
    for call in calls:
        ledger.ledger_log(call)
    try:
        billing_services.usage_settle(user_id=user_id, usage=sum((r.usage for r in requests), TokenUsage()))
    except Exception:
        # The ledger is committed; a cache or mail outage must not stop the reply from being delivered.
        log.exception("settling usage of message %s failed", message_id)
    return message


def _totals_from_ledger(message: Message) -> None:
    totals = ApiCall.objects.filter(message=message).aggregate(
        input=Sum("input_tokens"), output=Sum("output_tokens"), read=Sum("cache_read_input_tokens"),
        written_5m=Sum("cache_creation_5m_input_tokens"), written_1h=Sum("cache_creation_1h_input_tokens"),
        cost=Sum("cost"),
    )
    message.input_tokens = totals["input"] or 0
    message.output_tokens = totals["output"] or 0
    message.cache_read_input_tokens = totals["read"] or 0
    message.cache_creation_input_tokens = (totals["written_5m"] or 0) + (totals["written_1h"] or 0)
    message.cost = totals["cost"] or 0


STOP_REASONS = {Message.Status.INTERRUPTED: INTERRUPTED_REASON}


def messages_interrupt_stale(*, conversation_id: int | None = None, stale_after: float | None = None) -> int:
    """Mark replies left `streaming` by a dead process as interrupted, keeping their last checkpoint, and
    release what they had reserved.

    A live generation refreshes its heartbeat every few seconds, so a stale one has no process behind it.
    Clearing the token makes the sweep final: a generation that was only slow finds its next write refused
    and stops (chat/replies/generation.py). `stale_after=0` marks every streaming reply: right for a single
    server that is just starting. Reservations left by replies that are gone or settled elsewhere (a process
    that died while settling) are released once they are as old as a stale heartbeat.
    """
    stale_after = settings.CHAT_STREAM_STALE_AFTER if stale_after is None else stale_after
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    stale = Message.objects.filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True), status=Message.Status.STREAMING
    )
    if conversation_id is not None:
        stale = stale.filter(conversation_id=conversation_id)
    with transaction.atomic():
        # Locked, so a reply that heartbeats meanwhile is either swept with its reservation or kept with it.
        stale_ids = list(stale.select_for_update(skip_locked=True).values_list("pk", flat=True))
        swept = Message.objects.filter(pk__in=stale_ids).update(
            status=Message.Status.INTERRUPTED, error=INTERRUPTED_REASON, owner_token=""
        )
        # A reservation a Message Batch item holds (batches/) lives until the item settles, hours maybe.
        Reservation.objects.filter(
            Q(message_id__in=stale_ids)
            | Q(created_at__lt=cutoff) & (Q(message__isnull=True) | ~Q(message__status=Message.Status.STREAMING))
        ).filter(batch_item__isnull=True).delete()
    return swept
