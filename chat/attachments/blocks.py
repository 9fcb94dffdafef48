"""Content blocks for the model, built from the stored files at request time: the database holds references."""

import base64
import logging

from chat.models import Attachment
from chat.attachments.storage import file_read

log = logging.getLogger(__name__)


def reference_block(attachment_id: int) -> dict:
    """What a user message stores in place of an attachment."""
    return {"type": "attachment", "attachment_id": attachment_id}


def content_block(attachment: Attachment) -> dict:
    """The image or document block the API reads. A file gone from disk becomes a note, not a failed reply."""
    try:
        data = base64.b64encode(file_read(attachment.file)).decode("ascii")
    except FileNotFoundError:
        log.warning("attachment %s has no file %s", attachment.pk, attachment.file)
        return {"type": "text", "text": f"(The attachment {attachment.name!r} is no longer available.)"}
    source = {"type": "base64", "media_type": attachment.media_type, "data": data}
    if attachment.kind == Attachment.Kind.IMAGE:
        return {"type": "image", "source": source}
    return {"type": "document", "source": source, "title": attachment.name}
