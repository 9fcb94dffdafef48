"""What each accepted format becomes: the fields of its attachment(s) and the files to store for them.

One reader per format that formats.py tells apart, each given the uploaded file and a scratch folder to write
into; services.attachments_upload stores what it returns. Nothing here writes to the database or MEDIA_ROOT.
"""

from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError

from chat.attachments import images
from chat.attachments.formats import PACKAGE_REFUSALS, Format
from chat.attachments.isolation import isolated_run
from chat.attachments.limits import API_MAX_REQUEST_BYTES, REQUEST_TEXT_ALLOWANCE, encoded_size, megabytes
from chat.attachments.pdfs import pdf_read, pdf_text, pdf_tokens
from chat.attachments.texts import MAX_TEXT_CHARACTERS, TOO_LONG, text_read, text_tokens
from chat.models import Attachment

# The version of what these readers make of an upload, stored on each attachment (Attachment.pipeline): an
# upload of bytes the owner sent before reuses that row's files only when they were made by this version.
# 1: images decoded in the server process (16-bit ones washed out, colour profiles dropped unapplied);
# 2: decoded in a limited child, tones and colours kept.
PIPELINE_VERSION = 2


@dataclass
class Processed:
    """One attachment-to-be: its fields, and the files in the scratch folder to store as its file and
    thumbnail."""

    fields: dict
    file: Path
    thumbnail: Path | None = None
    page: int | None = None  # of a multi-page TIFF: in the attachment's name and its stored files' names
    thumbnail_media_type: str = ""


def _images(path: Path, scratch: Path) -> list[Processed]:
    read = images.image_read(path, scratch)
    return [
        Processed(
            {
                "kind": Attachment.Kind.IMAGE, "media_type": image.media_type, "width": image.width,
                "height": image.height, "size": image.path.stat().st_size, "tokens": image.tokens,
                "note": (read.note or "") if number == 0 else "",
            },
            image.path, image.thumbnail_path, image.page, image.thumbnail_media_type,
        )
        for number, image in enumerate(read.images)
    ]


def _pdf(path: Path, scratch: Path) -> list[Processed]:
    """A PDF goes to the model as it is (or unlocked), base64-encoded, so it must fit in one request once
    encoded; one with more pages than the model reads as a PDF goes as its text."""
    read = pdf_read(path, scratch)
    counted = {"page_count": len(read.pages), "pages": read.pages}
    if read.as_text:
        text, note = pdf_text(read.pages)
        return [_text_document(text, scratch, note=note, **counted)]
    size = read.file.stat().st_size
    room = API_MAX_REQUEST_BYTES - REQUEST_TEXT_ALLOWANCE
    if encoded_size(size) > room:
        raise ValidationError(
            f"This PDF is {megabytes(size)}; a PDF can be at most {megabytes(room * 3 // 4)} to fit in a "
            f"request to the model ({megabytes(API_MAX_REQUEST_BYTES)} once encoded)."
        )
    fields = {"kind": Attachment.Kind.PDF, "media_type": "application/pdf", "size": size}
    return [Processed({**fields, **counted, "tokens": pdf_tokens(read.pages)}, read.file)]


def _zip(path: Path, scratch: Path) -> list[Processed]:
    """A Word document's text; the child says which other package a ZIP file is, and it is refused."""
    output = scratch / "document.txt"
    result = isolated_run("docx", path, str(MAX_TEXT_CHARACTERS), output=output)
    if "package" in result:
        raise ValidationError(PACKAGE_REFUSALS[result["package"]])
    if result.get("too_long"):
        raise ValidationError(TOO_LONG)
    empty = "This Word document has no text (pictures in it are not read): save it as PDF and attach that."
    return [_text_document(text_read(output, empty=empty), scratch)]


def _text(path: Path, scratch: Path) -> list[Processed]:
    return [_text_document(text_read(path, empty="This file has no text in it."), scratch)]


def _text_document(text: str, scratch: Path, **fields) -> Processed:
    """Text the model reads as a text document, stored as UTF-8 whatever it was read from."""
    file = scratch / "text.txt"
    file.write_bytes(text.encode("utf-8"))
    return Processed(
        {
            "kind": Attachment.Kind.TEXT, "media_type": "text/plain", "size": file.stat().st_size,
            "tokens": text_tokens(text), **fields,
        },
        file,
    )


READERS = {Format.IMAGE: _images, Format.PDF: _pdf, Format.ZIP: _zip, Format.TEXT: _text}
