"""What the offline model says: a deterministic markdown account of the request it received.

The same request always gets the same words. The reply quotes the question verbatim, counts the turns, names
the system prompt, describes every attachment and tool, and always has a list and a code block, so every part
of the rendering is exercised. It calls a tool only when the last user turn plainly asks for one that is
offered or `tool_choice` forces one (choice.py), and answers from tool results when that turn carries them, so
tool loops run offline. One sentence varies with what was asked (a question, a request to write, code, another
language); a structured output is JSON made from its schema; a request that continues a cut reply gets the
rest of it.
"""

import base64
import hashlib
import json
import re
from dataclasses import replace

from chat.llm.offline.blocks import TOOL_CALLS, ReplyBlock
from chat.llm.offline.choice import choose_calls, forced_server_tool, is_forced
from chat.llm.offline.features import citations, code_execution, mcp, memory, web
from chat.llm.offline.prompt import Prompt
from chat.llm.offline.structured import value_for_schema
from chat.llm.tokens import TOKEN_CHARS, estimate_tokens

# An arithmetic expression. It starts where a run of digits starts (the lookbehind), so a long run of digits is
# scanned once, not once from each of its digits (which made a 20,000-digit message cost seconds).
EXPRESSION = re.compile(r"(?<!\d)\d+(?:\.\d+)?(?:\s*[-+*/^%]\s*\d+(?:\.\d+)?)+")
TIME_QUESTION = re.compile(
    r"\bwhat(?:'s|\s+is)?\s+(?:the\s+)?(?:current\s+)?(?:time|date|day)\b|\btoday'?s\s+date\b", re.IGNORECASE
)
# "Search my conversations for X": the query is the rest of the message (one line), without its trailing
# punctuation, which _search_query strips in code: a lazy gap before `[\s.?!]*$` cost a message's length squared.
SEARCH_REQUEST = re.compile(r"\bsearch\s+(?:my|our|the)\s+conversations\s+for\s+", re.IGNORECASE)
SYSTEM_PREVIEW_WORDS = 8
# A user turn that asks to go on, as the app sends one after a reply cut by max_tokens to the models that take
# no prefill (chat/llm/request.py).
CONTINUE_REQUEST = re.compile(r"^\s*(?:please\s+)?(?:continue|go on|keep going)\b", re.IGNORECASE)
CONTINUE_REQUEST_LONGEST = 200
# What a message asks for, for a reply that varies with it (the first that matches wins).
ASKS_FOR_CODE = re.compile(
    r"```|\b(?:code|function|class|python|javascript|typescript|sql|regex|bug|compile|script)\b", re.IGNORECASE
)
ASKS_TO_WRITE = re.compile(
    r"^\s*(?:please\s+)?(?:write|draft|compose|rewrite|summari[sz]e|translate|create|make)\b", re.IGNORECASE
)
ASKS_A_QUESTION = re.compile(
    r"\?\s*$|^\s*(?:what|why|how|when|where|who|which|is|are|can|could|should|do|does)\b", re.IGNORECASE
)
# A few languages told apart by their commonest words; a message needs three of one language's words.
STOP_WORDS = {
    "French": frozenset({"le", "la", "les", "et", "est", "que", "je", "vous", "pour", "une", "des", "pas", "dans"}),
    "Spanish": frozenset({"el", "los", "las", "que", "es", "por", "para", "una", "con", "del", "como", "pero"}),
    "German": frozenset({"der", "die", "das", "und", "ist", "nicht", "ich", "sie", "mit", "ein", "eine", "auf"}),
    "Italian": frozenset({"il", "gli", "che", "non", "per", "una", "sono", "della", "come", "anche", "questo"}),
}
LANGUAGE_MIN_WORDS = 3
# The offline model's label in each language it detects.
LABELS = {
    "French": "Je suis le modèle hors ligne : je décris votre message au lieu d'y répondre.",
    "Spanish": "Soy el modelo sin conexión: describo su mensaje en lugar de responderlo.",
    "German": "Ich bin das Offline-Modell: Ich beschreibe Ihre Nachricht, statt sie zu beantworten.",
    "Italian": "Sono il modello offline: descrivo il tuo messaggio invece di rispondere.",
}
WORD = re.compile(r"[^\W\d_]+")
# A request for a conversation's title (chat/titles.py), as a model would read it: a system prompt that asks
# for a title of a few words, and the conversation quoted between <user> tags (the user's part) and others.
TITLE_REQUEST = re.compile(r"^\s*write a (?:short )?title of (\d+) to (\d+) words", re.IGNORECASE)
TITLE_WORD = re.compile(r"[^\W_][\w'’-]*")
# Words a title leaves out, so it starts with what the message is about.
TITLE_STOP_WORDS = frozenset({
    "a", "an", "and", "are", "can", "could", "do", "does", "for", "from", "how", "i", "in", "is", "it", "me", "my",
    "of", "on", "or", "please", "the", "to", "what", "which", "with", "would", "you", "your",
})


def token_chunks(text: str) -> list[str]:
    """The reply's tokens, as `estimate_tokens` counts them: one chunk per streamed delta."""
    return [text[i : i + TOKEN_CHARS] for i in range(0, len(text), TOKEN_CHARS)]


def thinking_signature(thinking: str) -> str:
    """Deterministic stand-in for the API's opaque signature of a thinking block."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


def compose_reply(prompt: Prompt, *, pausing: bool = True) -> tuple[list[ReplyBlock], str]:
    """The whole reply before max_tokens applies, and its natural stop reason. `pausing`: whether a turn that
    asks for a long server-tool task may pause after its calls (pause_turn), as the API pauses long turns."""
    if asked := TITLE_REQUEST.match(prompt.system):
        return [ReplyBlock("text", _title(_text_of(prompt.messages[0]), int(asked.group(2))))], "end_turn"
    if (resumed := _resumed_pause(prompt)) is not None:
        return resumed
    if (continued := _continuation(prompt)) is not None:
        return continued
    last = prompt.messages[-1]
    asks = _text_of(last) if last["role"] == "user" and not _tool_results(last) else ""
    asks = asks or memory.resumed_question(prompt.messages)
    forced = is_forced(prompt.tool_choice)
    app_calls = _tool_calls(asks, prompt.tool_names) if asks else []
    calls = choose_calls(asks, prompt.tools, prompt.tool_choice, app_calls) if asks or forced else []
    user_turns = [message for message in prompt.messages if message["role"] == "user"]
    question = next((_text_of(message) for message in reversed(user_turns) if _text_of(message)), "")
    turn = sum(1 for message in user_turns if not _only_tool_results(message))
    recall = memory.next_call(prompt.tools, prompt.messages, question) if prompt.tools_allowed else None
    if recall and not forced:  # the memory tool's calls open the turn; the app answers them
        thinking = [ReplyBlock("thinking", _thinking(question, turn, [("memory", {})]))] if prompt.thinking else []
        return [*thinking, ReplyBlock("text", "Let me check my memory."), recall], "tool_use"

    blocks = [ReplyBlock("thinking", _thinking(question, turn, calls))] if prompt.thinking else []
    forced_server = forced_server_tool(prompt.tools, prompt.tool_choice)
    steps = _server_steps(prompt, asks, forced_server) if (asks or forced_server) and prompt.tools_allowed else []
    blocks += steps
    if steps and pausing and web.asks_to_pause(asks):
        return blocks, "pause_turn"
    if calls:
        names = list(dict.fromkeys(name for name, _ in calls))
        noun = "tool" if len(names) == 1 else "tools"
        if not forced:  # a forced call opens the turn: the API prefills it with the tool_use
            blocks.append(ReplyBlock("text", f"Let me use the {' and '.join(f'`{n}`' for n in names)} {noun}."))
        blocks += [ReplyBlock("tool_use", json.dumps(arguments), name) for name, arguments in calls]
        return blocks, "tool_use"
    if prompt.output_schema is not None:
        answer = value_for_schema(prompt.output_schema, every_property=True)
        blocks.append(ReplyBlock("text", json.dumps(answer, ensure_ascii=False)))
        return blocks, "end_turn"
    blocks += citations.quote_blocks(_cited(prompt, blocks))
    blocks.append(ReplyBlock("text", _describe(prompt, question, turn)))
    return blocks, "end_turn"


def _server_steps(prompt: Prompt, asks: str, forced: dict | None = None) -> list[ReplyBlock]:
    """The server tools' calls and results (web search, web fetch, code execution, MCP) that the turn asks
    for, which the API runs within the reply. `forced`: the server tool that tool_choice forces, called even
    when the turn does not ask for it; the reply then opens with its call (no text before it)."""
    steps = [
        *web.search_blocks(prompt.tools, asks, forced=forced),
        *web.fetch_blocks(prompt.tools, asks, forced=forced),
        *code_execution.code_blocks(prompt.tools, prompt.messages, asks, forced=forced),
        *mcp.mcp_blocks(prompt.tools, prompt.mcp_servers, asks),
    ]
    if forced is None:
        return steps
    first_call = next((index for index, block in enumerate(steps) if block.type != "text"), len(steps))
    return [block for index, block in enumerate(steps) if index >= first_call or block.type != "text"]


def _resumed_pause(prompt: Prompt) -> tuple[list[ReplyBlock], str] | None:
    """The rest of a turn that paused (pause_turn), which comes back as it was, as the last assistant turn:
    the reply goes on after its server tools' results, with what the whole turn would have said after them.
    None when the request resumes no paused turn."""
    last = prompt.messages[-1]
    if last["role"] != "assistant" or not web.is_server_result(last["content"][-1]):
        return None
    blocks, stop_reason = compose_reply(replace(prompt, messages=prompt.messages[:-1], thinking=False), pausing=False)
    server_side = ("server_tool_use", "mcp_tool_use")
    called = [index for index, block in enumerate(blocks) if block.whole is not None or block.type in server_side]
    return blocks[called[-1] + 1 :] if called else blocks, stop_reason


def _cited(prompt: Prompt, steps: list[ReplyBlock]) -> list[dict]:
    """What the answer cites: passages of the documents that have citations enabled, the search results, and
    the pages fetched with citations enabled."""
    documents = citations.quotes(citations.cited_documents(prompt.messages))
    searched = citations.search_citations(steps)
    fetched = citations.fetch_citations(steps, citations.document_count(prompt.messages))
    return [*documents, *searched, *fetched]


def stop_at_sequences(blocks: list[ReplyBlock], sequences: list[str]) -> tuple[list[ReplyBlock], str | None]:
    """The reply up to the first stop sequence in its text, which is left out, as the API stops; the sequence
    that matched, or None. Only text is searched: thinking and tool input never stop a reply."""
    for index, block in enumerate(blocks):
        if block.type != "text":
            continue
        found = [(block.text.find(sequence), sequence) for sequence in sequences if sequence in block.text]
        if found:
            at, sequence = min(found)
            cut = [replace(block, text=block.text[:at])] if at else []
            return [*blocks[:index], *cut], sequence
    return blocks, None


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
        if block.type not in TOOL_CALLS and block.whole is None and budget > 0:
            fitted.append(replace(block, text=block.text[: budget * TOKEN_CHARS]))
        return fitted, "max_tokens"
    return fitted, stop_reason


def _continuation(prompt: Prompt) -> tuple[list[ReplyBlock], str] | None:
    """The rest of a reply that was cut, when the request asks to go on: the reply so far as a final assistant
    turn (a prefill), or followed by a short user turn that says "continue". When what was said is the start
    of what this model would say, the reply goes on from there; another prefill gets the whole answer. None
    when the request continues nothing."""
    messages = prompt.messages
    if messages[-1]["role"] == "assistant":
        before, said = messages[:-1], _text_of(messages[-1])
    elif (
        len(messages) >= 3
        and not _tool_results(messages[-1])
        and len(asked := _text_of(messages[-1])) <= CONTINUE_REQUEST_LONGEST
        and CONTINUE_REQUEST.match(asked)
    ):
        before, said = messages[:-2], _text_of(messages[-2])
    else:
        return None
    if not said:
        return None
    blocks, stop_reason = compose_reply(replace(prompt, messages=before, thinking=False))
    for index, block in enumerate(blocks):
        if block.type == "text" and block.text.startswith(said):
            rest = [*([replace(block, text=block.text[len(said) :])] if len(block.text) > len(said) else [])]
            rest += blocks[index + 1 :]
            return (rest, stop_reason) if rest else None  # nothing left: a new request, answered afresh
    return blocks, stop_reason


def _title(conversation: str, most_words: int) -> str:
    """The first significant words of the user's part of the conversation, title-cased (a word written in
    capitals, such as an acronym, is kept as it is); "New conversation" when it has none."""
    quoted = _quoted_user(conversation)
    words = TITLE_WORD.findall(quoted if quoted is not None else conversation)
    significant = [word for word in words if word.lower() not in TITLE_STOP_WORDS] or words
    chosen = [word if word.isupper() else word[:1].upper() + word[1:] for word in significant[:most_words]]
    return " ".join(chosen) or "New conversation"


def _tool_calls(text: str, offered: list[str]) -> list[tuple[str, dict]]:
    calls: list[tuple[str, dict]] = []
    if "calculator" in offered:
        calls += [("calculator", {"expression": match.group()}) for match in EXPRESSION.finditer(text)]
    if "current_time" in offered and TIME_QUESTION.search(text):
        calls.append(("current_time", {}))
    if "search_conversations" in offered and (query := _search_query(text)):
        calls.append(("search_conversations", {"query": query.strip("\"'“”")}))
    return calls


def _quoted_user(conversation: str) -> str | None:
    """The user's part of a title request, between the first <user> and the </user> after it (found with
    str.find: a lazy regex gap cost the text's length squared when the closing tag was missing)."""
    start = conversation.find("<user>")
    end = conversation.find("</user>", start) if start >= 0 else -1
    return conversation[start + len("<user>") : end].strip() if end >= 0 else None


def _search_query(text: str) -> str:
    """The query of "search my conversations for X" when X ends the message on one line; "" otherwise."""
    end = len(text)
    while end and (text[end - 1].isspace() or text[end - 1] in ".?!"):
        end -= 1
    body = text[:end].lstrip()
    last_line = body.rfind("\n")
    for match in SEARCH_REQUEST.finditer(body):
        if last_line < match.end() < len(body):
            return body[match.end() :]
    return ""


def _describe(prompt: Prompt, question: str, turn: int) -> str:
    lines = [f"**Offline model** · `{prompt.model}`", ""]
    for sentence in _tool_result_sentences(prompt.messages):
        lines += [sentence, ""]
    if question:
        lines += [f"> {line}" if line else ">" for line in question.splitlines()] + [""]
    else:
        lines += ["You sent no text, only attachments.", ""]
    if question:
        lines += [_kind_sentence(question), ""]
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


def _kind_sentence(question: str) -> str:
    """One sentence that says what kind of message this is, in its language when it is one of LABELS'."""
    words = [word.lower() for word in WORD.findall(question)]
    language = max(STOP_WORDS, key=lambda name: sum(word in STOP_WORDS[name] for word in words))
    if sum(word in STOP_WORDS[language] for word in words) >= LANGUAGE_MIN_WORDS:
        return f"You wrote in {language}. {LABELS[language]}"
    if ASKS_FOR_CODE.search(question):
        return "You asked about code: a real model would answer with code; I show a code block below instead."
    if ASKS_TO_WRITE.match(question):
        return "You asked me to write something: a real model would write it; I list what I received instead."
    if ASKS_A_QUESTION.search(question):
        return "You asked a question: a real model would answer it; I describe what I received instead."
    return "You told me something: a real model would reply to it; I describe what I received instead."


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
