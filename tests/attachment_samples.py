"""Files for the attachment tests and benchmark, built here with Pillow and pypdf: no binary fixtures."""

import io
import struct
import zlib

from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject


def image_bytes(image_format: str = "PNG", size=(64, 48), mode="RGB", color=(200, 30, 30), **options) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, image_format, **options)
    return buffer.getvalue()


def photo_bytes(size=(4000, 3000), **options) -> bytes:
    """A JPEG with photo-like detail (gradients and soft noise), so the encoders have something to compress."""
    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise((max(1, width // 8), max(1, height // 8)), 60).resize(size, Image.Resampling.BILINEAR)
    image = Image.merge("RGB", (gradient, noise, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size and has no pixel data at all."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


def animated_gif(frames: int) -> bytes:
    images = []
    for index in range(frames):
        frame = Image.new("P", (16, 16), 0)
        frame.putpixel((index % 16, (index // 16) % 16), 1 + index % 200)
        images.append(frame)
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=40, loop=0)
    return buffer.getvalue()


def pdf_bytes(pages: list[str], *, password: str | None = None) -> bytes:
    """A PDF whose pages hold these texts (one line each, Helvetica), optionally encrypted."""
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"),
        NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    }))
    for text in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        lines = "".join(f"({line}) Tj 0 -16 Td " for line in text.splitlines())
        page[NameObject("/Contents")] = writer._add_object(_stream(f"BT /F1 12 Tf 72 720 Td {lines}ET".encode()))
    if password is not None:
        writer.encrypt(password)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def slow_pdf(operators: int) -> bytes:
    """A small PDF whose one page is a compressed stream of `operators` text-showing operators.

    The file is a few kilobytes; extracting its text keeps pypdf busy for seconds to minutes (about 2.7 s per
    100,000 operators here), like the crafted files that make parsers spin.
    """
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({
        NameObject("/F1"): writer._add_object(DictionaryObject({
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }))
    })})
    page[NameObject("/Contents")] = writer._add_object(
        _stream(b"BT /F1 12 Tf 0 0 Td (a) Tj ET\n" * operators).flate_encode()
    )
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _stream(data: bytes) -> DecodedStreamObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    return stream
