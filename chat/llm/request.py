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

Prompt caching: `cache_breakpoints_place` alone decides where the API's four breakpoints go, and
chat/llm/cache_plan.py which of them are held for 1 hour (the conversation's `cache_ttl`, or a long document).
Nothing volatile (timestamps, ids) is ever placed in a request, so two turns share a byte-identical prefix, and
so do two conversations of one project.
"""

import json
from dataclasses import dataclass

from django.conf import settings

from chat import selectors
from chat.attachments.blocks import content_block
from chat.llm import server_tools as server_tools_module
from chat.llm import mcp
from chat.llm import tools as tools_module
from chat.llm.memory_tool import memory_tools_for
from chat.llm.cache_plan import ONE_HOUR, breakpoint_ttls, document_wants_one_hour
from chat.llm.catalog import ModelSpec
from chat.llm.tokens import estimate_tokens
from chat.llm.registry import model_for
from chat.models import Attachment, CacheTtl, Conversation, Message, ThinkingLevel
from projects.prompts import NO_PROJECT, ProjectPrefix, project_prefix
from projects.selectors import project_in_reach

EPHEMERAL = {"type": "ephemeral"}
EPHEMERAL_1H = {"type": "ephemeral", "ttl": "1h"}
MAX_CACHE_BREAKPOINTS = 4
# Thinking tokens per level, on top of the answer's own `max_tokens`. Models that think adaptively get the
# level as their effort instead, with the same room.
THINKING_BUDGETS = {
    ThinkingLevel.LOW: 2_048, ThinkingLevel.MEDIUM: 8_192, ThinkingLevel.HIGH: 16_384, ThinkingLevel.MAX: 32_768,
}
MIN_THINKING_BUDGET = 1_024
# What a continuation asks of the models that take no prefill (request_assemble).
CONTINUE_REQUEST = "Continue exactly where your last reply stopped, without repeating any of it."


@dataclass(frozen=True)
class Exchange:
    turns: list[dict]
    message_count: int
    tokens: int  # a local estimate, to choose how many exchanges to leave out before counting again
    attachment_tokens: int = 0  # the stored estimates of its attachments (chat/attachments/)
    long_documents: frozenset[str] = frozenset()  # `long_document_data` of its attachments
    documents: tuple[int, ...] = ()  # the attachment ids of its document blocks, in order (chat/citations.py)
    attachments: tuple[Attachment, ...] = ()  # the rows its attachment blocks were built from (filesapi/)


@dataclass(frozen=True)
class RequestParts:
    system: str
    thinking: str
    tools: list  # the tools the reply may run, bound to whom it answers for (chat/llm/tools.py)
    exchanges: list[Exchange]
    project: ProjectPrefix = NO_PROJECT  # sent first, before the system prompt and the history; never left out
    cache_ttl: str = CacheTtl.FIVE_MINUTES  # the conversation's; long documents get 1 hour regardless
    long_documents: frozenset[str] = frozenset()  # the project's and the history's (`long_document_data`)
    # The server tools an admin turned on (chat/llm/server_tools.py), offered where the model supports them, and
    # the owner's approximate location for web search (None when their settings give no place).
    server_tools: tuple = ()
    location: dict | None = None
    mcp_servers: tuple[mcp.McpOffer, ...] = ()  # the remote MCP servers offered (chat/llm/mcp.py)

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        """The rows of every attachment block the requests may carry, the project's first: the Files API sends
        them by file_id (filesapi/services.py)."""
        history = (attachment for exchange in self.exchanges for attachment in exchange.attachments)
        return (*self.project.files, *history)


def request_parts(
    conversation: Conversation, *, reply: Message, tree: selectors.Tree | None = None
) -> RequestParts:
    """What every request of `reply` is built from: one read of the database per reply. `tree`: the
    conversation's, with `reply` in it, when the caller has read it already."""
    owner = conversation.owner
    context = tools_module.ToolContext(owner.pk, owner.time_zone, conversation.pk)
    enabled = selectors.tool_names_enabled(tools_module.TOOL_NAMES)
    exchanges = _exchanges(conversation, reply, tree)
    project = project_prefix(project_in_reach(conversation))
    return RequestParts(
        system=conversation.system_prompt.strip(),
        thinking=conversation.thinking,
        tools=[*tools_module.tools_for(context, enabled), *memory_tools_for(owner)],
        exchanges=exchanges,
        project=project,
        cache_ttl=conversation.cache_ttl,
        long_documents=_project_long_documents(project).union(
            *(exchange.long_documents for exchange in exchanges)
        ),
        server_tools=server_tools_module.server_tools_enabled(),
        location=server_tools_module.user_location(owner),
        mcp_servers=mcp.mcp_offers_for(owner),
    )


def request_assemble(
    parts: RequestParts, *, model: ModelSpec, reply_blocks: list[dict] = (), left_out: int = 0,
    continuing: bool = False, resuming: bool = False, server_tools_used: dict[str, int] | None = None,
) -> dict:
    """Keyword arguments for `client.messages.stream(...)`: the history without its `left_out` oldest exchanges,
    then the reply so far. `continuing` sends the reply so far as the start of the answer (a prefill), to extend a
    reply cut by max_tokens; the API allows no thinking then, and no trailing whitespace (stripped when the
    continuation started, chat/services.py). `resuming`: the last response stopped with `pause_turn` (a long
    server tool turn the API paused): the reply so far goes back as it is, thinking included, and the model
    carries on from it (the API's documented way to continue a paused turn). `server_tools_used`: the reply's
    server tool use so far, which a later request of the reply offers no more of (chat/llm/server_tools.py)."""
    turns: list[dict] = []
    for exchange in parts.exchanges[left_out:]:
        for turn in exchange.turns:
            _append(turns, turn["role"], mcp.mcp_blocks_sendable(turn["content"], parts.mcp_servers))
    for turn in reply_turns(reply_blocks, paused=resuming):
        _append(turns, turn["role"], mcp.mcp_blocks_sendable(turn["content"], parts.mcp_servers))
    while turns and turns[0]["role"] == "assistant":
        turns.pop(0)
    if continuing and turns and turns[-1]["role"] == "assistant":
        turns[-1]["content"] = [block for block in turns[-1]["content"] if block["type"] != "thinking"]
    keep_last = continuing or resuming
    last = turns[-1]["content"][-1] if turns and turns[-1]["role"] == "assistant" and turns[-1]["content"] else {}
    if resuming and last.get("type") == "text":
        last["text"] = last["text"].rstrip()  # the API refuses a final assistant turn ending in whitespace
    while turns and (turns[-1]["role"] == "assistant" and not keep_last or not turns[-1]["content"]):
        turns.pop()
    if continuing and not model.prefill and turns and turns[-1]["role"] == "assistant":
        # Claude 4.6 and later refuse a prefill (400): the reply so far stays a turn of its own, and a user turn
        # asks for the rest, which the generation joins onto the cut text as it would a prefill's.
        turns.append({"role": "user", "content": [{"type": "text", "text": CONTINUE_REQUEST}]})
    if turns and parts.project.blocks:
        # The first turn is the user's (leading replies were dropped above): the files go before its blocks.
        turns[0]["content"][:0] = [dict(block) for block in parts.project.blocks]
    request = {"model": model.id, **output_options(model, parts.thinking, continuing), "messages": turns}
    system = [text for text in (parts.project.instructions, parts.system) if text]
    if system:
        request["system"] = [{"type": "text", "text": text} for text in system]
    tools = [
        *tools_module.tool_definitions(parts.tools),
        *server_tools_module.server_tool_definitions(
            parts.server_tools, supported=model.server_tools, location=parts.location, used=server_tools_used
        ),
    ]
    if tools:
        request["tools"] = tools
    mcp.mcp_request_add(request, parts.mcp_servers)
    cache_breakpoints_place(
        request, project_blocks=len(parts.project.blocks) if turns else 0, ttl=parts.cache_ttl,
        long_documents=parts.long_documents,
    )
    return request


def request_build(conversation: Conversation, *, reply: Message) -> dict:
    """The first request for `reply`, whole: what a new reply sends when its history fits."""
    spec = model_for(reply.model or conversation.model)
    return request_assemble(request_parts(conversation, reply=reply), model=spec)


def thinking_choices(model: ModelSpec | None) -> list[tuple[str, str]]:
    """The thinking levels `model` takes, as the conversation's Settings dialog offers them: effort levels for a
    model that thinks adaptively, token budgets for one that takes `enabled`, only "Off" for one that does not
    think. Effort "max" only for a model that takes it (`ModelSpec.max_effort`); never for a token budget, nor for
    Auto, which may pick a model without it. None (Auto, which picks a model per message): the levels by name."""
    if model is None:
        return [choice for choice in ThinkingLevel.choices if choice[0] != ThinkingLevel.MAX]
    if not model.thinking:
        return [(ThinkingLevel.OFF, "Off: this model does not think")]
    if model.thinking == "adaptive":
        levels = [(level, f"{level.label} effort") for level in THINKING_BUDGETS
                  if level != ThinkingLevel.MAX or model.max_effort]
    else:
        levels = [(level, f"{level.label} ({budget:,}-token budget)") for level, budget in THINKING_BUDGETS.items()
                  if level != ThinkingLevel.MAX]
    return [(ThinkingLevel.OFF, ThinkingLevel.OFF.label), *levels]


def output_options(model: ModelSpec, thinking: str, continuing: bool) -> dict:
    """`max_tokens`, sized per model and capped by CHAT_MAX_OUTPUT_TOKENS, plus the thinking options.

    Thinking tokens count toward `max_tokens`, so thinking adds its budget to the answer's room. Models that take
    `enabled` get that room as `budget_tokens`; models that think adaptively decide how much to think, guided by
    the level as `output_config.effort` (the SDK warns that `enabled` is deprecated for them). "max" goes only to a
    model that takes it (the API refuses it elsewhere); any other model, budget models included, thinks at "high"
    (a conversation set to max on one model and moved to another, or Auto's pick).
    """
    if thinking == ThinkingLevel.MAX and not (model.thinking == "adaptive" and model.max_effort):
        thinking = ThinkingLevel.HIGH
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


def cache_breakpoints_place(
    request: dict, *, project_blocks: int = 0, ttl: str = CacheTtl.FIVE_MINUTES,
    long_documents: frozenset[str] = frozenset(),
) -> None:
    """The one owner of the API's four cache breakpoints. `project_blocks`: how many blocks at the start of the
    first turn are the project's files. `ttl`: the conversation's cache TTL; `long_documents`: the data of the
    documents that earn 1 hour on their own (`long_document_data`). The breakpoints go where they pay, in this
    order:

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
    conversation adds is cached after it, never in its place. Then chat/llm/cache_plan.py `breakpoint_ttls`
    says which are held for 1 hour: all of them, or the run up to the one that covers the last long document.
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
    in_cache_order = [*tools, *system, *blocks]
    placed = [index for index, block in enumerate(in_cache_order) if "cache_control" in block]
    long = [index for index, block in enumerate(in_cache_order) if _document_data(block) in long_documents]
    for index, block_ttl in zip(placed, breakpoint_ttls(placed, long, ttl)):
        if block_ttl == ONE_HOUR:
            in_cache_order[index]["cache_control"] = dict(EPHEMERAL_1H)


def long_document_data(attachments) -> frozenset[str]:
    """The data of those of `attachments` that are documents long enough for a 1-hour breakpoint
    (cache_plan.py `document_wants_one_hour`): how `cache_breakpoints_place` knows their blocks, which carry no
    token count of their own. The encoded files' cache serves the block, built a moment before."""
    minimum = settings.CACHE_1H_MIN_TOKENS
    chosen = (
        content_block(attachment) for attachment in attachments
        if attachment.kind != Attachment.Kind.IMAGE and document_wants_one_hour(attachment.tokens, minimum)
    )
    return frozenset(data for data in map(_document_data, chosen) if data is not None)


def _project_long_documents(project: ProjectPrefix) -> frozenset[str]:
    """`long_document_data` of the project's files, from the blocks the prefix has already built."""
    minimum = settings.CACHE_1H_MIN_TOKENS
    chosen = (
        block for block, tokens in zip(project.blocks, project.block_tokens)
        if document_wants_one_hour(tokens, minimum)
    )
    return frozenset(data for data in map(_document_data, chosen) if data is not None)


def _document_data(block: dict) -> str | None:
    source = block.get("source") if block.get("type") == "document" else None
    return source.get("data") if isinstance(source, dict) else None


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
    documents = [[] for _ in groups]
    return [
        Exchange(
            turns=[turn for message in group for turn in _message_turns(message, documents[index])],
            documents=tuple(documents[index]),
            message_count=len(group),
            tokens=sum(_estimated_tokens(message) for message in group),
            attachment_tokens=sum(_attachment_tokens(message) for message in group),
            long_documents=long_document_data(
                attachment for message in group for attachment in message.attachments.all()
            ),
            attachments=tuple(attachment for message in group for attachment in message.attachments.all()),
        )
        for index, group in enumerate(groups)
    ]


def _message_turns(message: Message, documents: list[int]) -> list[dict]:
    if message.role == Message.Role.ASSISTANT:
        return reply_turns(message.content)
    blocks = _user_blocks(message, documents)
    return [{"role": "user", "content": blocks}] if blocks else []


def _user_blocks(message: Message, documents: list[int]) -> list[dict]:
    """The message's blocks as the API accepts them: attachment references expanded into image and document
    blocks from the stored files, no empty text blocks, no stale cache markers. The ids of the attachments
    that became document blocks are added to `documents`, in order: what a citation's `document_index`
    counts (chat/citations.py)."""
    attachments = {attachment.pk: attachment for attachment in message.attachments.all()}
    blocks = []
    for block in message.content:
        if block.get("type") == "attachment":
            if block.get("attachment_id") in attachments:
                blocks.append(content_block(attachments[block["attachment_id"]]))
                if blocks[-1]["type"] == "document":
                    documents.append(block["attachment_id"])
        elif _sendable(block):
            blocks.append(_cleaned(block))
    return blocks


def reply_turns(blocks: list[dict], *, paused: bool = False) -> list[dict]:
    """An assistant message's blocks as API turns, tool results as user turns between them.

    What a stopped, failed or interrupted reply left half-done is left out, so the history stays valid: a
    tool_use that never got its result (the API refuses those), a thinking block whose signature never
    arrived, an empty text block, and a server tool call (chat/llm/server_tools.py) without its result block,
    unless the turn is `paused` (`pause_turn`: the API finishes that call when the turn goes back to it). The
    rest is sent exactly as stored: thinking blocks with their signatures, server tool results with their
    encrypted content.
    """
    answered = {block.get("tool_use_id") for block in blocks if block.get("type") == "tool_result"}
    server_answered = {block.get("tool_use_id") for block in blocks if block.get("type", "").endswith("_tool_result")}
    turns: list[dict] = []
    for block in blocks:
        if block.get("type") == "tool_use" and block.get("id") not in answered:
            continue
        if block.get("type") == "server_tool_use" and block.get("id") not in server_answered and not paused:
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
    # A text block's citations stay with us: their `document_index` counted the documents of the request that
    # made them, which a later request may number differently (chat/citations.py).
    cleaned = {
        key: value for key, value in block.items()
        if key not in ("cache_control", "partial_json") and not (key == "citations" and block.get("type") == "text")
    }
    if isinstance(cleaned.get("text"), str):
        cleaned["text"] = cleaned["text"].encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return cleaned


def _append(turns: list[dict], role: str, blocks: list[dict]) -> None:
    """Add blocks (copies: breakpoints are set on them) to the turns, merging into the last turn of the same role,
    so roles alternate even around a reply that said nothing."""
    copies = [dict(block) for block in blocks]
    if not copies:  # a turn whose blocks were all left out (chat/llm/mcp.py) adds nothing
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(copies)
    else:
        turns.append({"role": role, "content": copies})


def _estimated_tokens(message: Message) -> int:
    """The stored JSON at four characters a token, plus the attachments' own estimates."""
    return estimate_tokens(json.dumps(message.content)) + _attachment_tokens(message)


def _attachment_tokens(message: Message) -> int:
    return sum(attachment.tokens for attachment in message.attachments.all())
