"""Untrusted image files to small, clean images the model reads well, decoded in a limited child process.

The server process never decodes an upload: workers/image_pixels.py does, in a child started by isolation.py
under an address-space limit (ATTACHMENT_DECODE_MEMORY_BYTES) and a CPU-time limit
(ATTACHMENT_DECODE_CPU_SECONDS), and writes the re-encoded image(s) and thumbnail(s) into the caller's folder.
This module sets what is accepted and words each refusal; the child only reports what it found.

Worst case per server process: ATTACHMENT_DECODE_CONCURRENCY children at once (2 by default), each within
ATTACHMENT_DECODE_MEMORY_BYTES of address space (1 GiB): 2 GiB on top of the server's own memory, whatever is
uploaded, none of it kept once a child exits; a file that needs more is refused. Legitimate files need far
less: the worst that MAX_DECODED_PIXELS lets through, a 49 MP PNG with transparency, peaks at 431 MB (its
pixels are held twice while resampling with alpha); a 48 MP phone photo with a gain map at 48 MB (1/4 scale).
"""

import math
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError

from chat.attachments.formats import NOT_KNOWN, Format, file_format
from chat.attachments.isolation import isolated_run

# What is decoded: a 50 MP frame takes 150-200 MB as 8-bit RGB(A).
MAX_DECODED_PIXELS = 50_000_000
# A baseline JPEG decodes at up to 1/8 scale, a few rows at a time (47 MB for 192 MP), so its header may
# declare far more; this cap bounds the CPU time spent on the rows that are decoded, not memory.
MAX_JPEG_HEADER_PIXELS = 250_000_000
# Only the first frame of an animation is used, but counting frames walks them all: absurd counts are refused.
MAX_FRAMES = 500
# Each page of a TIFF becomes an image; a 20-page scan is a document, more is better sent as a PDF.
MAX_TIFF_PAGES = 20
IMAGE_PIXELS_PER_TOKEN = 750

DAMAGED = (
    "This image is damaged or incomplete, so it can't be read. "
    "Export or download it again and attach the new copy."
)


@dataclass(frozen=True)
class ProcessedImage:
    """One image the model gets; `path` and `thumbnail_path` are files in the folder image_read wrote to."""

    path: Path
    media_type: str  # image/jpeg or image/png
    width: int
    height: int
    thumbnail_path: Path
    thumbnail_media_type: str
    page: int | None  # the 1-based page of a multi-page TIFF

    @property
    def tokens(self) -> int:
        return math.ceil(self.width * self.height / IMAGE_PIXELS_PER_TOKEN)


@dataclass(frozen=True)
class ImagesRead:
    images: list[ProcessedImage]
    note: str | None  # what the user must know about what the model gets, e.g. the pages left out


def image_read(source: Path, output: Path) -> ImagesRead:
    """The images the model gets from the file at `source`, written into `output`; ValidationError if none."""
    limits = (MAX_DECODED_PIXELS, MAX_JPEG_HEADER_PIXELS, MAX_FRAMES, MAX_TIFF_PAGES)
    result = isolated_run("image", source, *map(str, limits), output=output)
    if "refused" in result:
        raise ValidationError(_refusal(source, **result))
    images = [
        ProcessedImage(
            output / image["name"], image["media_type"], image["width"], image["height"],
            output / image["thumbnail_name"], image["thumbnail_media_type"], image["page"],
        )
        for image in result["images"]
    ]
    pages, kept = result["pages"], len(images)
    note = f"This TIFF has {pages} pages; the first {kept} are attached." if pages > kept else None
    return ImagesRead(images, note)


def _refusal(source: Path, refused: str, **facts) -> str:
    if refused == "not_an_image":
        # None of the allowed parsers took it: damaged, when it starts like an image (a JPEG's first bytes,
        # then junk); else not an image at all, and not something else that can be attached either.
        return DAMAGED if _has_image_signature(source) else NOT_KNOWN
    if refused == "too_many_pixels":
        which = f"Page {facts['page']} of this TIFF" if facts["page"] else "This image"
        return (
            f"{which} is {facts['width']:,} x {facts['height']:,} pixels, over the {facts['limit'] / 1e6:g} "
            "megapixel limit, so it can't be attached. Make it smaller and attach it again."
        )
    if refused == "too_many_frames":
        return (
            f"This animation has more than {facts['limit']} frames, so it can't be attached. "
            "Attach a still image or a shorter animation."
        )
    return DAMAGED


def _has_image_signature(source: Path) -> bool:
    try:
        return file_format(source) is Format.IMAGE
    except ValidationError:
        return False
