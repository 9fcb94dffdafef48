"""The memory tool (`memory_20250818`), offline: the calls Claude makes, answered by the application.

The storage is the client's: the model only sends `tool_use` blocks named `memory` and reads the results.
Like Claude, the offline model looks at its memory directory (`view /memories`) at the start of the first turn
that offers the tool, and at any turn that mentions remembering; when the user says "remember that X" it then
writes X to /memories/notes.md (`create`, or `insert` at the top when the view lists the file); once a result
is back it answers from it (reply.py quotes every tool result).
"""

import json
import re

from chat.llm.offline.blocks import ReplyBlock
from chat.llm.offline.features import offered_tool

TOOL_TYPE_PREFIX = "memory_"  # memory_20250818 and later versions: a client tool, though not `custom`
MEMORY_DIRECTORY = "/memories"
# The call that opens a turn: a look at the memory directory (also what a forced memory call does).
VIEW = {"command": "view", "path": MEMORY_DIRECTORY}
NOTES = "/memories/notes.md"
REMEMBER_THAT = re.compile(r"\bremember\s+that\s+(.+)", re.IGNORECASE | re.DOTALL)
MENTIONS_MEMORY = re.compile(r"\b(?:remember|recall|memory|memories|forget)\b", re.IGNORECASE)
MAX_NOTE_CHARS = 500


def next_call(tools: list[dict], messages: list[dict], question: str) -> ReplyBlock | None:
    """The memory call the reply opens with, or None. `question` is the last user turn's text."""
    if offered_tool(tools, TOOL_TYPE_PREFIX) is None:
        return None
    last = messages[-1]
    results = [block for block in last["content"] if block["type"] == "tool_result"]
    if not results:
        earlier = any(_memory_calls(message) for message in messages[:-1])
        if earlier and not MENTIONS_MEMORY.search(question):
            return None
        return _call(VIEW)
    if len(messages) < 2:
        return None
    answered = {call["id"]: call for call in _memory_calls(messages[-2])}
    for result in results:
        call = answered.get(result.get("tool_use_id"))
        if call is None or call.get("input", {}).get("command") != "view" or result.get("is_error"):
            continue
        if call["input"].get("path") == MEMORY_DIRECTORY and (note := _note(question)):
            if "notes.md" in _result_text(result):
                return _call(
                    {"command": "insert", "path": NOTES, "insert_line": 0, "insert_text": f"- {note}\n"}
                )
            return _call({"command": "create", "path": NOTES, "file_text": f"- {note}\n"})
    return None


def resumed_question(messages: list[dict]) -> str:
    """The user's question, when the last turn only answers memory calls: having looked at its memory, the
    model goes on with what was asked (other tools, server tools); "" otherwise."""
    if len(messages) < 2 or messages[-1]["role"] != "user":
        return ""
    memory_ids = {call["id"] for call in _memory_calls(messages[-2])}
    content = messages[-1]["content"]
    if not memory_ids or any(
        block["type"] != "tool_result" or block.get("tool_use_id") not in memory_ids for block in content
    ):
        return ""
    for message in reversed(messages):
        texts = [
            block["text"]
            for block in message["content"]
            if message["role"] == "user" and block["type"] == "text"
        ]
        if texts:
            return "\n\n".join(texts)
    return ""


def _call(arguments: dict) -> ReplyBlock:
    return ReplyBlock("tool_use", json.dumps(arguments), "memory")


def _note(question: str) -> str:
    match = REMEMBER_THAT.search(question)
    return " ".join(match.group(1).split()).rstrip(" .!")[:MAX_NOTE_CHARS] if match else ""


def _memory_calls(message: dict) -> list[dict]:
    if message["role"] != "assistant":
        return []
    return [
        block for block in message["content"] if block["type"] == "tool_use" and block.get("name") == "memory"
    ]


def _result_text(result: dict) -> str:
    content = result.get("content", "")
    if isinstance(content, list):
        return " ".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return str(content)
