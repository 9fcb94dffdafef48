"""One untrusted PDF: the text of each page, and an unlocked copy of a "secured" PDF (task "pdf", entry.py).

pypdf documents that a crafted PDF can make it loop or exhaust memory and that guarding against both is the
caller's job: entry.py runs this under a CPU-time and an address-space limit. Arguments: the most pages the
model reads as a PDF, the most characters of text to extract in all, and the path to write an unlocked copy
to.

A PDF with only an owner password (copying or printing restricted: bank statements) opens with the empty
password; the copy written without encryption is what the model is sent, since the API reads no encrypted PDF.
Only one that needs a password to open is refused. A page whose text pypdf cannot extract (a filter it lacks,
a broken stream) has empty text: the rest of the PDF is still worth reading.

Answers {"pages": [text, ...], "unlocked": bool}, {"needs_password": true}, or {"error": sentence}.
"""

import io

from pypdf import PasswordType, PdfReader, PdfWriter

# Text kept per page: enough for search and estimates; a page with more is a page of garbage.
MAX_PAGE_TEXT = 100_000
DAMAGED = "This PDF is damaged or not really a PDF, so it can't be read."


def run(stdin, max_pages: str, max_characters: str, output: str) -> dict:
    try:
        return _read(io.BytesIO(stdin.read()), int(max_pages), int(max_characters), output)
    except MemoryError:
        raise  # entry.py answers it
    except OSError as error:
        if error.errno is not None:
            raise  # the system's (a full disk while writing the unlocked copy): entry.py answers it
        return {"error": DAMAGED}
    except Exception:  # noqa: BLE001 - pypdf raises many types for broken files, each meaning the same
        return {"error": DAMAGED}


def _read(data: io.BytesIO, max_pages: int, max_characters: int, output: str) -> dict:
    reader = PdfReader(data)
    unlocked = reader.is_encrypted
    if unlocked and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        return {"needs_password": True}
    count = len(reader.pages)
    if count == 0:
        return {"error": "This PDF has no pages."}
    if unlocked and count <= max_pages:  # a longer one is sent as its text: no copy needed
        PdfWriter(clone_from=reader).write(output)
    pages, left = [], max_characters
    for page in reader.pages:
        text = _page_text(page) if left > 0 else ""
        left -= len(text)
        pages.append(text)
    return {"pages": pages, "unlocked": unlocked and count <= max_pages}


def _page_text(page) -> str:
    """Storable anywhere: PostgreSQL refuses NUL characters and lone surrogates in JSON text."""
    try:
        text = page.extract_text() or ""
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - whatever stops one page's text leaves the other pages readable
        return ""
    return text[:MAX_PAGE_TEXT].replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
