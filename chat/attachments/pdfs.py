"""Untrusted PDF bytes to validated per-page text, read in a child process that can be killed."""

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("pdf_worker.py")
MAX_PAGES = 100
# The API reads each page as text and as an image of the page: about 1,500-3,000 tokens a page.
PAGE_IMAGE_TOKENS = 1_500
TEXT_CHARS_PER_TOKEN = 4


def is_pdf(data: bytes) -> bool:
    """PDF readers look for the header in the first kilobyte, and so does this."""
    return b"%PDF-" in data[:1024]


def pdf_read(data: bytes) -> list[str]:
    """Each page's text, or ValidationError with a sentence the user reads.

    The worker gets ATTACHMENT_PDF_TIMEOUT seconds of wall-clock time; `subprocess.run` kills it after that.
    """
    timeout = settings.ATTACHMENT_PDF_TIMEOUT
    command = [sys.executable, "-I", str(WORKER), str(settings.ATTACHMENT_PDF_MEMORY_BYTES), str(MAX_PAGES)]
    try:
        completed = subprocess.run(command, input=data, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ValidationError(
            f"Reading this PDF took longer than {timeout:g} s, so it was stopped; it can't be attached."
        ) from None
    try:
        result = json.loads(completed.stdout)
    except ValueError:
        log.warning("pdf worker exited %s: %s", completed.returncode, completed.stderr[-2000:])
        raise ValidationError(
            "This PDF could not be read (the reader crashed), so it can't be attached."
        ) from None
    if "error" in result:
        raise ValidationError(result["error"])
    return result["pages"]


def pdf_tokens(pages: list[str]) -> int:
    return sum(math.ceil(len(text) / TEXT_CHARS_PER_TOKEN) + PAGE_IMAGE_TOKENS for text in pages)
