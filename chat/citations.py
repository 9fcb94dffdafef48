"""Citations: where a reply's cited spans point, kept on its text blocks as the API streamed them.

The API numbers a document by its place among the document blocks of the request (`document_index`), which
moves as old exchanges are left out of the context; so when a citation arrives it is resolved once, against
the request that produced it, into the attachment it cites (`attachment`: its id, the one field we add). The
page, the exports and the source views read that id; the rest of the citation is stored as the API sent it.
Citations never go back to the API: the history's text blocks are sent without them (`request.py`), so a stale
`document_index` can never point at the wrong document of a later request.
"""

import re

from chat.llm.request import RequestParts

# The API's citation types that point into a document the user attached (the others point at a web page).
DOCUMENT_CITATIONS = ("char_location", "page_location", "content_block_location")
CITED_TEXT_CHARS = 300  # a footnote quotes at most this much of the cited text
_WEB_URL = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)


def documents_sent(parts: RequestParts, request: dict) -> list[int]:
    """The attachment ids of `request`'s document blocks, in the order the API numbers them.

    The project's files come first, then the history's attachments; the context budget leaves out whole
    exchanges from the start, so the history's documents that were sent are the last ones of `parts`."""
    sent = sum(
        1 for turn in request["messages"] for block in turn["content"] if block.get("type") == "document"
    )
    project = list(parts.project.documents)
    history = [attachment_id for exchange in parts.exchanges for attachment_id in exchange.documents]
    from_history = max(sent - len(project), 0)
    return project + (history[len(history) - from_history:] if from_history else [])


def citation_stored(citation, documents: list[int]) -> dict:
    """A streamed citation (the SDK's model) as the reply keeps it, with the attachment it cites."""
    return citation_attached(citation.model_dump(mode="json", exclude_none=True), documents)


def citation_attached(stored: dict, documents: list[int]) -> dict:
    """`stored` (a citation as the API sent it) with the attachment it cites, when it cites a document."""
    index = stored.get("document_index")
    if stored.get("type") in DOCUMENT_CITATIONS and isinstance(index, int) and 0 <= index < len(documents):
        stored["attachment"] = documents[index]
    return stored


def content_citations_attached(content: list[dict], documents: list[int]) -> list[dict]:
    """A whole reply's blocks (`content`, as a non-streamed reply came: a Message Batch's) with each citation
    naming the attachment it cites, as `citation_stored` does for a streamed one."""
    return [
        {**block, "citations": [citation_attached(dict(citation), documents) for citation in block["citations"]]}
        if block.get("type") == "text" and block.get("citations") else block
        for block in content
    ]


def citations_moved(blocks: list[dict], copies: dict[int, int], *, keep_others: bool) -> list[dict] | None:
    """`blocks` with their citations naming the copies of the attachments they cite (`copies`: original id to
    copy id, chat/forks.py), a citation of an attachment not copied keeping its id only when `keep_others`;
    None when nothing changed."""
    changed = False
    moved = []
    for block in blocks:
        cited = block.get("citations") if block.get("type") == "text" else None
        if not cited:
            moved.append(block)
            continue
        renamed = []
        for citation in cited:
            original = citation.get("attachment")
            if original in copies:
                citation = {**citation, "attachment": copies[original]}
            elif original is not None and not keep_others:
                citation = {key: value for key, value in citation.items() if key != "attachment"}
            changed = changed or citation is not cited[len(renamed)]
            renamed.append(citation)
        moved.append({**block, "citations": renamed})
    return moved if changed else None


def citation_source(citation: dict) -> str:
    """Where a citation points, in words: "report.pdf, page 3", "notes.txt", or the page's title and URL."""
    if citation.get("type") == "web_search_result_location":
        url = str(citation.get("url") or "")
        title = _plain(citation.get("title") or url)
        # The model's words, not ours: only a web page becomes a link (no javascript: in a Markdown viewer),
        # with what could end it or open HTML encoded, so a ")" in it cannot cut the link short.
        if not _WEB_URL.match(url):
            return title
        for char, code in (("(", "%28"), (")", "%29"), ("<", "%3C"), (">", "%3E")):
            url = url.replace(char, code)
        return f"[{title}]({url})"
    name = _plain(citation.get("document_title") or f"document {citation.get('document_index', 0) + 1}")
    if citation.get("type") == "page_location":
        first, last = citation.get("start_page_number", 1), citation.get("end_page_number", 1)
        # The end page is exclusive, as the API counts it: a span on page 3 is 3..4.
        last = max(first, last - 1)
        return f"{name}, page {first}" if first == last else f"{name}, pages {first}–{last}"
    return name


def markdown_footnote(label: str, citation: dict) -> str:
    """A Markdown footnote for the export: the cited text, quoted, and its source."""
    cited = _plain(citation.get("cited_text", ""))
    if len(cited) > CITED_TEXT_CHARS:
        cited = cited[:CITED_TEXT_CHARS] + "…"
    return f"[^{label}]: “{cited}” ({citation_source(citation)})"


def passage_parts(text: str, start: int, end: int) -> tuple[str, str, str]:
    """`text` cut around the cited characters start..end (clamped to the text): before, cited, after."""
    start = min(max(start, 0), len(text))
    end = min(max(end, start), len(text))
    return text[:start], text[start:end], text[end:]


def _plain(text: str) -> str:
    """One line that opens no HTML and closes no link."""
    text = " ".join(str(text).split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("]", "\\]")
