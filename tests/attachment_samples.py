"""Files for the attachment tests and benchmark, built here (Pillow, pillow-heif, pypdf): no binary fixtures."""

import io
import struct
import zlib

import pillow_heif
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


def mpo_bytes(size=(4000, 3000)) -> bytes:
    """A phone photo with a gain map: a JPEG followed by a smaller second image, which Pillow reads as MPO."""
    photo = Image.open(io.BytesIO(photo_bytes(size)))
    gain_map = Image.new("L", (size[0] // 4, size[1] // 4), 128)
    buffer = io.BytesIO()
    photo.save(buffer, "MPO", save_all=True, append_images=[gain_map], quality=90)
    return buffer.getvalue()


def heic_bytes(image: Image.Image, **options) -> bytes:
    """The iPhone's format, written by pillow-heif (EXIF orientation becomes the file's own rotation)."""
    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    image.save(buffer, "HEIF", quality=90, **options)
    return buffer.getvalue()


def tiff_bytes(pages: list[Image.Image], **options) -> bytes:
    buffer = io.BytesIO()
    options = {"compression": "tiff_deflate", **options}
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:], **options)
    return buffer.getvalue()


def png_16_bit_rgb(size, color: tuple[int, int, int]) -> bytes:
    """A 16-bit-per-channel RGB PNG of one colour, written by hand: Pillow has no such mode to save from."""
    width, height = size
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    row = b"\x00" + struct.pack(">HHH", *color) * width
    return _png(header, zlib.compress(row * height))


def blank_png(width: int, height: int, *, color_type: int = 6) -> bytes:
    """A black PNG (RGBA by default) of any size, compressed row by row: never held as pixels here."""
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    compressor, parts = zlib.compressobj(9), []
    row = b"\x00" * (width * channels + 1)
    for _ in range(height):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return _png(header, b"".join(parts))


def _png(header: bytes, idat: bytes) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


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


# --- ICC profiles, packed by hand (ICC.1:2001, version 2): littlecms reads them as a camera's or a printer's

D50 = (0.9642, 1.0, 0.8249)


def adobe_rgb_profile() -> bytes:
    """Adobe RGB (1998), wider than sRGB in the greens: a matrix/TRC profile with its D50-adapted primaries."""
    gamma = _curve(563 / 256)
    return _icc_profile(b"mntr", b"RGB ", b"XYZ ", {
        b"desc": _description("Adobe RGB (1998), test copy"),
        b"wtpt": _xyz(*D50),
        b"rXYZ": _xyz(0.60974, 0.31111, 0.01947),
        b"gXYZ": _xyz(0.20528, 0.62567, 0.06087),
        b"bXYZ": _xyz(0.14919, 0.06322, 0.74457),
        b"rTRC": gamma, b"gTRC": gamma, b"bTRC": gamma,
    })


def cyan_prints_red_profile() -> bytes:
    """A CMYK printer profile whose cyan ink prints red, magenta green and yellow blue (two inks or K: black).

    Absurd on purpose: a naive CMYK conversion makes cyan cyan, so a red result shows the profile was applied.
    """
    lab = {(0, 0, 0): (100, 0, 0), (1, 0, 0): (54, 80, 67), (0, 1, 0): (88, -79, 81), (0, 0, 1): (32, 79, -108)}
    grid = b"".join(  # 2 points per ink, cyan varying slowest; PCS Lab encoded as L*255/100, a+128, b+128
        bytes((round(L * 255 / 100), max(0, min(255, a + 128)), max(0, min(255, b + 128))))
        for c in (0, 1) for m in (0, 1) for y in (0, 1) for k in (0, 1)
        for L, a, b in [lab.get((c, m, y), (0, 0, 0)) if not k else (0, 0, 0)]
    )
    identity = bytes(range(256))
    matrix = b"".join(_s15(value) for value in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = b"mft1" + bytes(4) + bytes((4, 3, 2, 0)) + matrix + identity * 4 + grid + identity * 3
    return _icc_profile(b"prtr", b"CMYK", b"Lab ", {
        b"desc": _description("Cyan prints red"), b"wtpt": _xyz(*D50), b"A2B0": lut,
    })


def _icc_profile(device_class: bytes, color_space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    start = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags.items():
        table += signature + struct.pack(">II", start + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    header = (
        struct.pack(">I4sI4s4s4s", start + len(data), bytes(4), 0x02100000, device_class, color_space, pcs)
        + bytes(12) + b"acsp" + bytes(28) + b"".join(_s15(value) for value in D50) + bytes(48)
    )
    return header + struct.pack(">I", len(tags)) + table + data


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _curve(gamma: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))


def _description(text: str) -> bytes:
    ascii_text = text.encode() + b"\x00"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(8 + 3 + 67)
