"""The context budget: a request is measured before it is sent, and never sent when it cannot fit.

The measure is `client.messages.count_tokens` (the API's own count with a key, the offline model's otherwise),
once per request. When the request and its `max_tokens` would overflow the window, the oldest exchanges are
left out, whole (a user message with its replies, tool calls and results included, so no tool pair is ever
split), by their local estimates; the smaller request is counted again to be sure. The system prompt and the
latest exchange are never left out: when they alone do not fit, the request is refused before it is sent.
"""

from collections.abc import Callable
from dataclasses import dataclass

import anthropic
from django.conf import settings

from chat.llm.catalog import ModelSpec
from chat.llm.request import RequestParts

# What count_tokens reads of a request; the rest (max_tokens, stream options) does not change the count.
COUNTED_FIELDS = ("model", "messages", "system", "tools", "thinking", "tool_choice", "output_config")


class ContextTooLong(Exception):
    def __init__(self, tokens: int, room: int):
        self.tokens, self.room = tokens, room
        super().__init__(
            f"This message is too long for the model: the request would carry about {tokens:,} tokens and "
            f"{room:,} fit beside room for the reply. Shorten it, or send fewer or smaller attachments."
        )


@dataclass(frozen=True)
class Fitted:
    request: dict
    tokens: int  # input tokens, as count_tokens measured them
    window: int
    messages_left_out: int

    def notice(self) -> str | None:
        """A sentence for the transcript when history was left out."""
        if not self.messages_left_out:
            return None
        plural = "message was" if self.messages_left_out == 1 else "messages were"
        return f"{self.messages_left_out} earlier {plural} left out to fit the model's context window."


def context_window(model: ModelSpec) -> int:
    """The model's window, or less where CHAT_MAX_CONTEXT_TOKENS caps what one request may carry."""
    cap = settings.CHAT_MAX_CONTEXT_TOKENS
    return min(model.context_window, cap) if cap else model.context_window


async def request_fit(
    client: anthropic.AsyncAnthropic, parts: RequestParts, model: ModelSpec, assemble: Callable[[int], dict]
) -> Fitted:
    """The request `assemble(left_out)` makes with as few exchanges left out as the window allows.

    Raises ContextTooLong when only the latest exchange is left and it still does not fit.
    """
    window = context_window(model)
    # The latest exchange (the message being answered) is always sent.
    droppable = max(len(parts.exchanges) - 1, 0)
    left_out = 0
    while True:
        request = assemble(left_out)
        counted = await client.messages.count_tokens(**{k: v for k, v in request.items() if k in COUNTED_FIELDS})
        room = window - request["max_tokens"]
        excess = counted.input_tokens - room
        if excess <= 0:
            left_out_messages = sum(exchange.message_count for exchange in parts.exchanges[:left_out])
            return Fitted(request, counted.input_tokens, window, left_out_messages)
        if left_out == droppable:
            raise ContextTooLong(counted.input_tokens, room)
        while left_out < droppable and excess > 0:
            excess -= parts.exchanges[left_out].tokens
            left_out += 1
