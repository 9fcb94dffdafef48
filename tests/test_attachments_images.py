"""Images: untrusted bytes to what the model reads."""

import base64
import io
import math
import random
import struct
import time
import zlib

import pytest
from attachment_samples import (
    animated_gif, image_bytes, photo_bytes, png_chunk, png_with_header_only,
)
from django.core.exceptions import ValidationError
from PIL import Image, JpegImagePlugin

from chat.attachments import images
from chat.attachments.images import MAX_ENCODED_BYTES, image_process


def reason(process, data) -> str:
    with pytest.raises(ValidationError) as error:
        process(data)
    return error.value.messages[0]


def reopened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


# --- images that are accepted ---------------------------------------------------------------------------


def test_a_12_megapixel_jpeg_is_decoded_at_reduced_scale_and_fitted(monkeypatch):
    decoded_sizes = []
    original_load = JpegImagePlugin.JpegImageFile.load
    monkeypatch.setattr(
        JpegImagePlugin.JpegImageFile, "load", lambda image: decoded_sizes.append(image.size) or original_load(image)
    )

    result = image_process(photo_bytes((4000, 3000)))

    assert set(decoded_sizes) == {(2000, 1500)}  # the decoder scaled by 1/2 while decoding: 3 MP, never 12
    assert (result.width, result.height) == (1238, 928)
    assert result.width * result.height <= 1_150_000 and max(result.width, result.height) <= 1568
    assert result.media_type == "image/jpeg" and reopened(result.data).size == (1238, 928)
    assert result.tokens == math.ceil(1238 * 928 / 750)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((3000, 500), (1568, 261)), ((2000, 2000), (1072, 1072)), ((800, 600), (800, 600))],
)
def test_images_are_fitted_to_1568_pixels_and_115_megapixels_and_never_upscaled(size, expected):
    result = image_process(image_bytes("PNG", size))

    assert (result.width, result.height) == expected


def test_exif_orientation_is_applied_and_all_metadata_is_stripped():
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x010F] = "Secret camera"  # Make
    icc = b"\x00" * 128
    data = image_bytes("JPEG", (200, 100), exif=exif.tobytes(), icc_profile=icc, comment=b"private note")

    result = image_process(data)

    assert (result.width, result.height) == (100, 200)
    stored = reopened(result.data)
    assert not stored.getexif() and "icc_profile" not in stored.info and "comment" not in stored.info
    assert b"Secret camera" not in result.data and b"private note" not in result.data


def test_an_animation_keeps_its_first_frame():
    red, blue = Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))
    buffer = io.BytesIO()
    red.save(buffer, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)

    result = image_process(buffer.getvalue())

    stored = reopened(result.data).convert("RGB")
    assert getattr(reopened(result.data), "n_frames", 1) == 1
    assert stored.getpixel((16, 16))[0] > 200 and stored.getpixel((16, 16))[2] < 50


def test_transparency_is_kept_as_png():
    result = image_process(image_bytes("WEBP", (40, 30), "RGBA", (0, 128, 0, 100)))

    assert result.media_type == "image/png"
    assert reopened(result.data).mode == "RGBA" and reopened(result.data).getpixel((5, 5))[3] == 100


def test_a_flat_screenshot_becomes_png_and_a_photo_jpeg():
    screenshot = image_process(image_bytes("JPEG", (600, 400), color=(255, 255, 255)))
    photo = image_process(photo_bytes((1200, 900)))

    assert screenshot.media_type == "image/png"
    assert photo.media_type == "image/jpeg"


def test_an_image_that_only_compresses_badly_still_ends_under_the_api_limit():
    noise = Image.frombytes("RGBA", (1072, 1072), random.Random(7).randbytes(1072 * 1072 * 4))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")

    result = image_process(buffer.getvalue())

    assert len(base64.b64encode(result.data)) <= MAX_ENCODED_BYTES
    assert result.media_type == "image/png" and result.width < 1072


def test_an_image_gets_a_small_thumbnail():
    result = image_process(photo_bytes((1600, 1200)))

    assert max(reopened(result.thumbnail).size) == 320


# --- images that are refused ----------------------------------------------------------------------------


def test_a_truncated_jpeg_is_refused():
    data = photo_bytes((640, 480))

    assert reason(image_process, data[: len(data) // 2]) == images.DAMAGED


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"just some text, named cat.png", id="text"),
        pytest.param(b"<!doctype html><html><script>alert(1)</script></html>", id="html"),
        pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', id="svg"),
        pytest.param(b"<html><body>" + image_bytes("PNG"), id="html-then-png-polyglot"),
    ],
)
def test_text_html_and_svg_are_refused_whatever_their_name(data):
    assert reason(image_process, data) == images.NOT_AN_IMAGE


PSD = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 2, 2, 8, 3) + struct.pack(">IIIH", 0, 0, 0, 0) + bytes(12)


@pytest.mark.parametrize(
    ("data", "pillow_format"),
    [
        pytest.param(image_bytes("TIFF"), "TIFF", id="tiff"),
        pytest.param(image_bytes("EPS"), "EPS", id="eps"),
        pytest.param(image_bytes("JPEG2000"), "JPEG2000", id="jpeg2000"),
        pytest.param(PSD, "PSD", id="psd"),
    ],
)
def test_formats_outside_the_allow_list_never_reach_their_parser(data, pillow_format):
    assert Image.open(io.BytesIO(data)).format == pillow_format  # Pillow could parse them...

    assert reason(image_process, data) == images.NOT_AN_IMAGE  # ...but is never asked to


def test_a_png_with_html_inside_is_re_encoded_without_it():
    """A valid PNG that is also an HTML page (markup in a text chunk and after the end) keeps only its pixels."""
    png = image_bytes("PNG", (20, 20))
    markup = b"<html><script>alert(document.cookie)</script></html>"
    polyglot = png[:33] + png_chunk(b"tEXt", b"Comment\x00" + markup) + png[33:] + markup

    result = image_process(polyglot)

    assert b"<script" not in result.data and b"<script" not in result.thumbnail
    assert reopened(result.data).size == (20, 20)


@pytest.mark.parametrize("size", [(0, 10), (10, 0)])
def test_a_png_with_zero_width_or_height_is_refused(size):
    assert reason(image_process, png_with_header_only(*size)) == images.NOT_AN_IMAGE


@pytest.mark.parametrize("size", [(100_000, 100_000), (10_000, 10_000), (8_000, 8_000)])
def test_absurd_declared_dimensions_are_refused_before_decoding(size):
    started = time.perf_counter()

    message = reason(image_process, png_with_header_only(*size))

    assert "over the 50 megapixel limit" in message
    assert time.perf_counter() - started < 0.5


def test_a_decompression_bomb_is_refused():
    """A 100 MP greyscale PNG that compresses to ~100 kB: the pixel count stops it before the pixels are read."""
    width = height = 10_000
    compressor, rows = zlib.compressobj(9), []
    for _ in range(height):
        rows.append(compressor.compress(b"\x00" * (width + 1)))
    idat = b"".join(rows) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    assert len(bomb) < 200_000

    assert "over the 50 megapixel limit" in reason(image_process, bomb)


def test_a_gif_with_thousands_of_frames_is_refused_quickly():
    data = animated_gif(3000)
    started = time.perf_counter()

    assert reason(image_process, data) == "This animation has more than 500 frames, so it can't be attached."
    assert time.perf_counter() - started < 1
