"""The context budget: a request is measured before it is sent, and never sent when it cannot fit.

Every request is first estimated locally (`request_estimate`: its JSON at four characters a token, each
attachment by its stored estimate). Most are far from the window, and go as they are: asking the API to count
them cost a round trip before every request of every turn, for an answer that could not change anything.

Only a request whose estimate passes NEAR_WINDOW of the room (the window less `max_tokens`) is measured by
`client.messages.count_tokens` (the API's own count with a key, the offline model's otherwise). When the count
says it would overflow, the oldest exchanges are left out, whole (a user message with its replies, tool calls
and results included, so no tool pair is ever split), by their local estimates, and the smaller request is
estimated, and counted if still near, again. The system prompt, a project's instructions and files (its prefix,
chat/llm/request.py) and the latest exchange are never left out: when they alone do not fit, the request is
refused before it is sent.

The estimate is rough: JSON quoting pads prose, code takes more tokens a character than prose, and non-ASCII
text counts six characters a character (JSON escapes it as `\\uXXXX`), so a script of about one token a
character is not underestimated. The fifth of the room above NEAR_WINDOW is the margin for what it gets wrong.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass

import anthropic
from django.conf import settings

from chat.attachments.blocks import ATTACHMENT_BLOCK_TYPES
from chat.llm.catalog import ModelSpec
from chat.llm.request import RequestParts
from chat.llm.tokens import estimate_tokens

# What count_tokens reads of a request; the rest (max_tokens, stream options) does not change the count.
# `mcp_servers` and `betas` come with MCP toolsets (chat/llm/mcp.py), which the beta API counts.
COUNTED_FIELDS = (
    "model", "messages", "system", "tools", "thinking", "tool_choice", "output_config", "mcp_servers", "betas",
)
# A request estimated above this share of the room is counted by the API before it is sent.
NEAR_WINDOW = 0.8


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
    tokens: int  # input tokens: count_tokens' measure when the request was near the window, else the estimate
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

    Counts with the API only when the local estimate is near the window (see the module's docstring). Raises
    ContextTooLong when only the latest exchange is left and it still does not fit.
    """
    window = context_window(model)
    # The latest exchange (the message being answered) is always sent.
    droppable = max(len(parts.exchanges) - 1, 0)
    left_out = 0
    while True:
        request = assemble(left_out)
        room = window - request["max_tokens"]
        tokens = request_estimate(request, attachment_tokens=parts.project.file_tokens + sum(
            exchange.attachment_tokens for exchange in parts.exchanges[left_out:]
        ))
        if tokens > room * NEAR_WINDOW:
            counter = client.beta.messages if "betas" in request else client.messages
            counted = await counter.count_tokens(
                **{k: v for k, v in request.items() if k in COUNTED_FIELDS}
            )
            tokens = counted.input_tokens
        excess = tokens - room
        if excess <= 0:
            left_out_messages = sum(exchange.message_count for exchange in parts.exchanges[:left_out])
            return Fitted(request, tokens, window, left_out_messages)
        if left_out == droppable:
            raise ContextTooLong(tokens, room)
        while left_out < droppable and excess > 0:
            excess -= parts.exchanges[left_out].tokens
            left_out += 1


def request_estimate(request: dict, *, attachment_tokens: int) -> int:
    """The local estimate of a request's input tokens: its JSON at four characters a token, except the image
    and document blocks, whose base64 bytes say nothing of their cost; `attachment_tokens`, the sum of their
    stored estimates (chat/attachments/), stands for them."""
    blocks = [
        block for turn in request["messages"] for block in turn["content"]
        if block.get("type") not in ATTACHMENT_BLOCK_TYPES
    ]
    fixed = {key: value for key, value in request.items() if key in COUNTED_FIELDS and key != "messages"}
    return estimate_tokens(json.dumps(fixed)) + estimate_tokens(json.dumps(blocks)) + attachment_tokens
