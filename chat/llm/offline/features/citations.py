"""Citations: the reply quotes the request's documents that have citations enabled, as the API cites them.

The API numbers every document block of the request, in order, from 0 (`document_index`), and cites a plain
text document by characters (`char_location`, end exclusive), a PDF by pages (`page_location`, 1-based, end
exclusive) and a custom content document by its blocks (`content_block_location`, end exclusive). The offline
model quotes up to MAX_QUOTES sentences, spread over the documents and through each one, and the cited text is
the document's own text. Documents without citations enabled are counted but never cited.
"""

import base64
import io
import re
from dataclasses import dataclass, replace

from pypdf import PdfReader

from chat.llm.offline.blocks import ReplyBlock
from chat.llm.offline.features import web
from chat.llm.offline.files import FileRefused, file_block_resolved
from chat.llm.offline.prompt import InvalidRequest

MAX_QUOTES = 3
QUOTE_CHARS = 200  # a quote is one sentence, cut at this length
SENTENCE = re.compile(r"[^\s.!?][^.!?\n]*[.!?]?")


@dataclass(frozen=True)
class Document:
    index: int  # its document_index
    title: str | None
    location: str  # "char_location", "page_location" or "content_block_location"
    parts: list[str]  # the whole text, the pages' texts, or the blocks' texts
    file_id: str | None = None  # when the document came from the Files API, which its citations name


def cited_documents(messages: list[dict]) -> list[Document]:
    """The request's documents that have citations enabled, with their document_index."""
    documents, index = [], 0
    for message in messages:
        for block in message["content"]:
            if block.get("type") != "document":
                continue
            citations = block.get("citations")
            enabled = isinstance(citations, dict) and citations.get("enabled") is True
            if enabled and (document := _read(index, block)):
                documents.append(document)
            index += 1
    return documents


def search_citations(blocks: list[ReplyBlock]) -> list[dict]:
    """Citations of the reply's search results: up to MAX_QUOTES, in the order they came."""
    found = []
    for block in blocks:
        if block.type == "web_search_tool_result" and isinstance(block.whole["content"], list):
            found += [
                {
                    "type": "web_search_result_location",
                    "cited_text": web.result_snippet(result),
                    "url": result["url"],
                    "title": result["title"],
                    "encrypted_index": base64.b64encode(result["url"].encode()).decode(),
                }
                for result in block.whole["content"]
            ]
    return found[:MAX_QUOTES]


def fetch_citations(blocks: list[ReplyBlock], first_index: int) -> list[dict]:
    """Citations of the pages fetched with citations enabled: their first sentence each. A fetched page is a
    document of the conversation, numbered after the request's own documents."""
    found, index = [], first_index
    for block in blocks:
        content = block.whole["content"] if block.type == "web_fetch_tool_result" else None
        if not isinstance(content, dict) or content.get("type") != "web_fetch_result":
            continue
        document = content["content"]
        if document.get("citations", {}).get("enabled") is True:
            text = document["source"]["data"]
            found += [
                char_citation(index, document["title"], text, start, end)
                for start, end in first_sentences(text, 1)
            ]
        index += 1
    return found[:MAX_QUOTES]


def quote_blocks(cited: list[dict]) -> list[ReplyBlock]:
    """The reply's quotes: an opening line, then one numbered text block per citation, which carries it."""
    if not cited:
        return []
    blocks = [
        ReplyBlock(
            "text", "What my sources say (the offline model picks passages, it does not read them):\n\n"
        )
    ]
    for number, citation in enumerate(cited, start=1):
        end = "\n\n" if number == len(cited) else "\n"
        blocks.append(
            ReplyBlock(
                "text",
                f"{number}. {_label(citation)}: “{citation['cited_text']}”{end}",
                citations=(citation,),
            )
        )
    return blocks


def _label(citation: dict) -> str:
    if citation["type"] == "web_search_result_location":
        return citation["url"]
    if citation["type"] == "page_location":
        where = f", page {citation['start_page_number']}"
    else:
        where = ""
    title = citation.get("document_title") or f"document {citation['document_index'] + 1}"
    return f"{title}{where}"


def document_count(messages: list[dict]) -> int:
    return sum(block.get("type") == "document" for message in messages for block in message["content"])


def quotes(documents: list[Document]) -> list[dict]:
    """Up to MAX_QUOTES citations: the first document's first sentence, the next document's, and so on,
    then sentences further into the documents, never the same one twice."""
    candidates = [_candidates(document) for document in documents]
    chosen: list[dict] = []
    for depth in range(MAX_QUOTES):
        for options in candidates:
            if depth < len(options) and len(chosen) < MAX_QUOTES:
                chosen.append(options[depth])
    return chosen


def char_citation(document_index: int, title: str | None, text: str, start: int, end: int) -> dict:
    return {
        "type": "char_location",
        "cited_text": text[start:end],
        "document_index": document_index,
        "document_title": title,
        "start_char_index": start,
        "end_char_index": end,
    }


def first_sentences(text: str, most: int) -> list[tuple[int, int]]:
    """(start, end) of up to `most` sentences of `text`, spread from its beginning to its end."""
    spans = [
        (match.start(), min(match.end(), match.start() + QUOTE_CHARS)) for match in SENTENCE.finditer(text)
    ]
    spans = [(start, end) for start, end in spans if text[start:end].strip()]
    if len(spans) <= most:
        return spans
    step = (len(spans) - 1) / (most - 1) if most > 1 else 0
    return list(dict.fromkeys(spans[round(position * step)] for position in range(most)))


def _candidates(document: Document) -> list[dict]:
    found = _located(document)
    return [{**citation, "file_id": document.file_id} for citation in found] if document.file_id else found


def _located(document: Document) -> list[dict]:
    if document.location == "char_location":
        text = document.parts[0]
        return [
            char_citation(document.index, document.title, text, start, end)
            for start, end in first_sentences(text, MAX_QUOTES)
        ]
    common = {"document_index": document.index, "document_title": document.title}
    chosen = _spread([number for number, part in enumerate(document.parts) if part.strip()])
    if document.location == "page_location":
        return [
            {
                "type": "page_location",
                "cited_text": _first_sentence(document.parts[page]),
                **common,
                "start_page_number": page + 1,
                "end_page_number": page + 2,
            }
            for page in chosen
        ]
    return [
        {
            "type": "content_block_location",
            "cited_text": document.parts[block],
            **common,
            "start_block_index": block,
            "end_block_index": block + 1,
        }
        for block in chosen
    ]


def _spread(numbers: list[int]) -> list[int]:
    """The first, middle and last of `numbers` (fewer when there are fewer)."""
    if len(numbers) <= MAX_QUOTES:
        return numbers
    return [numbers[0], numbers[len(numbers) // 2], numbers[-1]]


def _first_sentence(text: str) -> str:
    spans = first_sentences(text, 1)
    return text[spans[0][0] : spans[0][1]] if spans else text.strip()[:QUOTE_CHARS]


def _read(index: int, block: dict) -> Document | None:
    """The document's citable parts; None for a source the offline model cannot read (prompt.py has already
    refused what the API refuses)."""
    try:
        resolved = file_block_resolved(block)  # a `file` source read from the offline Files API
    except (FileRefused, InvalidRequest):  # prompt.py refuses the request first
        return None
    file_id = block["source"].get("file_id") if resolved is not block else None
    document = _read_source(index, resolved)
    return replace(document, file_id=file_id) if document and file_id else document


def _read_source(index: int, block: dict) -> Document | None:
    source = block.get("source") or {}
    title = block.get("title") if isinstance(block.get("title"), str) else None
    kind = source.get("type")
    if kind == "text" and isinstance(source.get("data"), str):
        return Document(index, title, "char_location", [source["data"]])
    if kind == "content":
        content = source.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        return Document(index, title, "content_block_location", [part["text"] for part in blocks])
    if kind == "base64" and source.get("media_type") == "application/pdf":
        try:
            data = base64.b64decode(source.get("data", ""), validate=True)
            pages = [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]
        except Exception:  # noqa: BLE001 -- untrusted bytes (pypdf raises many types); prompt.py read them already
            return None
        return Document(index, title, "page_location", pages)
    return None
