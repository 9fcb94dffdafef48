"""A conversation as a download: Markdown to read, JSON to keep or import (docs/protocol.md, "Export").

The JSON holds the whole tree (every version of every message, each with its parent); the Markdown only the
active path, the one the page shows. Both are built as a stream of text parts from a fixed number of
queries, whatever the conversation's length: its messages and its attachments' names, each read with
`QuerySet.iterator()` in message order and merged as they go (the Markdown first reads the tree's shape to
find the path), so memory holds one message (and its attachments) at a time and a long conversation costs no
more queries than a short one. The caller must have authorised the conversation
(selectors.conversation_for_user).
"""

import json
import re
from collections.abc import Iterator
from datetime import UTC

from django.utils import timezone

from chat import citations
from chat.frames import USAGE_FIELDS, status_shown, timestamp
from chat.models import Attachment, Conversation, Message
from chat.selectors import Tree

FORMAT = "claude-chat-export"
VERSION = 1
# Fields the app keeps for itself, not part of the conversation: a thinking block's signature (opaque, only
# valid for the API account that made it) and a tool call's JSON while it streams.
INTERNAL_BLOCK_FIELDS = ("signature", "partial_json")
TOOL_SUMMARY_CHARS = 200
FILES_NOTE = "Attached files are listed by name; their contents are not included in this export."
VERSIONS_NOTE = (
    "This is the conversation as it is shown; the other versions of its messages are in the JSON export."
)
UNSAFE_IN_FILENAMES = re.compile(r'[\x00-\x1f\x7f\\/:*?"<>|]+')

STATUS_NOTES = {
    Message.Status.STREAMING: "Still being written when exported: this is what was saved so far.",
    Message.Status.STOPPED: "Stopped before it finished.",
    Message.Status.FAILED: "This reply failed.",
    Message.Status.INTERRUPTED: "Interrupted before it finished.",
}


def export_filename(conversation: Conversation, extension: str) -> str:
    """The title, minus what a file system or a header would trip on; quoted by the response (RFC 6266)."""
    stem = UNSAFE_IN_FILENAMES.sub("-", " ".join(str(conversation).split())).strip(" .-")[:80]
    return f"{stem or f'conversation-{conversation.pk}'}.{extension}"


def messages_with_attachments(
    conversation: Conversation, message_ids: list[int] | None = None
) -> Iterator[tuple[Message, list[dict]]]:
    """Each message in id order (only those of `message_ids` when given: a path) with its attachments, in the
    order its content refers to them: two queries. Id order puts a parent before its children."""
    messages = conversation.messages.order_by("id")
    attachments = Attachment.objects.filter(message__conversation=conversation)
    if message_ids is not None:
        messages = messages.filter(pk__in=message_ids)
        attachments = attachments.filter(message_id__in=message_ids)
    messages = messages.iterator()
    attachments = (
        attachments.order_by("message_id", "id")
        .values("message_id", "id", "name", "kind", "media_type", "size")
        .iterator()
    )
    pending = next(attachments, None)
    for message in messages:
        own = []
        # Both streams are ordered by message id; an attachment of an earlier message cannot follow.
        while pending is not None and pending["message_id"] <= message.pk:
            if pending["message_id"] == message.pk:
                own.append({key: value for key, value in pending.items() if key != "message_id"})
            pending = next(attachments, None)
        position = {block.get("attachment_id"): index for index, block in enumerate(message.content)}
        own.sort(key=lambda attachment: position.get(attachment["id"], len(position)))
        yield message, own


# --- JSON -----------------------------------------------------------------------------------------------------


def json_parts(conversation: Conversation) -> Iterator[str]:
    head = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timestamp(timezone.now()),
        "conversation": {
            "id": conversation.pk,
            "title": conversation.title,
            "model": conversation.model,
            "system_prompt": conversation.system_prompt,
            "thinking": conversation.thinking,
            "current_leaf": conversation.current_leaf_id,
            "created_at": timestamp(conversation.created_at),
            "updated_at": timestamp(conversation.updated_at),
        },
    }
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "messages": ['
    for index, (message, attachments) in enumerate(messages_with_attachments(conversation)):
        yield ("," if index else "") + "\n" + json.dumps(message_record(message, attachments), ensure_ascii=False)
    yield "\n]}\n"


def message_record(message: Message, attachments: list[dict]) -> dict:
    status, error = status_shown(message)
    record = {
        "id": message.pk,
        "parent": message.parent_id,
        "role": message.role,
        "status": status,
        "created_at": timestamp(message.created_at),
        "content": [
            {key: value for key, value in block.items() if key not in INTERNAL_BLOCK_FIELDS}
            for block in message.content
        ],
        "attachments": attachments,
    }
    if message.role == Message.Role.ASSISTANT:
        record |= {
            "model": message.model,
            "stop_reason": message.stop_reason,
            "error": error,
            "usage": {name: getattr(message, name) for name in USAGE_FIELDS},
            "cost": f"{message.cost:.6f}",
            "first_token_ms": message.first_token_ms,
            "duration_ms": message.duration_ms,
            "route_reason": message.route_reason,
            "notices": list(message.notices),
        }
    return record


# --- Markdown -------------------------------------------------------------------------------------------------


def markdown_parts(conversation: Conversation) -> Iterator[str]:
    """The conversation to read: its active path, as the page shows it. Message text is kept verbatim (it is
    Markdown already); thinking is left out (it is in the JSON export); tool steps are one line each; the
    title, which a user typed, is escaped so it stays a heading."""
    tree = Tree.of(conversation.pk)
    path = tree.path_to(conversation.current_leaf_id)
    yield (
        f"# {_inline(str(conversation))}\n\n"
        f"- Model: {_inline(conversation.model)}\n"
        f"- Created: {_when(conversation.created_at)}\n"
        f"- Updated: {_when(conversation.updated_at)}\n"
        f"- Exported: {_when(timezone.now())}\n\n"
        f"_{FILES_NOTE}_\n"
        + (f"\n_{VERSIONS_NOTE}_\n" if len(path) < len(tree.parents) else "")
    )
    for message, attachments in messages_with_attachments(conversation, path):
        yield _message_markdown(message, attachments, tree.siblings(message.pk))


def _message_markdown(message: Message, attachments: list[dict], versions: list[int]) -> str:
    who = "You" if message.role == Message.Role.USER else f"Assistant ({_inline(message.model or 'unknown model')})"
    version = f" · version {versions.index(message.pk) + 1} of {len(versions)}" if len(versions) > 1 else ""
    lines = [f"\n---\n\n## {who} · {_when(message.created_at)}{version}\n"]
    status, error = status_shown(message)
    if note := STATUS_NOTES.get(status):
        lines.append(f"> **{note}**" + (f" {_inline(error)}" if error else "") + "\n")
    lines.extend(f"- Attached: {_inline(a['name'])} ({a['kind']}, file not included)" for a in attachments)
    if attachments:
        lines.append("")
    thought = False
    footnotes: list[str] = []
    previous = None
    for block in message.content:
        kind, follows_text, previous = block.get("type"), previous == "text", block.get("type")
        if kind == "text":
            text = _cited_text(block, footnotes, message.pk)
            if follows_text:  # one span of a cited reply: the sentence goes on
                lines[-1] = lines[-1][:-1] + text + "\n"
            else:
                lines.append(text + "\n")
        elif kind in ("thinking", "redacted_thinking"):
            thought = True
        elif kind == "tool_use":
            lines.append(f"> Tool call: {_inline(block.get('name', ''))} {_short(json.dumps(block.get('input', {})))}\n")
        elif kind == "mcp_tool_use":  # a remote MCP server's tool, called by the API (chat/llm/mcp.py)
            call = f"{_inline(block.get('server_name', ''))}: {_inline(block.get('name', ''))}"
            lines.append(f"> Asked {call} {_short(json.dumps(block.get('input', {})))}\n")
        elif kind in ("tool_result", "mcp_tool_result"):
            label = "Tool error" if block.get("is_error") else "Tool result"
            lines.append(f"> {label}: {_short(_result_text(block.get('content')))}\n")
        elif kind == "server_tool_use":  # web search, web fetch, code execution (chat/llm/server_tools.py)
            call = f"{_inline(block.get('name', ''))} {_short(json.dumps(block.get('input', {})))}"
            lines.append(f"> Server tool: {call}\n")
        elif kind == "web_search_tool_result" and isinstance(block.get("content"), list):
            lines.extend(
                f"> Source: {_short(str(source.get('title') or ''))} ({_inline(str(source.get('url') or ''))})\n"
                for source in block["content"] if isinstance(source, dict)
            )
    if thought:
        lines.insert(1, "_Thinking omitted (it is in the JSON export)._\n")
    if footnotes:
        lines.append("\n".join(footnotes) + "\n")
    return "\n".join(lines)


def _cited_text(block: dict, footnotes: list[str], message_id: int) -> str:
    """A text block's text with a footnote reference after it for each citation (chat/citations.py), numbered
    within the message; labels are the whole document's in Markdown, so the message's id keeps them apart."""
    text = block.get("text", "")
    refs = ""
    for citation in block.get("citations") or []:
        label = f"{message_id}-{len(footnotes) + 1}"
        footnotes.append(citations.markdown_footnote(label, citation))
        refs += f"[^{label}]"
    if not refs:
        return text
    stripped = text.rstrip()
    return stripped + refs + text[len(stripped):]


def _result_text(content) -> str:
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _short(text: str) -> str:
    text = _inline(text)
    return text if len(text) <= TOOL_SUMMARY_CHARS else text[:TOOL_SUMMARY_CHARS] + "…"


def _inline(text: str) -> str:
    """One line of typed text that cannot open HTML or end the line it is on."""
    return " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _when(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
