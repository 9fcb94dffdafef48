"""What the offline model says: a deterministic markdown account of the request it received.

The same request always gets the same words. The reply quotes the question verbatim, counts the turns, names
the system prompt, describes every attachment and tool, and always has a list and a code block, so every part
of the rendering is exercised. It calls a tool only when the last user turn plainly asks for one that is
offered, and answers from tool results when that turn carries them, so tool loops run offline.
"""

import base64
import hashlib
import json
import re
from dataclasses import dataclass, replace

from chat.llm.offline.prompt import Prompt
from chat.llm.tokens import TOKEN_CHARS, estimate_tokens

EXPRESSION = re.compile(r"\d+(?:\.\d+)?(?:\s*[-+*/^%]\s*\d+(?:\.\d+)?)+")
TIME_QUESTION = re.compile(
    r"\bwhat(?:'s|\s+is)?\s+(?:the\s+)?(?:current\s+)?(?:time|date|day)\b|\btoday'?s\s+date\b", re.IGNORECASE
)
SEARCH_REQUEST = re.compile(
    r"\bsearch\s+(?:my|our|the)\s+conversations\s+for\s+(.+?)[\s.?!]*$", re.IGNORECASE
)
SYSTEM_PREVIEW_WORDS = 8
# A request for a conversation's title (chat/titles.py), as a model would read it: a system prompt that asks
# for a title of a few words, and the conversation quoted between <user> tags (the user's part) and others.
TITLE_REQUEST = re.compile(r"^\s*write a (?:short )?title of (\d+) to (\d+) words", re.IGNORECASE)
QUOTED_USER = re.compile(r"<user>\s*(.*?)\s*</user>", re.DOTALL)
TITLE_WORD = re.compile(r"[^\W_][\w'’-]*")
# Words a title leaves out, so it starts with what the message is about.
TITLE_STOP_WORDS = frozenset({
    "a", "an", "and", "are", "can", "could", "do", "does", "for", "from", "how", "i", "in", "is", "it", "me", "my",
    "of", "on", "or", "please", "the", "to", "what", "which", "with", "would", "you", "your",
})


@dataclass(frozen=True)
class ReplyBlock:
    type: str  # "thinking", "text" or "tool_use"
    text: str  # the thinking, the text, or the tool input as JSON: what streams, token by token
    tool_name: str = ""


def token_chunks(text: str) -> list[str]:
    """The reply's tokens, as `estimate_tokens` counts them: one chunk per streamed delta."""
    return [text[i : i + TOKEN_CHARS] for i in range(0, len(text), TOKEN_CHARS)]


def thinking_signature(thinking: str) -> str:
    """Deterministic stand-in for the API's opaque signature of a thinking block."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


def compose_reply(prompt: Prompt) -> tuple[list[ReplyBlock], str]:
    """The whole reply before max_tokens applies, and its natural stop reason."""
    if asked := TITLE_REQUEST.match(prompt.system):
        return [ReplyBlock("text", _title(_text_of(prompt.messages[0]), int(asked.group(2))))], "end_turn"
    last = prompt.messages[-1]
    asks = _text_of(last) if last["role"] == "user" and not _tool_results(last) else ""
    calls = _tool_calls(asks, prompt.tool_names) if asks and prompt.tools_allowed else []
    user_turns = [message for message in prompt.messages if message["role"] == "user"]
    question = next((_text_of(message) for message in reversed(user_turns) if _text_of(message)), "")
    turn = sum(1 for message in user_turns if not _only_tool_results(message))

    blocks = [ReplyBlock("thinking", _thinking(question, turn, calls))] if prompt.thinking else []
    if calls:
        names = list(dict.fromkeys(name for name, _ in calls))
        noun = "tool" if len(names) == 1 else "tools"
        blocks.append(ReplyBlock("text", f"Let me use the {' and '.join(f'`{n}`' for n in names)} {noun}."))
        blocks += [ReplyBlock("tool_use", json.dumps(arguments), name) for name, arguments in calls]
        return blocks, "tool_use"
    blocks.append(ReplyBlock("text", _describe(prompt, question, turn)))
    return blocks, "end_turn"


def fit_reply(blocks: list[ReplyBlock], stop_reason: str, max_tokens: int) -> tuple[list[ReplyBlock], str]:
    """Cuts the reply at `max_tokens` as the API does.

    A tool call that does not fit whole is left out, so every tool_use block sent has complete input.
    """
    fitted, budget = [], max_tokens
    for block in blocks:
        tokens = estimate_tokens(block.text)
        if tokens <= budget:
            fitted.append(block)
            budget -= tokens
            continue
        if block.type != "tool_use" and budget > 0:
            fitted.append(replace(block, text=block.text[: budget * TOKEN_CHARS]))
        return fitted, "max_tokens"
    return fitted, stop_reason


def _title(conversation: str, most_words: int) -> str:
    """The first significant words of the user's part of the conversation, title-cased (a word written in
    capitals, such as an acronym, is kept as it is); "New conversation" when it has none."""
    quoted = QUOTED_USER.search(conversation)
    words = TITLE_WORD.findall(quoted.group(1) if quoted else conversation)
    significant = [word for word in words if word.lower() not in TITLE_STOP_WORDS] or words
    chosen = [word if word.isupper() else word[:1].upper() + word[1:] for word in significant[:most_words]]
    return " ".join(chosen) or "New conversation"


def _tool_calls(text: str, offered: list[str]) -> list[tuple[str, dict]]:
    calls: list[tuple[str, dict]] = []
    if "calculator" in offered:
        calls += [("calculator", {"expression": match.group()}) for match in EXPRESSION.finditer(text)]
    if "current_time" in offered and TIME_QUESTION.search(text):
        calls.append(("current_time", {}))
    if "search_conversations" in offered and (match := SEARCH_REQUEST.search(text.strip())):
        calls.append(("search_conversations", {"query": match.group(1).strip("\"'“”")}))
    return calls


def _describe(prompt: Prompt, question: str, turn: int) -> str:
    lines = [f"**Offline model** · `{prompt.model}`", ""]
    for sentence in _tool_result_sentences(prompt.messages):
        lines += [sentence, ""]
    if question:
        lines += [f"> {line}" if line else ">" for line in question.splitlines()] + [""]
    else:
        lines += ["You sent no text, only attachments.", ""]
    lines += [f"This is turn {turn} of our conversation. {_system_sentence(prompt.system)}", ""]
    lines += ["What I received:", ""]
    lines.append(f"- Your message: {len(question)} characters, about {estimate_tokens(question)} tokens.")
    counts = {"image": 0, "document": 0}
    for attachment in prompt.attachments:
        counts[attachment.kind] += 1
        lines.append(f"- {attachment.kind.capitalize()} {counts[attachment.kind]}: {attachment.description}.")
    tools = ", ".join(f"`{name}`" for name in prompt.tool_names)
    lines.append(f"- Tools offered: {tools}." if tools else "- No tools offered.")
    summary = {"turn": turn, "images": counts["image"], "documents": counts["document"]}
    summary["tools"] = len(prompt.tool_names)
    lines += ["", "```python", f"received = {summary!r}", "```", ""]
    lines.append(
        "I describe your request instead of answering it: I am a deterministic stand-in for Claude,"
        " for demos, development and tests. Set `ANTHROPIC_API_KEY` to talk to Claude."
    )
    return "\n".join(lines)


def _tool_result_sentences(messages: list[dict]) -> list[str]:
    """One sentence per tool result in the last user turn, naming the tool that the previous turn called."""
    if len(messages) < 2 or messages[-1]["role"] != "user":
        return []
    calls = [block for block in messages[-2]["content"] if block["type"] == "tool_use"]
    names = {call.get("id"): call.get("name") for call in calls}
    sentences = []
    for result in _tool_results(messages[-1]):
        content = result.get("content", "")
        if isinstance(content, list):
            blocks = [block for block in content if isinstance(block, dict) and block.get("type") == "text"]
            content = " ".join(str(block.get("text", "")) for block in blocks)
        name = names.get(result.get("tool_use_id"), "tool")
        verb = "reported an error:" if result.get("is_error") else "returned"
        sentences.append(f"The {name} {verb} {content or 'nothing'}.")
    return sentences


def _thinking(question: str, turn: int, calls: list[tuple[str, dict]]) -> str:
    first_line = question.splitlines()[0] if question else ""
    plan = (
        f"I will call {', '.join(name for name, _ in calls)}."
        if calls
        else "I will describe what I received, with a list and a code block."
    )
    return f'The user wrote: "{first_line}". This is turn {turn}. {plan}'


def _system_sentence(system: str) -> str:
    if not system.strip():
        return "There is no system prompt."
    words = system.split()
    preview = " ".join(words[:SYSTEM_PREVIEW_WORDS]) + ("…" if len(words) > SYSTEM_PREVIEW_WORDS else "")
    return f'The system prompt begins: "{preview}"'


def _text_of(message: dict) -> str:
    return "\n\n".join(block["text"] for block in message["content"] if block["type"] == "text")


def _tool_results(message: dict) -> list[dict]:
    return [block for block in message["content"] if block["type"] == "tool_result"]


def _only_tool_results(message: dict) -> bool:
    return all(block["type"] == "tool_result" for block in message["content"])
