"""The three kinds of conversation an import reads, each turned into a Draft: what
`imports.conversation_store` writes, already checked and cut to size. Everything read here is untrusted: a
field of the wrong type is taken as absent, and a conversation whose shape is wrong (messages that do not
form a tree, too many of them) is skipped with the reason (`Skipped`), never half-imported.

- This app's JSON export (chat/exports.py, docs/protocol.md "Export"): the whole tree, with every field an
  export carries except usage and cost (nothing was spent here).
- claude.ai's data export: `conversations.json`, a list of {uuid, name, created_at, chat_messages: [{uuid,
  sender, text, content, attachments, files, created_at, parent_message_uuid}]}.
- ChatGPT's data export: `conversations.json`, a list of {title, create_time, update_time, current_node,
  mapping: {id: {parent, message: {author: {role}, content: {content_type, parts}, create_time, metadata}}}}.

Messages from claude.ai and ChatGPT become text blocks only (nothing else of theirs could be sent back to the
model as it is): a tool call, an image or a file becomes a one-line note; reasoning, ChatGPT's code runs and
browsing are left out; claude.ai's extracted text of an attached document is kept, as a text block of the
user's message.
"""

import heapq
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings

from chat.exports import FORMAT, VERSION
from chat.models import Message, ThinkingLevel

MODEL_LENGTH = Message._meta.get_field("model").max_length
STOP_REASON_LENGTH = Message._meta.get_field("stop_reason").max_length
ROUTE_REASON_LENGTH = Message._meta.get_field("route_reason").max_length
SYSTEM_PROMPT_LENGTH = 100_000  # what the settings dialog accepts (chat/forms.py)
LARGEST_INTEGER = 2_147_483_647  # of a PositiveIntegerField on every database
# claude.ai's messages answer this made-up id when they are the first of their conversation.
CLAUDE_ROOT = "00000000-0000-4000-8000-000000000000"
# The block fields kept from this app's export, by type: those the Messages API accepts back in a history.
# Anything else (a block type the app never stores, a field it never wrote) is left out, so an edited file
# cannot make every later request of the conversation fail.
TOOL_ID_LENGTH = 200  # longer than any the API hands out
BLOCK_FIELDS = {
    "text": ("text", "citations"),
    "thinking": ("thinking",),
    "redacted_thinking": ("data",),
    "tool_use": ("id", "name", "input"),
    "tool_result": ("tool_use_id", "content", "is_error"),
}
REQUIRED = {
    "text": ("text", str),
    "thinking": ("thinking", str),
    "redacted_thinking": ("data", str),
    "tool_use": ("name", str),
    "tool_result": ("tool_use_id", str),
}
KEPT_STATUSES = (
    Message.Status.COMPLETE,
    Message.Status.STOPPED,
    Message.Status.FAILED,
    Message.Status.INTERRUPTED,
)
STILL_WRITING = "This reply was still being written when the conversation was exported: this is what it had."


class Skipped(Exception):
    """A conversation left out of the import; `reason` completes "skipped because …"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotAConversation(Skipped):
    """A document of no kind this app reads."""


@dataclass
class DraftMessage:
    key: object  # the source's id for it
    parent: object | None  # the key of the kept message it answers
    role: str
    content: list[dict]
    created_at: datetime | None = None
    status: str = Message.Status.COMPLETE
    error: str = ""
    stop_reason: str = ""
    model: str = ""
    first_token_ms: int | None = None
    duration_ms: int | None = None
    route_reason: str = ""
    notices: list[str] = field(default_factory=list)


@dataclass
class Draft:
    title: str
    messages: list[DraftMessage]  # a parent always before its children
    leaf: object | None  # the key of the active path's last message
    created_at: datetime | None = None
    updated_at: datetime | None = None
    model: str = ""  # the conversation's; empty: the owner's default
    system_prompt: str | None = None  # None: the owner's default
    thinking: str = ThinkingLevel.OFF


def title_of(value) -> str:
    """A name for a conversation that is skipped, as far as the file gives one."""
    if not isinstance(value, dict):
        return ""
    inner = value.get("conversation")
    for candidate in (
        (inner or {}).get("title") if isinstance(inner, dict) else None,
        value.get("name"),
        value.get("title"),
    ):
        if isinstance(candidate, str) and candidate.strip():
            return " ".join(candidate.split())[:80]
    return ""


def draft_from(value) -> Draft:
    if not isinstance(value, dict):
        raise NotAConversation("it is not a conversation")
    if value.get("format") == FORMAT:
        return _from_this_app(value)
    if "chat_messages" in value:
        return _from_claude(value)
    if "mapping" in value:
        return _from_chatgpt(value)
    raise NotAConversation("it is not a conversation from this app, claude.ai or ChatGPT")


# --- this app -----------------------------------------------------------------------------------------------


def _from_this_app(value: dict) -> Draft:
    version = value.get("version")
    if not _is_count(version) or version < 1:
        raise Skipped("its export has no format version")
    if version > VERSION:
        raise Skipped(f"it was exported by a newer version of this app (format version {version})")
    conversation, records = value.get("conversation"), value.get("messages")
    if not isinstance(conversation, dict) or not isinstance(records, list):
        raise Skipped("its export has no conversation and messages")
    _count_check(len(records))
    keys: set = set()
    messages = []
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise Skipped(f"its message {number} is not an object")
        key, parent, role = record.get("id"), record.get("parent"), record.get("role")
        if not _is_key(key) or key in keys:
            raise Skipped(f"its message {number} has no id of its own")
        if parent is not None and (not _is_key(parent) or parent not in keys):
            raise Skipped(f"its message {number} answers a message that does not come before it")
        if role not in Message.Role.values:
            raise Skipped(f"its message {number} is neither the user's nor the assistant's")
        if not isinstance(record.get("content"), list):
            raise Skipped(f"its message {number} has no content")
        keys.add(key)
        messages.append(_message_of_this_app(record, key, parent, role))
    leaf = conversation.get("current_leaf")
    return Draft(
        title=_text(conversation.get("title")),
        messages=messages,
        leaf=leaf if _is_key(leaf) and leaf in keys else (messages[-1].key if messages else None),
        created_at=_moment(conversation.get("created_at")),
        updated_at=_moment(conversation.get("updated_at")),
        model=_text(conversation.get("model"))[:MODEL_LENGTH],
        system_prompt=_text(conversation.get("system_prompt"))[:SYSTEM_PROMPT_LENGTH],
        thinking=_choice(conversation.get("thinking"), ThinkingLevel.values, ThinkingLevel.OFF),
    )


def _message_of_this_app(record: dict, key, parent, role: str) -> DraftMessage:
    attachments = {
        item["id"]: item
        for item in _list(record.get("attachments"))
        if isinstance(item, dict) and _is_key(item.get("id"))
    }
    message = DraftMessage(
        key=key,
        parent=parent,
        role=role,
        created_at=_moment(record.get("created_at")),
        content=_capped(_blocks_of_this_app(record["content"], attachments, role)),
    )
    if role == Message.Role.ASSISTANT:
        status = record.get("status")
        if status == Message.Status.STREAMING:
            message.status, message.error = Message.Status.INTERRUPTED, STILL_WRITING
        elif status in KEPT_STATUSES:
            message.status, message.error = status, _text(record.get("error"))
        message.model = _text(record.get("model"))[:MODEL_LENGTH]
        message.stop_reason = _text(record.get("stop_reason"))[:STOP_REASON_LENGTH]
        message.first_token_ms = (
            record.get("first_token_ms") if _is_count(record.get("first_token_ms")) else None
        )
        message.duration_ms = record.get("duration_ms") if _is_count(record.get("duration_ms")) else None
        message.route_reason = _text(record.get("route_reason"))[:ROUTE_REASON_LENGTH]
        message.notices = [notice for notice in _list(record.get("notices")) if isinstance(notice, str)]
    return message


def _blocks_of_this_app(blocks: list, attachments: dict, role: str) -> list[dict]:
    """The message's blocks as the API takes them back, each checked down to its nested values: one the API
    would refuse would make every later request of the conversation fail. A user's message keeps its text
    only (tool calls, results and thinking are the assistant's); a tool result must answer a tool call kept
    before it in the same message, as the app stores them (chat/llm/request.py `reply_turns`), and no two tool
    calls of a message share an id (the API refuses both)."""
    kept, tool_ids, answerable = [], set(), set()
    for block in blocks:
        block = _block_of_this_app(block, attachments)
        kind = block["type"]
        if role == Message.Role.USER and kind != "text":
            block = _note(
                f"A part of this message ({kind}) that a user's message cannot hold was left out on import."
            )
        elif kind == "tool_use" and block["id"] in tool_ids:
            block = _note("A tool call whose id an earlier one of this message had was left out on import.")
        elif kind == "tool_use":
            tool_ids.add(block["id"])
            answerable.add(block["id"])
        elif kind == "tool_result" and block["tool_use_id"] not in answerable:
            block = _note("A tool result that answers no tool call of this message was left out on import.")
        elif kind == "tool_result":
            answerable.discard(block["tool_use_id"])
        kept.append(block)
    return kept


def _block_of_this_app(block, attachments: dict) -> dict:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "attachment":
        reference = block.get("attachment_id")
        attachment = attachments.get(reference, {}) if _is_key(reference) else {}
        name, what = _text(attachment.get("name")) or "A file", _text(attachment.get("kind"))
        return _note(
            f"{name}{f' ({what})' if what else ''} was attached; an export does not hold files, so it "
            "was not imported."
        )
    required = REQUIRED.get(kind)
    if required is None or not isinstance(block.get(required[0]), required[1]):
        shown = f" ({kind})" if isinstance(kind, str) and kind.isidentifier() and len(kind) <= 40 else ""
        return _note(f"A part of this message{shown} that this app does not know was left out on import.")
    kept = {"type": kind, **{name: block[name] for name in BLOCK_FIELDS[kind] if name in block}}
    if kind == "tool_use" and not (_is_tool_id(kept.get("id")) and isinstance(kept.get("input"), dict)):
        return _note("A tool call that was not complete was left out on import.")
    if kind == "tool_result":
        if not _is_tool_id(kept["tool_use_id"]):
            return _note("A tool result that names no tool call was left out on import.")
        kept["content"] = _result_text(kept.get("content"))
        if not isinstance(kept.get("is_error", False), bool):
            del kept["is_error"]
    # Citations point into the documents and search results of the request that wrote them, which an import
    # does not bring (files are never imported): the text is kept, its citations are not.
    kept.pop("citations", None)
    return kept


def _is_tool_id(value) -> bool:
    """The shape the API gives a tool call's id and requires of it back (`^[a-zA-Z0-9_-]+$`)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= TOOL_ID_LENGTH
        and value.isascii()
        and all(character.isalnum() or character in "_-" for character in value)
    )


def _result_text(content) -> str:
    """A tool result's content as the app stores its own (chat/llm/tools.py): a string. From a list, its text
    blocks' text, each other part a one-line note; anything else is empty."""
    if isinstance(content, str):
        return content
    return "\n\n".join(
        item["text"]
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str)
        else "[A part of this tool result that was not text was left out on import.]"
        for item in _list(content)
    )


# --- claude.ai ----------------------------------------------------------------------------------------------


def _from_claude(value: dict) -> Draft:
    records = value.get("chat_messages")
    if not isinstance(records, list):
        raise Skipped("its chat_messages is not a list")
    _count_check(len(records))
    nodes = []
    for position, record in enumerate(records):
        if not isinstance(record, dict) or record.get("sender") not in ("human", "assistant"):
            continue
        key = record.get("uuid") if _is_key(record.get("uuid")) else ("position", position)
        parent = record.get("parent_message_uuid")
        if "parent_message_uuid" not in record:  # older exports: one line, in order
            parent = nodes[-1][1] if nodes else None
        elif parent == CLAUDE_ROOT or not _is_key(parent):
            parent = None
        role = Message.Role.USER if record["sender"] == "human" else Message.Role.ASSISTANT
        created_at = _moment(record.get("created_at"))
        content = _capped(_claude_blocks(record, role))
        nodes.append((created_at, key, parent, DraftMessage(key, None, role, content, created_at)))
    ordered = _tree_ordered(nodes)
    leaf = nodes[-1][1] if nodes else None  # the export names no current branch: its newest message ends it
    messages, leaf = _kept(ordered, leaf, lambda message: bool(message.content))
    return Draft(
        title=_text(value.get("name")),
        messages=messages,
        leaf=leaf,
        created_at=_moment(value.get("created_at")),
        updated_at=_moment(value.get("updated_at")),
    )


def _claude_blocks(record: dict, role: str) -> list[dict]:
    blocks = []
    if role == Message.Role.USER:
        for attachment in _list(record.get("attachments")):
            if isinstance(attachment, dict):
                name = _text(attachment.get("file_name")) or "a document"
                extracted = _text(attachment.get("extracted_content"))
                if extracted:
                    blocks.append(
                        {
                            "type": "text",
                            "text": f"Attached: {name} (its text, as claude.ai read it)\n\n{extracted}",
                        }
                    )
                else:
                    blocks.append(_note(f"{name} was attached; it was not imported."))
        for item in _list(record.get("files")):
            if isinstance(item, dict):
                name = _text(item.get("file_name")) or "A file"
                blocks.append(_note(f"{name} was attached; files are not imported."))
    content = record.get("content")
    texts = []
    if isinstance(content, list) and content:
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text" and _text(block.get("text")).strip():
                texts.append({"type": "text", "text": block["text"]})
            elif kind == "tool_use":
                name = _text(block.get("name"))
                texts.append(
                    _note(
                        f"Used the tool {name}; tool calls are not imported."
                        if name
                        else "A tool call was not imported."
                    )
                )
    elif _text(record.get("text")).strip():
        texts.append({"type": "text", "text": record["text"]})
    return blocks + texts


# --- ChatGPT ------------------------------------------------------------------------------------------------


def _from_chatgpt(value: dict) -> Draft:
    mapping = value.get("mapping")
    if not isinstance(mapping, dict):
        raise Skipped("its mapping is not an object")
    nodes = []
    for key, node in mapping.items():
        if not isinstance(node, dict):
            continue
        parent = node.get("parent") if _is_key(node.get("parent")) else None
        record = node.get("message") if isinstance(node.get("message"), dict) else {}
        message = _chatgpt_message(key, record)
        nodes.append((_epoch(record.get("create_time")), key, parent, message))
    ordered = _tree_ordered(nodes)
    current = value.get("current_node")
    messages, leaf = _kept(
        ordered, current if _is_key(current) else None, lambda message: message is not None
    )
    _count_check(len(messages))
    return Draft(
        title=_text(value.get("title")),
        messages=messages,
        leaf=leaf,
        created_at=_epoch(value.get("create_time")),
        updated_at=_epoch(value.get("update_time")),
    )


def _chatgpt_message(key, record: dict) -> DraftMessage | None:
    """The node's message as a draft, or None for one the ChatGPT page does not show: the empty root, system
    and tool messages, hidden context, a reply addressed to a tool (code it ran), reasoning."""
    author = record.get("author") if isinstance(record.get("author"), dict) else {}
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    content = record.get("content") if isinstance(record.get("content"), dict) else {}
    role = author.get("role")
    if role not in ("user", "assistant") or metadata.get("is_visually_hidden_from_conversation"):
        return None
    if record.get("recipient", "all") != "all" or content.get("content_type") not in (
        "text",
        "multimodal_text",
    ):
        return None
    blocks, texts = [], []
    for part in _list(content.get("parts")):
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and _text(part.get("text")):  # an audio transcription
            texts.append(part["text"])
        elif isinstance(part, dict):
            blocks.append(_note("An image or file was attached; it was not imported."))
    text = "\n\n".join(text for text in texts if text.strip())
    if text:
        blocks.append({"type": "text", "text": text})
    if not text and role == "assistant":
        return None
    created_at = _epoch(record.get("create_time"))
    model = _text(metadata.get("model_slug"))[:MODEL_LENGTH] if role == "assistant" else ""
    return DraftMessage(key, None, role, _capped(blocks), created_at, model=model) if blocks else None


# --- trees --------------------------------------------------------------------------------------------------


def _tree_ordered(nodes: list[tuple]) -> list[tuple]:
    """`nodes` (created_at, key, parent key, message) in an order with every parent before its children, and
    otherwise oldest first (so ids, handed out in this order, follow time as the app's own do). A node whose
    parent is not among them is a root; nodes in a cycle, which no root reaches, are left out."""
    by_key = {}
    for node in nodes:
        by_key.setdefault(node[1], node)
    children: dict = {}
    roots = []
    for position, node in enumerate(by_key.values()):
        entry = (_sort_key(node[0]), position, node)
        if node[2] is not None and node[2] in by_key and node[2] != node[1]:
            children.setdefault(node[2], []).append(entry)
        else:
            roots.append(entry)
    heapq.heapify(roots)
    ordered = []
    while roots:
        _, _, node = heapq.heappop(roots)
        ordered.append(node)
        for entry in children.pop(node[1], ()):
            heapq.heappush(roots, entry)
    return ordered


def _sort_key(moment: datetime | None) -> float:
    return moment.timestamp() if moment else math.inf


def _kept(ordered: list[tuple], leaf, keep) -> tuple[list[DraftMessage], object | None]:
    """The messages of `ordered` that `keep` accepts, each answering its nearest kept ancestor (the ones left
    out are skipped over, their children re-parented), and where the active path ends: the kept message at
    `leaf` or nearest above it, else the newest kept message."""
    anchor: dict = {}  # each node's nearest kept ancestor-or-self
    messages = []
    for _, key, parent, message in ordered:
        above = anchor.get(parent) if parent is not None else None
        if message is not None and keep(message):
            message.parent = above
            messages.append(message)
            anchor[key] = key
        else:
            anchor[key] = above
    end = anchor.get(leaf) if leaf is not None else None
    if end is None and messages:
        end = max(
            messages, key=lambda message: _sort_key(message.created_at) if message.created_at else -math.inf
        ).key
    return messages, end


# --- fields -------------------------------------------------------------------------------------------------


def _count_check(count: int) -> None:
    if count > settings.IMPORT_MAX_MESSAGES:
        raise Skipped(f"it has {count:,} messages, over the {settings.IMPORT_MAX_MESSAGES:,} an import takes")


CAPPED_FIELDS = {"text": "text", "thinking": "thinking", "tool_result": "content"}


def _capped(blocks: list[dict]) -> list[dict]:
    """The blocks with at most IMPORT_MAX_MESSAGE_CHARS characters of text, thinking and tool results in all:
    the block that goes over is cut, the text and thinking blocks after it are left out (a tool result is kept,
    empty, so that its call stays answered), and a note says so."""
    room = settings.IMPORT_MAX_MESSAGE_CHARS
    kept, total = [], 0
    for block in blocks:
        field_name = CAPPED_FIELDS.get(block.get("type"))
        size = len(block[field_name]) if field_name else 0
        total += size
        if field_name and room <= 0 and block["type"] != "tool_result":
            continue
        if field_name and size > max(room, 0):
            block = {**block, field_name: block[field_name][: max(room, 0)]}
        room -= size
        kept.append(block)
    if total > settings.IMPORT_MAX_MESSAGE_CHARS:
        kept.append(
            _note(
                f"Cut on import: this message had {total:,} characters, and only the first "
                f"{settings.IMPORT_MAX_MESSAGE_CHARS:,} are kept."
            )
        )
    return kept


NOTE_START = "_["


def _note(sentence: str) -> dict:
    """What an import says in place of something it could not bring, as a text block of the message."""
    return {"type": "text", "text": f"{NOTE_START}{sentence}]_"}


def first_words(draft: Draft) -> str:
    """The text of the draft's first user message that is the user's own (not a note): its title when the
    source gave none, as the app titles a conversation by its first message."""
    for message in draft.messages:
        if message.role == Message.Role.USER:
            for block in message.content:
                if (
                    block.get("type") == "text"
                    and not block["text"].startswith(NOTE_START)
                    and block["text"].strip()
                ):
                    return block["text"]
    return ""


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _choice(value, choices: list[str], default: str) -> str:
    return value if isinstance(value, str) and value in choices else default


def _is_key(value) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and 0 < len(value) <= 200
    )


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= LARGEST_INTEGER


def _moment(value) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone), or None for anything else."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _epoch(value) -> datetime | None:
    """Seconds since 1970 as ChatGPT writes them, or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
