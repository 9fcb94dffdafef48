"""One untrusted image file to the clean, small images the model reads (task "image"; see images.py).

`run(stdin, MAX_DECODED_PIXELS, MAX_JPEG_HEADER_PIXELS, MAX_FRAMES, MAX_PAGES, OUTPUT)` decodes the file on
stdin, writes each image and its thumbnail into OUTPUT and answers {"images": [...], "pages": n}, or
{"refused": why, ...the facts its sentence needs}: the server words refusals, this reports what it found.

Only the parsers in FORMATS are asked to read the bytes (never EPS, which runs Ghostscript, nor Pillow's other
old C parsers). Pixels are checked before they are decoded: against MAX_DECODED_PIXELS as the header declares
them, except for JPEG, which the decoder shrinks by 1/2, 1/4 or 1/8 while decoding (phone photos with a gain
map, which Pillow reads as MPO, included): a 108 MP photo is never held at full size, and the header of a
baseline JPEG is capped only by MAX_JPEG_HEADER_PIXELS. The result is re-encoded from pixels alone (8 bits,
sRGB, EXIF rotation applied), so no metadata, trailing bytes or second format (a polyglot) survives, and it
fits what the API accepts and bills for.
"""

import io
import math
from pathlib import Path
from typing import BinaryIO, NamedTuple

import pillow_heif
from PIL import AvifImagePlugin, Image, ImageCms, ImageOps, JpegImagePlugin, UnidentifiedImageError

# JPEG's parser also reads MPO (a JPEG with a gain map or a second view); HEIF's is pillow-heif's (see run()).
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "HEIF", "AVIF", "TIFF", "BMP")
# What the API reads without resizing it on its side: a long edge of at most 1568 px and ~1.15 MP.
MAX_LONG_EDGE = 1568
MAX_PIXELS = 1_150_000
# The API refuses an image over 5 MB; checked on the base64 text (4 bytes for every 3), the stricter reading.
MAX_ENCODED_BYTES = 5 * 1024 * 1024
JPEG_QUALITY = 85
QUICK_PNG_PHOTO_BYTES = 256 * 1024
THUMBNAIL_SIZE = (320, 320)
# Modes that Pillow resamples at their full precision; any other is converted to 8-bit RGB(A) first.
RESIZABLE_MODES = {
    "L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "I;16", "I;16L", "I;16B",
}
SRGB = ImageCms.createProfile("sRGB")


class Refused(Exception):
    """The file is readable but not acceptable; `facts` is the answer."""

    def __init__(self, **facts):
        super().__init__(facts["refused"])
        self.facts = facts


class Limits(NamedTuple):
    decoded_pixels: int
    jpeg_header_pixels: int
    frames: int
    pages: int


def run(stdin: BinaryIO, max_decoded: str, max_jpeg_header: str, max_frames: str, max_pages: str,
        output: str) -> dict:
    # This process checks pixels itself (below) and the address-space limit backs it: Pillow's own bomb check
    # would refuse the 108 MP photos that decode at 1/8 scale.
    Image.MAX_IMAGE_PIXELS = None
    # One decoding thread: the CPU limit counts every thread, and each thread's stack and malloc arena takes
    # address space under the limit.
    pillow_heif.register_heif_opener(decode_threads=1, depth_images=False, aux_images=False)
    AvifImagePlugin.DEFAULT_MAX_THREADS = 1
    limits = Limits(*map(int, (max_decoded, max_jpeg_header, max_frames, max_pages)))
    try:
        with Image.open(stdin, formats=FORMATS) as image:
            return _images(image, limits, Path(output))
    except Refused as refusal:
        return refusal.facts
    except UnidentifiedImageError:
        return {"refused": "not_an_image"}
    except MemoryError:
        raise  # entry.py answers it
    except OSError as error:
        if error.errno is not None:
            raise  # the system's (a full disk while writing the output): entry.py answers it
        return {"refused": "damaged"}
    except Exception:  # noqa: BLE001 - untrusted bytes: Pillow raises many types, each meaning a broken file
        return {"refused": "damaged"}


def fitted_size(width: int, height: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio within MAX_LONG_EDGE and MAX_PIXELS (never upscaled)."""
    scale = min(1.0, MAX_LONG_EDGE / max(width, height), math.sqrt(MAX_PIXELS / (width * height)))
    return max(1, int(width * scale + 1e-9)), max(1, int(height * scale + 1e-9))  # 1568.0 may be 1567.999…


def _images(image: Image.Image, limits: Limits, output: Path) -> dict:
    """Each page of a TIFF becomes an image, up to limits.pages; of anything else, the first frame does."""
    frames = getattr(image, "n_frames", 1)  # a GIF's frames are walked to count them, without decoding
    pages = frames if image.format == "TIFF" else 1
    if pages == 1 and frames > limits.frames:
        raise Refused(refused="too_many_frames", limit=limits.frames)
    images = []
    for index in range(min(pages, limits.pages)):
        image.seek(index)
        page = index + 1 if pages > 1 else None
        decoded = _decoded(image, limits, page)
        frame, has_alpha = _fitted(image)
        images.append({**_written(frame, has_alpha, output, index + 1), "page": page, "decoded": decoded})
    return {"images": images, "pages": pages}


def _decoded(image: Image.Image, limits: Limits, page: int | None) -> tuple[int, int]:
    """Decodes the current frame, upright, at the smallest scale the decoder offers: the size it decoded."""
    width, height = image.size  # never 0: Pillow refuses such a header as unidentified
    # A baseline JPEG (what cameras and phones write; MPO too) decodes a few rows at a time, so only its
    # header is capped, and high. A progressive one keeps all its coefficients, 2 bytes each, to the end.
    baseline_jpeg = isinstance(image, JpegImagePlugin.JpegImageFile) and not image.info.get("progressive")
    header_limit = limits.jpeg_header_pixels if baseline_jpeg else limits.decoded_pixels
    if width * height > header_limit:
        raise Refused(refused="too_many_pixels", width=width, height=height, limit=header_limit, page=page)
    # JPEG scales while it decodes, never below the size we keep (fitting is symmetric, so EXIF rotation does
    # not change it); HEIF may take an embedded thumbnail at least that big; the other formats ignore this.
    image.draft(None, fitted_size(width, height))
    if image.width * image.height > limits.decoded_pixels:
        limit = limits.decoded_pixels
        raise Refused(refused="too_many_pixels", width=width, height=height, limit=limit, page=page)
    image.load()
    decoded = image.size
    ImageOps.exif_transpose(image, in_place=True)
    return decoded


def _fitted(image: Image.Image) -> tuple[Image.Image, bool]:
    """The decoded image fitted, as 8-bit sRGB, without metadata; and whether it has any transparency."""
    profile = image.info.get("icc_profile")
    frame = _resizable(image)
    has_alpha = frame.mode in ("RGBA", "LA")
    frame = _srgb(_eight_bit(_resized(frame, fitted_size(*frame.size))), profile)
    if has_alpha and frame.getchannel("A").getextrema()[0] == 255:
        frame, has_alpha = frame.convert("RGB"), False
    frame.info = {}  # EXIF, ICC, comments, XMP: nothing of the upload but its pixels is kept
    return frame, has_alpha


def _written(frame: Image.Image, has_alpha: bool, output: Path, number: int) -> dict:
    """The image and its thumbnail, encoded and written into `output`, as the server reads them."""
    data, media_type = _encoded(frame, has_alpha)
    while 4 * math.ceil(len(data) / 3) > MAX_ENCODED_BYTES:  # only noise-like images with alpha get here
        frame = _resized(frame, (max(1, int(frame.width * 0.8)), max(1, int(frame.height * 0.8))))
        data, media_type = _encoded(frame, has_alpha)
    thumbnail = frame.copy()
    thumbnail.thumbnail(THUMBNAIL_SIZE)
    thumbnail_data, thumbnail_media_type = _encoded(thumbnail, has_alpha)
    return {
        "name": _file(output, f"{number}", data, media_type), "media_type": media_type,
        "width": frame.width, "height": frame.height,
        "thumbnail_name": _file(output, f"{number}-thumbnail", thumbnail_data, thumbnail_media_type),
        "thumbnail_media_type": thumbnail_media_type,
    }


def _resizable(image: Image.Image) -> Image.Image:
    """The image in a mode that resamples well: a palette or a transparent colour becomes real colours."""
    if image.mode in RESIZABLE_MODES and "transparency" not in image.info:
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return image  # a transparent colour on 16-bit or float pixels is dropped, rather than their tones
    if image.mode == "1":
        return image.convert("L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float grey scaled to 8 bits, keeping tones (a plain conversion clips them to white).

    16-bit files say so; 32-bit integers and floats do not, so they are read in the smallest usual range that
    holds them (0-1 for floats, then 0-255 and 0-65535); anything else is stretched from its darkest to its
    lightest value.
    """
    if image.mode.startswith("I;16"):
        low, high = 0, 65535
    elif image.mode in ("I", "F"):
        low, high = image.getextrema()
        ranges = (1, 255, 65535) if image.mode == "F" else (255, 65535)
        top = next((top for top in ranges if high <= top), None)
        if low >= 0 and top is not None:
            low, high = 0, top
    else:
        return image
    scale = 255 / (high - low) if high > low else 0
    return image.convert("F").point(lambda value: (value - low) * scale).convert("L")


def _srgb(image: Image.Image, profile: bytes | None) -> Image.Image:
    """8-bit RGB or RGBA in sRGB: the colours the embedded profile describes, converted before it is dropped.

    Without a profile (or with one that does not parse or does not match the pixels), sRGB is assumed, as
    browsers do.
    """
    mode = "RGBA" if image.mode in ("RGBA", "LA") else "RGB"
    source = _profile(profile) or (ImageCms.createProfile("LAB") if image.mode == "LAB" else None)
    if source is not None:
        try:
            return ImageCms.profileToProfile(image, source, SRGB, outputMode=mode)
        except ImageCms.PyCMSError:
            pass
    return image.convert(mode)


def _profile(data: bytes | None) -> ImageCms.ImageCmsProfile | None:
    if not data:
        return None
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(data))
    except (OSError, ImageCms.PyCMSError):
        return None


def _encoded(image: Image.Image, has_alpha: bool) -> tuple[bytes, str]:
    """PNG when there is transparency, else the smaller of a good JPEG and a PNG (screenshots win as PNG).

    A quick PNG (zlib level 1) comes first. The full PNG saves 15-70% on it (the most on flat images, whose
    PNGs are small), so a quick PNG that is big and over four times the JPEG means a photo the full PNG can't
    win: photos skip the full PNG encode, the slowest step of all (~0.8 s at 1.15 MP).
    """
    if has_alpha:
        return _saved(image, "PNG"), "image/png"
    jpeg = _saved(image, "JPEG", quality=JPEG_QUALITY, optimize=True)
    quick_png = len(_saved(image, "PNG", compress_level=1))
    if quick_png > 4 * len(jpeg) and quick_png > QUICK_PNG_PHOTO_BYTES:
        return jpeg, "image/jpeg"
    png = _saved(image, "PNG")
    return (jpeg, "image/jpeg") if len(jpeg) <= len(png) else (png, "image/png")


def _saved(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def _file(output: Path, stem: str, data: bytes, media_type: str) -> str:
    name = f"{stem}.{'png' if media_type == 'image/png' else 'jpg'}"
    (output / name).write_bytes(data)
    return name
