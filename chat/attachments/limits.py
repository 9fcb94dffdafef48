"""What one request to the model may carry, checked when a message is sent, before anything is stored.

Every request re-sends the whole conversation, attachments included, so the limits apply to the attachments
already sent in the conversation plus the new ones. Sizes in the sentences that refuse a file are written by
`megabytes`, here too.
"""

import math

from chat.models import Attachment
from chat.refusals import Refusal

# The Messages API's limits.
API_MAX_REQUEST_BYTES = 32 * 1024 * 1024
API_MAX_IMAGES = 100
API_MAX_PDF_PAGES = 100
# The product's: a message with more attachments than this is a mistake, not a question.
MAX_ATTACHMENTS_PER_MESSAGE = 20
# Kept free for the conversation's text, the system prompt, the tools and the JSON around them.
REQUEST_TEXT_ALLOWANCE = 2 * 1024 * 1024
MEGABYTE = 1024 * 1024
# A text document travels as JSON text, where a character outside ASCII may take six bytes (`\u00e9`) for the
# two or three it takes in the stored UTF-8: counted at the worst case.
TEXT_JSON_FACTOR = 3


class AttachmentRefused(Refusal):
    """A message can't be sent with these attachments; `code` and `detail` go to the user as an error frame."""


def encoded_size(size: int) -> int:
    """Bytes of the base64 text that carries `size` bytes in the request."""
    return 4 * math.ceil(size / 3)


def megabytes(size: int) -> str:
    """`size` bytes for a sentence: a whole number of megabytes as such, else rounded up to a tenth, so that a
    size over a limit never reads as the limit ("32.1 MB", never "32.0 MB", for a file just over 32 MB)."""
    if size % MEGABYTE == 0:
        return f"{size // MEGABYTE} MB"
    tenths = -(-size * 10 // MEGABYTE)
    return f"{tenths // 10}.{tenths % 10} MB"


def request_bytes(attachment: Attachment) -> int:
    """What the attachment adds to the request's body: base64 text for a file, JSON text for text."""
    if attachment.kind == Attachment.Kind.TEXT:
        return TEXT_JSON_FACTOR * attachment.size
    return encoded_size(attachment.size)


def request_limits_check(*, sending: list[Attachment], sent: list[Attachment]) -> None:
    """Raise AttachmentRefused, naming the limit, if the next request would break one of the API's limits."""
    carried = [*sent, *sending]
    images = sum(attachment.kind == Attachment.Kind.IMAGE for attachment in carried)
    if images > API_MAX_IMAGES:
        raise AttachmentRefused(
            "too_many_images",
            f"A request to the model can carry {API_MAX_IMAGES} images, and this conversation would carry "
            f"{images}. Remove some, or start a new chat for these.",
        )
    # A PDF too long for the model to read as one is sent as its text (kind TEXT): its pages do not count.
    pdfs = [attachment for attachment in carried if attachment.kind == Attachment.Kind.PDF]
    pages = sum(attachment.page_count or 0 for attachment in pdfs)
    if pages > API_MAX_PDF_PAGES:
        raise AttachmentRefused(
            "too_many_pages",
            f"A request to the model can carry {API_MAX_PDF_PAGES} PDF pages, and this conversation would "
            f"carry {pages}. Remove a PDF, or start a new chat for it.",
        )
    size = sum(map(request_bytes, carried)) + REQUEST_TEXT_ALLOWANCE
    if size > API_MAX_REQUEST_BYTES:
        raise AttachmentRefused(
            "too_large",
            f"With these attachments the request to the model would be about {size / MEGABYTE:.0f} MB; "
            f"it can be at most {megabytes(API_MAX_REQUEST_BYTES)}. Remove an attachment, or start a "
            "new chat for it.",
        )
