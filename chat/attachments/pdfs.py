"""Untrusted PDFs to per-page text and the file the model is sent, read in a limited child (workers/pdf_text).

A PDF of at most API_MAX_PDF_PAGES pages goes to the model as a PDF (the API reads each page as text and as an
image). A longer one is still accepted: the model gets the text of its pages as a text document instead, as
many pages as fit (texts.MAX_TEXT_TOKENS), and the attachment's note tells the user so.
"""

from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError

from chat.attachments.formats import PDF_PASSWORD
from chat.attachments.isolation import isolated_run
from chat.attachments.limits import API_MAX_PDF_PAGES
from chat.attachments.texts import MAX_TEXT_CHARACTERS, MAX_TEXT_TOKENS, TOO_LONG, text_tokens
from chat.llm.tokens import estimate_tokens

# The API reads each page as text and as an image of the page: about 1,500-3,000 tokens a page.
PAGE_IMAGE_TOKENS = 1_500
# Text extracted in all, then the remaining pages are left empty: five times what a text document may carry,
# so that what the worker answers (and this process holds) stays a few megabytes for any PDF.
MAX_EXTRACTED_CHARACTERS = 5 * MAX_TEXT_CHARACTERS


@dataclass(frozen=True)
class PdfRead:
    pages: list[str]
    file: Path  # what the model reads as a PDF: the upload itself, or its unlocked copy

    @property
    def as_text(self) -> bool:
        """Too many pages for the model to read as a PDF: it reads their text."""
        return len(self.pages) > API_MAX_PDF_PAGES


def pdf_read(source: Path, output: Path) -> PdfRead:
    """The pages of the PDF at `source`, or ValidationError with a sentence the user reads; an unlocked copy
    of a secured PDF is written into the folder `output`."""
    unlocked = output / "unlocked.pdf"
    result = isolated_run(
        "pdf", source, str(API_MAX_PDF_PAGES), str(MAX_EXTRACTED_CHARACTERS), output=unlocked
    )
    if result.get("needs_password"):
        raise ValidationError(PDF_PASSWORD)
    return PdfRead(result["pages"], unlocked if result["unlocked"] else source)


def pdf_tokens(pages: list[str]) -> int:
    return sum(estimate_tokens(text) + PAGE_IMAGE_TOKENS for text in pages)


def pdf_text(pages: list[str]) -> tuple[str, str]:
    """A long PDF as the text document the model reads instead, and the note that tells the user so.

    Each page's text under a line naming the page, so the model can say where it read something; pages in
    order, as many as fit.
    """
    if not any(text.strip() for text in pages):
        raise ValidationError(
            f"This PDF has {len(pages)} pages, more than the {API_MAX_PDF_PAGES} the model reads as a PDF, "
            f"and no text to read instead (it may be scanned): attach at most {API_MAX_PDF_PAGES} pages of it "
            "at a time."
        )
    parts, measured = [], 0
    for number, text in enumerate(pages, 1):
        part = f"--- Page {number} ---\n{text.strip()}\n\n"
        measured += text_tokens(part)
        if measured > MAX_TEXT_TOKENS:
            break
        parts.append(part)
    if not parts:
        raise ValidationError(TOO_LONG)
    read = "every page" if len(parts) == len(pages) else f"pages 1 to {len(parts)} (as much as fits)"
    note = (
        f"{len(pages)} pages: over the model's {API_MAX_PDF_PAGES}-page limit for PDFs, so it reads the text "
        f"of {read}, without the page images."
    )
    return "".join(parts).rstrip() + "\n", note
