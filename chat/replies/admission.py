"""Admitting a turn: one service call, one hop to the database thread pool, one transaction.

Everything that decides whether a reply may start, and everything it needs stored, happens together: the
session is still live, the conversation is read fresh (a rename in another tab is not overwritten), the user
message (or the regenerated, edited or continued reply) is stored, the reply's worst-case cost is reserved
against the budget, the rate limits count it, and the reply's `streaming` row gets its ownership token. A
refusal anywhere rolls all of it back, so a refused send stores nothing and reserves nothing. The frames the
sockets need, and what every request of the reply is built from (chat/llm/request.py `request_parts`), are
read here too, where queries may run: the caller publishes the frames once this has committed, and the reply
starts without another query.

A turn sent "not urgent: half price" (`batch`) is admitted the same way, in the same transaction, but its reply
is `queued` instead of `streaming`: it is reserved at the batch price and recorded as a Message Batch item with
the exact request (batches/services.py), and no generation starts; the batch worker settles it. While a reply
is queued, the conversation takes no other turn.

Switching the active branch and deleting a branch (`branch_change`) start no reply, but come here for the same
rules: nothing changes a conversation's path while a reply streams in it, nor from a socket whose session ended.
"""

from dataclasses import dataclass, field
from typing import Literal

from django.contrib.auth import get_user_model
from django.db import transaction

from billing import services as billing_services
from chat import frames, selectors, services, socket_watch
from chat.llm import registry, routing
from chat.llm.request import RequestParts, output_options, request_parts
from chat.models import Conversation, Message
from chat.refusals import Refusal
from chat.replies.generation import ReplyLimits
from lifecycle.refusals import retired_model_refuse

Action = Literal["send", "regenerate", "edit", "continue"]
BUSY_DETAIL = "A reply is still being written. Wait for it or press Stop."
QUEUED_DETAIL = "A half-price reply is queued in this conversation. Wait for it, or cancel it to send now."


@dataclass
class Admitted:
    conversation: Conversation
    reply: Message
    limits: ReplyLimits
    continuing: bool
    parts: RequestParts
    frames: list[dict] = field(default_factory=list)
    queued: bool = False  # a half-price reply: the batch worker writes it, no generation starts


def reply_admit(
    *, user_id: int, session_key: str | None, auth_hash: str, conversation_id: int, action: Action,
    text: str = "", model: str | None = None, attachment_ids: list[int] = (), message_id: int | None = None,
    batch: bool = False,
) -> Admitted:
    """Admit one turn or raise Refusal (nothing stored then). `model` is an offered model id or "auto", already
    checked; `message_id` is the message that regenerate, edit and continue act on (regenerate: optional);
    `batch`: a `send` whose reply is queued at half price."""
    return _busy_swept(conversation_id, lambda: _admit(
        user_id, session_key, auth_hash, conversation_id, action, text, model, attachment_ids, message_id, batch
    ))


def branch_change(
    *, user_id: int, session_key: str | None, auth_hash: str, conversation: Conversation,
    action: Literal["switch", "delete"], message_id: int,
) -> dict:
    """Switch the active branch, or delete one (chat/services.py), and build the `tree` frame that tells every
    socket: one hop to the database, one transaction, so the frame shows the path this change made with the
    version it made (a later change in another process cannot slip in between). Refused as a turn is: an ended
    session (`session_ended`), a reply streaming (`busy`); a message that is not this conversation's is
    `not_found`."""
    change = services.branch_switch if action == "switch" else services.branch_delete

    def attempt() -> dict:
        with transaction.atomic():
            _user_signed_in(user_id, session_key, auth_hash)
            changed = change(conversation=conversation, message_id=message_id)
            return _tree_frame(conversation, changed.tree, changed.known)

    return _busy_swept(conversation.pk, attempt)


def _busy_swept(conversation_id: int, attempt):
    """`attempt()`, or Refusal `busy` while a reply streams in the conversation. The reply in the way may be one
    a dead process left: it is swept (a write, in a write path) and `attempt` tried once more, so the user need
    not wait for the periodic sweep."""
    try:
        return attempt()
    except services.ConversationBusy:
        if not services.messages_interrupt_stale(conversation_id=conversation_id):
            raise Refusal("busy", BUSY_DETAIL) from None
    try:
        return attempt()
    except services.ConversationBusy:
        raise Refusal("busy", BUSY_DETAIL) from None


def _admit(user_id, session_key, auth_hash, conversation_id, action, text, model, attachment_ids, message_id,
           batch=False):
    with transaction.atomic():
        user = _user_signed_in(user_id, session_key, auth_hash)
        # Locked too, as a switch or a deleted branch locks it (chat/services.py): the turn is stored at the end
        # of the path as it is once they have committed. no_key, as above: ledger rows of settling replies
        # reference the conversation.
        conversation = (
            Conversation.objects.select_for_update(no_key=True).filter(pk=conversation_id, owner=user).first()
        )
        if conversation is None:
            raise Refusal("not_found", "This conversation no longer exists.")
        conversation.owner = user
        # Under the conversation's lock, as every turn's admission is: two tabs cannot both get past it.
        if Message.objects.filter(conversation=conversation, status=Message.Status.QUEUED).exists():
            raise Refusal("queued", QUEUED_DETAIL)
        # The tree is read once, here, for everything the admission asks of it.
        tree = selectors.Tree.of(conversation.pk)
        turn, continuing = _turn(conversation, tree, action, text, model, attachment_ids, message_id)
        reply = turn.assistant_message
        # A retired model is never sent a request: refused, naming its successor, and all of it rolled back.
        retired_model_refuse(reply.model)
        stored = [message for message in (turn.user_message, reply) if message is not None]
        tree = turn.tree or tree.with_messages(*stored)
        spec = registry.model_for(reply.model)
        max_tokens = output_options(spec, conversation.thinking, continuing)["max_tokens"]
        hold = billing_services.request_admit(
            user=user, conversation=conversation, text="", model=reply.model, max_tokens=max_tokens,
            conversation_tree=tree, batch=batch,
        )
        reservation = billing_services.reservation_create(user=user, message=reply, hold=hold)
        limits = ReplyLimits(reservation.pk, hold.max_tokens, hold.tool_rounds, hold.notice)
        parts = request_parts(conversation, reply=reply, tree=tree)
        if batch:
            from batches.services import batch_turn_create  # here: batches builds on the reply's modules

            batch_turn_create(reply=reply, parts=parts, spec=spec, reservation=reservation, hold=hold)
        return Admitted(conversation, reply, limits, continuing, parts, _frames(conversation, turn), batch)


def _user_signed_in(user_id: int, session_key: str | None, auth_hash: str):
    """The user, their row locked, or Refusal `session_ended` when the socket's session no longer signs them in
    (a logout, a password change, deactivation): checked inside the caller's transaction, before anything is
    stored. Locking the user row serializes one user's admissions across processes (PostgreSQL; SQLite's
    IMMEDIATE transactions serialize every writer), so the budget read after it cannot be overtaken. no_key:
    the lock must not block the inserts (ledger rows, reservations) of the user's settling replies."""
    user = get_user_model().objects.select_for_update(no_key=True).get(pk=user_id)
    if not user.is_active or not socket_watch.session_is_live(session_key, user_id, auth_hash):
        ending = socket_watch.SESSION_ENDED
        raise Refusal(ending.code, ending.detail)
    return user


def _turn(conversation, tree, action, text, model, attachment_ids, message_id) -> tuple[services.Turn, bool]:
    """Store what the action changes; the reply's model is routed here (Auto reads the message). `tree` is
    the conversation's before the turn."""
    if action == "send":
        route = routing.route(model or conversation.model, text=text, attachment_count=len(attachment_ids))
        return services.turn_start(
            conversation=conversation, text=text, model=model, attachment_ids=attachment_ids,
            reply_model=route.model, route_reason=route.reason, tree=tree,
        ), False
    if action == "continue":
        message = _message(conversation, message_id)
        reply = services.message_continue_start(message=message)
        return services.Turn(None, reply, conversation_changed=False), True
    if action == "regenerate":
        message = _message(conversation, message_id) if message_id is not None else None
        question = services.regenerated_question(conversation=conversation, tree=tree, message=message)
        route = _route(conversation, model, question.text, question)
        return services.turn_regenerate(
            conversation=conversation, question=question, tree=tree, model=model, reply_model=route.model,
            route_reason=route.reason,
        ), False
    message = _message(conversation, message_id)
    route = _route(conversation, model, text, message)
    return services.turn_edit(
        conversation=conversation, message=message, text=text, tree=tree, model=model, reply_model=route.model,
        route_reason=route.reason,
    ), False


def _route(conversation, model, text, message) -> routing.Route:
    attachments = sum(block.get("type") == "attachment" for block in message.content)
    return routing.route(model or conversation.model, text=text, attachment_count=attachments)


def _message(conversation, message_id) -> Message:
    message = selectors.message_in_conversation(conversation, message_id)
    if message is None:
        raise Refusal("not_found", "No such message in this conversation.")
    return message


def _frames(conversation, turn: services.Turn) -> list[dict]:
    """A new message and its reply (or a continued reply) as `message` frames; a regenerate or an edit as the
    `tree` frame of the new branch, whose path ends in the new reply and which carries the new messages."""
    if turn.tree is not None:
        built = [_tree_frame(conversation, turn.tree, turn.known)]
    else:
        built = [frames.message_frame(frames.message_payload(message))
                 for message in (turn.user_message, turn.assistant_message) if message is not None]
    if turn.conversation_changed:
        built.append(frames.conversation_frame(conversation, model=True))
    return built


def _tree_frame(conversation: Conversation, tree: selectors.Tree, known: frozenset[int]) -> dict:
    """The `tree` frame of the conversation's path as this transaction left it, with its `tree_version`. Only
    the rows of the path's messages not in `known` (which clients already have) are read: the same two
    queries for a path of any length."""
    path = tree.path_to(conversation.current_leaf_id)
    fresh = selectors.messages_in_order(conversation, [step for step in path if step not in known])
    return frames.tree_frame(path, tree, fresh, version=conversation.tree_version)
