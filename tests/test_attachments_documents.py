"""Documents: untrusted PDFs (and text) to what the model reads."""

import io
import time

import pytest
from attachment_samples import (
    pdf_bytes, slow_pdf,
)
from django.core.exceptions import ValidationError
from PIL import Image

from chat.attachments.pdfs import pdf_read


def reason(process, data) -> str:
    with pytest.raises(ValidationError) as error:
        process(data)
    return error.value.messages[0]


def reopened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


# --- PDFs -----------------------------------------------------------------------------------------------


def test_a_pdf_gives_the_text_of_each_page():
    pages = pdf_read(pdf_bytes(["Quarterly report\nRevenue grew", "Second page"]))

    assert [page.strip() for page in pages] == ["Quarterly report\nRevenue grew", "Second page"]


def test_an_encrypted_pdf_is_refused():
    message = reason(pdf_read, pdf_bytes(["secret"], password="hunter2"))

    assert message == "This PDF is password-protected. Remove the password and upload it again."


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\nthis is not a pdf", id="garbage"),
        pytest.param(pdf_bytes(["Cut short"])[:300], id="truncated"),
    ],
)
def test_a_malformed_pdf_is_refused(data):
    assert reason(pdf_read, data) == "This PDF is damaged or not really a PDF, so it can't be read."


def test_a_pdf_over_100_pages_is_refused():
    assert reason(pdf_read, pdf_bytes(["page"] * 101)) == "This PDF has 101 pages; at most 100 can be attached."


def test_a_pdf_that_keeps_the_parser_busy_is_killed_at_the_timeout(settings):
    """Not a test-only hook: a real file that pypdf spends ~5 s on, and the real worker killed by subprocess."""
    settings.ATTACHMENT_PDF_TIMEOUT = 1.0
    data = slow_pdf(200_000)
    started = time.perf_counter()

    message = reason(pdf_read, data)

    assert message == "Reading this PDF took longer than 1 s, so it was stopped; it can't be attached."
    assert time.perf_counter() - started < 3


def test_a_pdf_that_needs_too_much_memory_is_refused(settings):
    settings.ATTACHMENT_PDF_MEMORY_BYTES = 120 * 1024 * 1024

    message = reason(pdf_read, slow_pdf(2_000_000))  # a 60 MB content stream, parsed into Python objects

    assert message == "This PDF needs too much memory to read, so it can't be attached."
