"""Builds the Messages API requests of a reply.

Everything a reply's requests are made of is read from the database once, into `RequestParts`: the system
prompt, the tools, the thinking level, and the history as exchanges (a user message and the replies that
answered it: the unit the context budget leaves out whole). Each request of the reply (a tool loop makes
several) is then assembled from the parts and the reply's blocks so far, without the database.

Tool turns: an assistant Message holds its whole reply, tool calls and their results included, in order
(`[text, tool_use, tool_use, tool_result, tool_result, text]`). `reply_turns` expands it into the API's turns:
each run of tool_result blocks becomes a user turn between the assistant turns around it.

Projects: a conversation in a project starts every request with the project's prefix (projects/prompts.py):
its instructions as the first system block, before the conversation's own system prompt, and its files as the
first blocks of the first turn sent. The context budget leaves out old exchanges after it, never the prefix.

Prompt caching: `cache_breakpoints_place` alone decides where the API's four breakpoints go. Nothing volatile
(timestamps, ids) is ever placed in a request, so two turns share a byte-identical prefix, and so do two
conversations of one project.
"""

import json
from dataclasses import dataclass

from django.conf import settings

from chat import selectors
from chat.attachments.blocks import content_block
from chat.llm import tools as tools_module
from chat.llm.catalog import ModelSpec
from chat.llm.tokens import estimate_tokens
from chat.llm.registry import model_for
from chat.models import Conversation, Message, ThinkingLevel
from projects.prompts import NO_PROJECT, ProjectPrefix, project_prefix
from projects.selectors import project_in_reach

EPHEMERAL = {"type": "ephemeral"}
MAX_CACHE_BREAKPOINTS = 4
# Thinking tokens per level, on top of the answer's own `max_tokens`. Models that think adaptively get the
# level as their effort instead, with the same room.
THINKING_BUDGETS = {ThinkingLevel.LOW: 2_048, ThinkingLevel.MEDIUM: 8_192, ThinkingLevel.HIGH: 16_384}
MIN_THINKING_BUDGET = 1_024


@dataclass(frozen=True)
class Exchange:
    turns: list[dict]
    message_count: int
    tokens: int  # a local estimate, to choose how many exchanges to leave out before counting again
    attachment_tokens: int = 0  # the stored estimates of its attachments (chat/attachments/)


@dataclass(frozen=True)
class RequestParts:
    system: str
    thinking: str
    tools: list  # the tools the reply may run, bound to whom it answers for (chat/llm/tools.py)
    exchanges: list[Exchange]
    project: ProjectPrefix = NO_PROJECT  # sent first, before the system prompt and the history; never left out


def request_parts(
    conversation: Conversation, *, reply: Message, tree: selectors.Tree | None = None
) -> RequestParts:
    """What every request of `reply` is built from: one read of the database per reply. `tree`: the
    conversation's, with `reply` in it, when the caller has read it already."""
    owner = conversation.owner
    context = tools_module.ToolContext(owner.pk, owner.time_zone, conversation.pk)
    enabled = selectors.tool_names_enabled(tools_module.TOOL_NAMES)
    return RequestParts(
        system=conversation.system_prompt.strip(),
        thinking=conversation.thinking,
        tools=tools_module.tools_for(context, enabled),
        exchanges=_exchanges(conversation, reply, tree),
        project=project_prefix(project_in_reach(conversation)),
    )


def request_assemble(
    parts: RequestParts, *, model: ModelSpec, reply_blocks: list[dict] = (), left_out: int = 0,
    continuing: bool = False,
) -> dict:
    """Keyword arguments for `client.messages.stream(...)`: the history without its `left_out` oldest exchanges,
    then the reply so far. `continuing` sends the reply so far as the start of the answer (a prefill), to extend a
    reply cut by max_tokens; the API allows no thinking then, and no trailing whitespace (stripped when the
    continuation started, chat/services.py)."""
    turns: list[dict] = []
    for exchange in parts.exchanges[left_out:]:
        for turn in exchange.turns:
            _append(turns, turn["role"], turn["content"])
    for turn in reply_turns(reply_blocks):
        _append(turns, turn["role"], turn["content"])
    while turns and turns[0]["role"] == "assistant":
        turns.pop(0)
    if continuing and turns and turns[-1]["role"] == "assistant":
        turns[-1]["content"] = [block for block in turns[-1]["content"] if block["type"] != "thinking"]
    while turns and (turns[-1]["role"] == "assistant" and not continuing or not turns[-1]["content"]):
        turns.pop()
    if turns and parts.project.blocks:
        # The first turn is the user's (leading replies were dropped above): the files go before its blocks.
        turns[0]["content"][:0] = [dict(block) for block in parts.project.blocks]
    request = {"model": model.id, **output_options(model, parts.thinking, continuing), "messages": turns}
    system = [text for text in (parts.project.instructions, parts.system) if text]
    if system:
        request["system"] = [{"type": "text", "text": text} for text in system]
    if parts.tools:
        request["tools"] = tools_module.tool_definitions(parts.tools)
    cache_breakpoints_place(request, project_blocks=len(parts.project.blocks) if turns else 0)
    return request


def request_build(conversation: Conversation, *, reply: Message) -> dict:
    """The first request for `reply`, whole: what a new reply sends when its history fits."""
    spec = model_for(reply.model or conversation.model)
    return request_assemble(request_parts(conversation, reply=reply), model=spec)


def output_options(model: ModelSpec, thinking: str, continuing: bool) -> dict:
    """`max_tokens`, sized per model and capped by CHAT_MAX_OUTPUT_TOKENS, plus the thinking options.

    Thinking tokens count toward `max_tokens`, so thinking adds its budget to the answer's room. Models that take
    `enabled` get that room as `budget_tokens`; models that think adaptively decide how much to think, guided by
    the level as `output_config.effort` (the SDK warns that `enabled` is deprecated for them).
    """
    answer = min(settings.CHAT_MAX_OUTPUT_TOKENS, model.max_output)
    if continuing or not model.thinking or thinking not in THINKING_BUDGETS:
        return {"max_tokens": answer}
    max_tokens = min(model.max_output, answer + THINKING_BUDGETS[thinking])
    budget = max_tokens - answer
    if budget < MIN_THINKING_BUDGET:
        return {"max_tokens": answer}
    if model.thinking == "adaptive":
        return {"max_tokens": max_tokens, "thinking": {"type": "adaptive"}, "output_config": {"effort": thinking}}
    return {"max_tokens": max_tokens, "thinking": {"type": "enabled", "budget_tokens": budget}}


def cache_breakpoints_place(request: dict, *, project_blocks: int = 0) -> None:
    """The one owner of the API's four cache breakpoints. `project_blocks`: how many blocks at the start of the
    first turn are the project's files. The breakpoints go where they pay, in this order:

    1. the end of the fixed prefix (the system prompt, else the tools), which every turn shares;
    2. the project's last file, so the prefix of tools, instructions and files, the same bytes in every
       conversation of the project with the same system prompt, is written once and read by all of them;
    3. the end of the latest turn, so the cached prefix grows with the conversation and each request reads
       everything before it;
    4. the project's instructions, when the conversation's own system prompt follows them: conversations of
       the project with different system prompts still share the tools and the instructions;
    5. PDF documents of the conversation, newest first: the biggest blocks and the ones asked about again; their
       own breakpoint keeps them readable once the latest turn has moved on past the API's 20-block lookback
       (the project's files need none: the second breakpoint always covers them);
    6. the end of the tools, when a system prompt follows them and a breakpoint is left.

    So the project prefix always has its breakpoints (1, 2 and, with two system blocks, 4): whatever the
    conversation adds is cached after it, never in its place.
    """
    system, tools = request.get("system", []), request.get("tools", [])
    blocks = [block for message in request["messages"] for block in message["content"]]
    candidates = [
        system[-1] if system else tools[-1] if tools else None,
        blocks[project_blocks - 1] if project_blocks else None,
        blocks[-1] if blocks else None,
        *system[:-1],
        *(block for block in reversed(blocks[project_blocks:]) if block.get("type") == "document"),
        tools[-1] if system and tools else None,
    ]
    free = MAX_CACHE_BREAKPOINTS
    for block in candidates:
        if free and block is not None and "cache_control" not in block:
            block["cache_control"] = EPHEMERAL
            free -= 1


# --- the history --------------------------------------------------------------------------------------------


def _exchanges(conversation: Conversation, reply: Message, tree: selectors.Tree | None) -> list[Exchange]:
    """The history `reply` answers: exactly the path from the root down to the reply's parent (the other
    branches are never sent), so along one path every request starts with the same bytes and reads the cache.
    Three queries however long: the tree (unless given), the path's rows, their attachments."""
    groups: list[list[Message]] = []
    for message in selectors.path_messages(conversation, reply.parent_id, tree):
        if message.role == Message.Role.USER or not groups:
            groups.append([])
        groups[-1].append(message)
    return [
        Exchange(
            turns=[turn for message in group for turn in _message_turns(message)],
            message_count=len(group),
            tokens=sum(_estimated_tokens(message) for message in group),
            attachment_tokens=sum(_attachment_tokens(message) for message in group),
        )
        for group in groups
    ]


def _message_turns(message: Message) -> list[dict]:
    if message.role == Message.Role.ASSISTANT:
        return reply_turns(message.content)
    blocks = _user_blocks(message)
    return [{"role": "user", "content": blocks}] if blocks else []


def _user_blocks(message: Message) -> list[dict]:
    """The message's blocks as the API accepts them: attachment references expanded into image and document
    blocks from the stored files, no empty text blocks, no stale cache markers."""
    attachments = {attachment.pk: attachment for attachment in message.attachments.all()}
    blocks = []
    for block in message.content:
        if block.get("type") == "attachment":
            if block.get("attachment_id") in attachments:
                blocks.append(content_block(attachments[block["attachment_id"]]))
        elif _sendable(block):
            blocks.append(_cleaned(block))
    return blocks


def reply_turns(blocks: list[dict]) -> list[dict]:
    """An assistant message's blocks as API turns, tool results as user turns between them.

    What a stopped, failed or interrupted reply left half-done is left out, so the history stays valid: a
    tool_use that never got its result (the API refuses those), a thinking block whose signature never
    arrived, an empty text block. The rest is sent exactly as stored: thinking blocks with their signatures.
    """
    answered = {block.get("tool_use_id") for block in blocks if block.get("type") == "tool_result"}
    turns: list[dict] = []
    for block in blocks:
        if block.get("type") == "tool_use" and block.get("id") not in answered:
            continue
        if _sendable(block):
            _append(turns, "user" if block["type"] == "tool_result" else "assistant", [_cleaned(block)])
    return turns


def _sendable(block: dict) -> bool:
    if block.get("type") == "text":
        return bool(block.get("text", "").strip())
    if block.get("type") == "thinking":
        return bool(block.get("signature"))
    return True


def _cleaned(block: dict) -> dict:
    """The block without our bookkeeping, and its text encodable: a lone surrogate stored before frames were
    validated (chat/inbound.py refuses them now) becomes U+FFFD instead of breaking every later request."""
    cleaned = {key: value for key, value in block.items() if key not in ("cache_control", "partial_json")}
    if isinstance(cleaned.get("text"), str):
        cleaned["text"] = cleaned["text"].encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return cleaned


def _append(turns: list[dict], role: str, blocks: list[dict]) -> None:
    """Add blocks (copies: breakpoints are set on them) to the turns, merging into the last turn of the same role,
    so roles alternate even around a reply that said nothing."""
    copies = [dict(block) for block in blocks]
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(copies)
    else:
        turns.append({"role": role, "content": copies})


def _estimated_tokens(message: Message) -> int:
    """The stored JSON at four characters a token, plus the attachments' own estimates."""
    return estimate_tokens(json.dumps(message.content)) + _attachment_tokens(message)


def _attachment_tokens(message: Message) -> int:
    return sum(attachment.tokens for attachment in message.attachments.all())
