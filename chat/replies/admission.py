"""Admitting a turn: one service call, one hop to the database thread pool, one transaction.

Everything that decides whether a reply may start, and everything it needs stored, happens together: the
session is still live, the conversation is read fresh (a rename in another tab is not overwritten), the user
message (or the regenerated, edited or continued reply) is stored, the reply's worst-case cost is reserved
against the budget, the rate limits count it, and the reply's `streaming` row gets its ownership token. A
refusal anywhere rolls all of it back, so a refused send stores nothing and reserves nothing. The frames the
sockets need, and what every request of the reply is built from (chat/llm/request.py `request_parts`), are
read here too, where queries may run: the caller publishes the frames once this has committed, and the reply
starts without another query.
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

Action = Literal["send", "regenerate", "edit", "continue"]
BUSY_DETAIL = "A reply is still being written. Wait for it or press Stop."


@dataclass
class Admitted:
    conversation: Conversation
    reply: Message
    limits: ReplyLimits
    continuing: bool
    parts: RequestParts
    frames: list[dict] = field(default_factory=list)


def reply_admit(
    *, user_id: int, session_key: str | None, auth_hash: str, conversation_id: int, action: Action,
    text: str = "", model: str | None = None, attachment_ids: list[int] = (), message_id: int | None = None,
) -> Admitted:
    """Admit one turn or raise Refusal (nothing stored then). `model` is an offered model id or "auto", already
    checked; `message_id` is the message that edit and continue act on."""
    try:
        return _admit(user_id, session_key, auth_hash, conversation_id, action, text, model, attachment_ids,
                      message_id)
    except services.ConversationBusy:
        # The reply in the way may be one a dead process left: sweep it (a write, in a write path) and try once
        # more, so the user need not wait for the periodic sweep.
        if not services.messages_interrupt_stale(conversation_id=conversation_id):
            raise Refusal("busy", BUSY_DETAIL) from None
    try:
        return _admit(user_id, session_key, auth_hash, conversation_id, action, text, model, attachment_ids,
                      message_id)
    except services.ConversationBusy:
        raise Refusal("busy", BUSY_DETAIL) from None


def _admit(user_id, session_key, auth_hash, conversation_id, action, text, model, attachment_ids, message_id):
    with transaction.atomic():
        # Locking the user row serializes one user's admissions across processes (PostgreSQL; SQLite's
        # IMMEDIATE transactions serialize every writer), so the budget read below cannot be overtaken.
        # no_key: the lock must not block the inserts (ledger rows, reservations) of the user's settling replies.
        user = get_user_model().objects.select_for_update(no_key=True).get(pk=user_id)
        if not user.is_active or not socket_watch.session_is_live(session_key, user_id, auth_hash):
            ending = socket_watch.SESSION_ENDED
            raise Refusal(ending.code, ending.detail)
        conversation = Conversation.objects.filter(pk=conversation_id, owner=user).first()
        if conversation is None:
            raise Refusal("not_found", "This conversation no longer exists.")
        conversation.owner = user
        turn, continuing = _turn(conversation, action, text, model, attachment_ids, message_id)
        reply = turn.assistant_message
        spec = registry.model_for(reply.model)
        max_tokens = output_options(spec, conversation.thinking, continuing)["max_tokens"]
        hold = billing_services.request_admit(
            user=user, conversation=conversation, text="", model=reply.model, max_tokens=max_tokens
        )
        reservation = billing_services.reservation_create(user=user, message=reply, hold=hold)
        limits = ReplyLimits(reservation.pk, hold.max_tokens, hold.tool_rounds, hold.notice)
        parts = request_parts(conversation, reply=reply)
        return Admitted(conversation, reply, limits, continuing, parts, _frames(conversation, turn))


def _turn(conversation, action, text, model, attachment_ids, message_id) -> tuple[services.Turn, bool]:
    """Store what the action changes; the reply's model is routed here (Auto reads the message)."""
    if action == "send":
        route = routing.route(model or conversation.model, text=text, attachment_count=len(attachment_ids))
        return services.turn_start(
            conversation=conversation, text=text, model=model, attachment_ids=attachment_ids,
            reply_model=route.model, route_reason=route.reason,
        ), False
    if action == "continue":
        message = _message(conversation, message_id)
        reply = services.message_continue_start(message=message)
        return services.Turn(None, reply, conversation_changed=False), True
    if action == "regenerate":
        question = selectors.last_user_message(conversation)
        if question is None:
            raise Refusal("nothing_to_regenerate", "There is no reply to write again.")
        route = _route(conversation, model, question.text, question)
        return services.turn_regenerate(
            conversation=conversation, model=model, reply_model=route.model, route_reason=route.reason
        ), False
    message = _message(conversation, message_id)
    route = _route(conversation, model, text, message)
    return services.turn_edit(
        conversation=conversation, message=message, text=text, model=model, reply_model=route.model,
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
    built = [frames.removed_frame(message_id) for message_id in turn.removed_message_ids]
    if turn.user_message is not None:
        built.append(frames.message_frame(frames.message_payload(turn.user_message)))
    built.append(frames.message_frame(frames.message_payload(turn.assistant_message)))
    if turn.conversation_changed:
        built.append(frames.conversation_frame(conversation))
    return built
