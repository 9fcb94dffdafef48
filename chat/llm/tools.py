"""The built-in tools the model may call: small, safe, and answering for one user only.

Each tool is an SDK function tool (`anthropic.beta_tool`): its JSON schema comes from the function's signature
and docstring, and `call()` validates the model's input against that schema before the function runs.

The SDK tools are built once per process, at import: building one (pydantic's validator and JSON schema from
the signature) cost about a millisecond, and more under load, for every tool of every turn, while nothing
in it depends on the turn. Whom a tool answers for (`current_time` reads the user's time zone,
`search_conversations` only their own messages) is bound per reply instead, by `tools_for`: a `BoundTool`
hands its context to the function through `answering_for` for the length of the call. Which tools are on is
read per reply too (admins switch them off in the admin, ToolSetting), never cached.

The loop that runs them is in chat/replies/generation.py.
"""

import ast
import asyncio
import json
import logging
import math
import operator
from contextvars import ContextVar
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pydantic
from anthropic import beta_tool
from anthropic.lib.tools import BetaFunctionTool, ToolError
from django.utils import timezone

from chat.db import db_async
from search import selectors as search_selectors

log = logging.getLogger(__name__)

TOOL_NAMES = ("calculator", "current_time", "search_conversations")

MAX_EXPRESSION_CHARS = 200
# Integers beyond this many bits (about 3,000 digits) are refused, and so is any power that would make one:
# `9**9**9` must fail at once, not after minutes of arithmetic.
MAX_INTEGER_BITS = 10_000
SEARCH_MATCHES = 5

OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


@dataclass(frozen=True)
class ToolContext:
    """Whom the tools answer for."""

    user_id: int
    time_zone: str
    conversation_id: int


# Whom the running tool call answers for: set by BoundTool.call, around the call only, in the thread it runs in.
answering_for: ContextVar[ToolContext] = ContextVar("answering_for")


@dataclass(frozen=True)
class BoundTool:
    """One of the process's SDK tools, answering for one context. It reads as the SDK tool does (`name`,
    `to_dict()`, `call(input)`), so the loop runs bound and unbound tools alike."""

    tool: BetaFunctionTool
    context: ToolContext

    @property
    def name(self) -> str:
        return self.tool.name

    def to_dict(self):
        return self.tool.to_dict()

    def call(self, input: object):
        token = answering_for.set(self.context)
        try:
            return self.tool.call(input)
        finally:
            answering_for.reset(token)


def tools_for(context: ToolContext, names: list[str]) -> list[BetaFunctionTool | BoundTool]:
    """The tools called `names` (in TOOL_NAMES order), answering for `context`. Nothing is built here."""
    return [_bound(TOOLS[name], context) for name in TOOL_NAMES if name in names]


def _bound(tool: BetaFunctionTool, context: ToolContext) -> BetaFunctionTool | BoundTool:
    return BoundTool(tool, context) if tool in CONTEXT_TOOLS else tool


def tool_definitions(tools: list) -> list[dict]:
    """The `tools` of a request. They come before everything else in the prompt, so they never vary by turn.

    Copies of each tool's definition, top level only (the request sets a cache breakpoint on the last one):
    the JSON schemas inside are the process's own, built once, and must not be changed.
    """
    return [dict(tool.to_dict()) for tool in tools]


async def tool_results(calls: list[dict], tools: list[BetaFunctionTool]) -> list[dict]:
    """One tool_result block for each tool_use block in `calls`, in the same order. The calls run concurrently
    (each in a worker thread with its own database connection); a failing call becomes an `is_error` result the
    model can read and act on, never an exception here."""
    by_name = {tool.name: tool for tool in tools}
    return list(await asyncio.gather(*(_result(call, by_name.get(call["name"])) for call in calls)))


async def _result(call: dict, tool: BetaFunctionTool | None) -> dict:
    try:
        if tool is None:
            raise ValueError(f"There is no tool called {call['name']!r} here.")
        content, is_error = str(await db_async(tool.call)(call.get("input") or {})), False
    except ValueError as error:  # a wrong input: say what, so the model can correct it
        content, is_error = _input_error(error), True
    except ToolError as error:  # a tool's own refusal (the memory tool's: chat/llm/memory_tool.py), for the model
        content, is_error = str(error), True
    except Exception:
        log.exception("tool %s failed", call.get("name"))
        content, is_error = "The tool failed unexpectedly.", True
    block = {"type": "tool_result", "tool_use_id": call["id"], "content": content}
    if is_error:
        block["is_error"] = True
    return block


def _input_error(error: ValueError) -> str:
    """The SDK raises "Invalid arguments for function X" from pydantic's ValidationError: name each field."""
    if isinstance(error.__cause__, pydantic.ValidationError):
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.__cause__.errors())
        return f"{error} ({fields})"
    return str(error)


# --- calculator ------------------------------------------------------------------------------------------


@beta_tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly. Use it for any arithmetic the answer depends on.

    Numbers, parentheses and the operators + - * / // % and ** (or ^); no names or functions.

    Args:
        expression: The expression, for example (17 * 23) / 4.
    """
    result = calculate(expression)
    return str(result) if isinstance(result, int) else format(result, ".12g")


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression, by walking its syntax tree: nothing is ever `eval`-ed, and only
    numbers and the arithmetic operators above are accepted. Raises ValueError for anything else."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"The expression is longer than {MAX_EXPRESSION_CHARS} characters.")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise ValueError(f"{expression!r} is not an arithmetic expression.") from None
    try:
        result = _evaluate(tree.body)
    except ZeroDivisionError:
        raise ValueError("Division by zero.") from None
    except OverflowError:
        raise ValueError("The result is too large.") from None
    if isinstance(result, complex):
        raise ValueError("The result is not a real number.")
    return result


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        result = OPERATORS[type(node.op)](left, right)
        if isinstance(result, int) and result.bit_length() > MAX_INTEGER_BITS:
            raise ValueError("The result is too large.")
        return result
    raise ValueError(f"Only numbers and arithmetic operators are allowed, not {type(node).__name__}.")


def _check_power(base: int | float, exponent: int | float) -> None:
    """Refuse a power whose result would pass MAX_INTEGER_BITS, before computing it."""
    if abs(base) > 1 and abs(exponent) * math.log2(abs(base)) > MAX_INTEGER_BITS:
        raise ValueError("The result is too large.")


# --- current_time ----------------------------------------------------------------------------------------


@beta_tool
def current_time() -> str:
    """The current date and time where the user is (their time zone setting)."""
    context = answering_for.get()
    now = timezone.now().astimezone(ZoneInfo(context.time_zone))
    return f"{now.isoformat(timespec='seconds')} ({now:%A}, {context.time_zone})"


# --- search_conversations --------------------------------------------------------------------------------


@beta_tool
def search_conversations(query: str) -> str:
    """Search the user's other conversations with you for a word or phrase.

    The newest matches come back with their conversation's title, date and an excerpt.

    Args:
        query: The word or phrase to look for.
    """
    context = answering_for.get()
    query = query.strip()
    if not query:
        raise ValueError("The query is empty.")
    # The sidebar's search (search/selectors.py), over messages only; a query it refuses is a ValueError.
    matches = search_selectors.search_hits(
        context.user_id, query, limit=SEARCH_MATCHES, titles=False,
        exclude_conversation_id=context.conversation_id,
    )
    if not matches:
        return f"No message in the user's other conversations contains {query!r}."
    return json.dumps([_search_match(hit) for hit in matches], ensure_ascii=False)


def _search_match(hit) -> dict:
    return {
        "conversation": hit.title or "Untitled",
        "date": hit.date.date().isoformat(),
        "author": "user" if hit.role == "user" else "assistant",
        "excerpt": hit.snippet_text(),
    }


# --- the process's tools ---------------------------------------------------------------------------------

TOOLS: dict[str, BetaFunctionTool] = {
    "calculator": calculator,
    "current_time": current_time,
    "search_conversations": search_conversations,
}
# The tools that read `answering_for`: they run only bound to a context, and what they return is the data of
# the user they answered for (their time zone, excerpts of their other conversations).
CONTEXT_TOOL_NAMES = ("current_time", "search_conversations")
CONTEXT_TOOLS = tuple(TOOLS[name] for name in CONTEXT_TOOL_NAMES)

WITHHELD = "Withheld: this tool read the owner's own data."


def context_results_withheld(content: list[dict]) -> list[dict]:
    """`content` (a message's blocks) with the result of every context tool call (and of the memory tool's,
    chat/llm/memory_tool.py: the owner's memory) replaced by WITHHELD: what a
    conversation shows or hands to anyone but its owner (a share, a share viewer's fork), since those results
    are the owner's own data. Other blocks, and the results of the other tools, are kept as they are."""
    withheld = {
        block.get("id") for block in content
        if block.get("type") == "tool_use" and block.get("name") in (*CONTEXT_TOOL_NAMES, "memory")
    }
    if not withheld:
        return content
    return [
        {**block, "content": WITHHELD}
        if block.get("type") == "tool_result" and block.get("tool_use_id") in withheld else block
        for block in content
    ]
