"""Reads one untrusted PDF in a child process: `python -I pdf_worker.py MEMORY_BYTES MAX_PAGES < file.pdf`.

pypdf documents that a crafted PDF can make it loop or exhaust memory and that guarding against both is the
caller's job. So this runs alone: the parent kills it at a wall-clock timeout, and the address-space limit set
here turns a memory blow-up into a MemoryError instead of a server out of memory. It imports nothing from the
project (run with -I, it cannot), and answers with one JSON object on stdout: {"pages": [text, ...]} or
{"error": "a sentence for the user"}.
"""

import io
import json
import resource
import sys

from pypdf import PdfReader

# Text kept per page: enough for search and estimates; a page with more is a page of garbage.
MAX_PAGE_TEXT = 100_000


def pdf_pages(data: bytes, max_pages: int) -> dict:
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        return {"error": "This PDF is password-protected. Remove the password and upload it again."}
    count = len(reader.pages)
    if count == 0:
        return {"error": "This PDF has no pages."}
    if count > max_pages:
        return {"error": f"This PDF has {count} pages; at most {max_pages} can be attached."}
    return {"pages": [_clean(page.extract_text() or "") for page in reader.pages]}


def _clean(text: str) -> str:
    """Storable anywhere: PostgreSQL refuses NUL characters and lone surrogates in JSON text."""
    return text[:MAX_PAGE_TEXT].replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def main() -> None:
    memory_bytes, max_pages = int(sys.argv[1]), int(sys.argv[2])
    data = sys.stdin.buffer.read()
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        result = pdf_pages(data, max_pages)
    except MemoryError:
        result = {"error": "This PDF needs too much memory to read, so it can't be attached."}
    except Exception:  # pypdf raises many types for broken files; each means the same to the user
        result = {"error": "This PDF is damaged or not really a PDF, so it can't be read."}
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
