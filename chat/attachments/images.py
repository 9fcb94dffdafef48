"""Untrusted image bytes to a small, clean image the model reads well.

Only the JPEG, PNG, GIF and WebP parsers ever see the bytes (Pillow's other parsers are old C code that an
upload has no business reaching). The pixel count is checked from the header, before anything is decoded;
big JPEGs are decoded at a reduced scale; the result is re-encoded from pixels alone, so no metadata, trailing
bytes or second format (a polyglot) survives, and it fits what the API accepts and bills for.
"""

import io
import math
import warnings
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from PIL import Image, ImageOps, UnidentifiedImageError

from chat.attachments.limits import encoded_size

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
# What the API reads without resizing it on its side: a long edge of at most 1568 px and ~1.15 MP.
MAX_LONG_EDGE = 1568
MAX_PIXELS = 1_150_000
# The API refuses an image over 5 MB; checked on the base64 text, the stricter reading.
MAX_ENCODED_BYTES = 5 * 1024 * 1024
# Refused before decoding: a 50 MP frame already takes 150 MB of memory to decode.
MAX_SOURCE_PIXELS = 50_000_000
# Only the first frame is used, but counting frames walks them all: absurd counts are refused.
MAX_FRAMES = 500
JPEG_QUALITY = 85
QUICK_PNG_PHOTO_BYTES = 256 * 1024
THUMBNAIL_SIZE = (320, 320)
IMAGE_PIXELS_PER_TOKEN = 750

NOT_AN_IMAGE = (
    "This file can't be read as a JPEG, PNG, GIF or WebP image, or as a PDF: only those can be attached."
)
DAMAGED = "This image is damaged or truncated, so it can't be read."


@dataclass(frozen=True)
class ProcessedImage:
    data: bytes
    media_type: str
    width: int
    height: int
    thumbnail: bytes
    thumbnail_media_type: str

    @property
    def tokens(self) -> int:
        return math.ceil(self.width * self.height / IMAGE_PIXELS_PER_TOKEN)


def image_process(data: bytes) -> ProcessedImage:
    """The image the model gets, or ValidationError with a sentence the user reads."""
    try:
        # The warnings filter is process-wide and not thread-safe; MAX_SOURCE_PIXELS, checked in _process, is
        # the guard that does not depend on it.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
                return _process(image)
    except ValidationError:
        raise
    except UnidentifiedImageError as exc:
        raise ValidationError(NOT_AN_IMAGE) from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ValidationError(_too_many_pixels()) from exc
    except Exception as exc:  # untrusted bytes: Pillow raises many types, and each means the file is broken
        raise ValidationError(DAMAGED) from exc


def fitted_size(width: int, height: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio within MAX_LONG_EDGE and MAX_PIXELS (never upscaled)."""
    scale = min(1.0, MAX_LONG_EDGE / max(width, height), math.sqrt(MAX_PIXELS / (width * height)))
    return max(1, int(width * scale + 1e-9)), max(1, int(height * scale + 1e-9))  # 1568.0 may be 1567.999…


def _process(image: Image.Image) -> ProcessedImage:
    width, height = image.size  # never 0: Pillow refuses such a header as unidentified
    if width * height > MAX_SOURCE_PIXELS:
        raise ValidationError(_too_many_pixels(width, height))
    if getattr(image, "n_frames", 1) > MAX_FRAMES:
        raise ValidationError(f"This animation has more than {MAX_FRAMES} frames, so it can't be attached.")
    if image.format == "JPEG":
        # Let the decoder scale by 1/2, 1/4 or 1/8 while it decodes, never below the size we keep: a 12 MP
        # photo is then never held at full size. Fitting is symmetric, so EXIF rotation does not change it.
        image.draft("RGB", fitted_size(width, height))
    image.load()
    frame = ImageOps.exif_transpose(image)
    has_alpha = frame.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in frame.info
    frame = frame.convert("RGBA" if has_alpha else "RGB")
    if has_alpha and frame.getchannel("A").getextrema()[0] == 255:
        frame, has_alpha = frame.convert("RGB"), False
    frame.info = {}  # EXIF, ICC, comments, XMP: nothing of the upload but its pixels is kept
    frame = _resized(frame, fitted_size(*frame.size))
    data, media_type = _encoded(frame, has_alpha)
    while encoded_size(len(data)) > MAX_ENCODED_BYTES:  # only noise-like images with transparency get here
        frame = _resized(frame, (max(1, int(frame.width * 0.8)), max(1, int(frame.height * 0.8))))
        data, media_type = _encoded(frame, has_alpha)
    thumbnail = frame.copy()
    thumbnail.thumbnail(THUMBNAIL_SIZE)
    thumbnail_data, thumbnail_type = _encoded(thumbnail, has_alpha)
    return ProcessedImage(data, media_type, frame.width, frame.height, thumbnail_data, thumbnail_type)


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def _encoded(image: Image.Image, has_alpha: bool) -> tuple[bytes, str]:
    """PNG when there is transparency, else the smaller of a good JPEG and a PNG (screenshots win as PNG).

    A quick PNG (zlib level 1) comes first. The full PNG saves 15-70% on it (the most on flat images, whose
    PNGs are small), so a quick PNG that is big and over four times the JPEG means a photo the full PNG can't
    win: photos skip the full PNG encode, the slowest step of all (~0.8 s at 1.15 MP).
    """
    if has_alpha:
        return _save(image, "PNG"), "image/png"
    jpeg = _save(image, "JPEG", quality=JPEG_QUALITY, optimize=True)
    quick_png = len(_save(image, "PNG", compress_level=1))
    if quick_png > 4 * len(jpeg) and quick_png > QUICK_PNG_PHOTO_BYTES:
        return jpeg, "image/jpeg"
    png = _save(image, "PNG")
    return (jpeg, "image/jpeg") if len(jpeg) <= len(png) else (png, "image/png")


def _save(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def _too_many_pixels(width: int | None = None, height: int | None = None) -> str:
    size = f" is {width:,} x {height:,} pixels, which" if width else ""
    limit = MAX_SOURCE_PIXELS // 1_000_000
    return f"This image{size} is over the {limit} megapixel limit, so it can't be attached."
