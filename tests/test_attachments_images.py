"""Images: an untrusted file on disk to what the model reads, decoded in the limited child."""

import base64
import io
import math
import random
import struct

import pytest
from attachment_samples import (
    adobe_rgb_profile,
    animated_gif,
    blank_png,
    cyan_prints_red_profile,
    heic_bytes,
    image_bytes,
    mpo_bytes,
    photo_bytes,
    png_16_bit_rgb,
    png_chunk,
    png_with_header_only,
    tiff_bytes,
)
from django.core.exceptions import ValidationError
from PIL import Image

from chat.attachments import formats, images
from chat.attachments.images import ImagesRead, ProcessedImage, image_read
from chat.attachments.isolation import isolated_run
from chat.attachments.workers.image_pixels import MAX_ENCODED_BYTES


def read(folder, data: bytes) -> ImagesRead:
    source, output = folder / "upload", folder / "output"
    output.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    return image_read(source, output)


def read_one(folder, data: bytes) -> ProcessedImage:
    result = read(folder, data)
    assert len(result.images) == 1 and result.note is None
    return result.images[0]


def reason(tmp_path, data: bytes) -> str:
    with pytest.raises(ValidationError) as error:
        read(tmp_path, data)
    return error.value.messages[0]


@pytest.fixture
def decoded_sizes(monkeypatch) -> list[tuple[int, int]]:
    """The size the real child decoded each image at, as it reports beside each image."""
    sizes = []

    def observed(*args, **kwargs):
        answer = isolated_run(*args, **kwargs)
        sizes.extend(tuple(image["decoded"]) for image in answer.get("images", []))
        return answer

    monkeypatch.setattr(images, "isolated_run", observed)
    return sizes


def opened(path) -> Image.Image:
    return Image.open(path, formats=("JPEG", "PNG"))


def pixel(image: ProcessedImage, xy=(0, 0)) -> tuple:
    return opened(image.path).convert("RGB").getpixel(xy)


def near(color, expected, tolerance=3) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(color, expected, strict=True))


# --- images that are accepted -----------------------------------------------------------------------------


def test_a_12_megapixel_jpeg_is_decoded_at_reduced_scale_and_fitted(tmp_path, decoded_sizes):
    image = read_one(tmp_path, photo_bytes((4000, 3000)))

    assert decoded_sizes == [(2000, 1500)]  # scaled by 1/2 while decoding: 3 MP, never 12
    assert (image.width, image.height) == (1238, 928)
    assert image.media_type == "image/jpeg" and opened(image.path).size == (1238, 928)
    assert image.path.parent == tmp_path / "output" and image.page is None
    assert image.tokens == math.ceil(1238 * 928 / 750)


def test_a_phone_photo_with_a_gain_map_shrinks_while_decoding_like_any_jpeg(tmp_path, decoded_sizes):
    data = mpo_bytes((4000, 3000))
    assert Image.open(io.BytesIO(data)).format == "MPO"

    image = read_one(tmp_path, data)

    assert decoded_sizes == [(2000, 1500)]
    assert (image.width, image.height) == (1238, 928) and image.media_type == "image/jpeg"


def test_a_jpeg_over_the_pixel_limit_is_accepted_when_decoding_at_reduced_scale_brings_it_under(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(images, "MAX_DECODED_PIXELS", 5_000_000)  # 12 MP declared, 3 MP decoded

    image = read_one(tmp_path, photo_bytes((4000, 3000)))

    assert (image.width, image.height) == (1238, 928)
    assert "over the 5 megapixel limit" in reason(tmp_path, blank_png(4000, 3000, color_type=2))  # PNG: never
    progressive = photo_bytes((4000, 3000), progressive=True)  # holds every coefficient while decoding
    assert "is 4,000 x 3,000 pixels, over the 5 megapixel limit" in reason(tmp_path, progressive)


def test_a_192_megapixel_jpeg_is_not_refused_by_pillows_own_bomb_check(tmp_path, decoded_sizes):
    """Pillow refuses anything over 179 MP by default; the child decodes this one at 1/8 scale."""
    buffer = io.BytesIO()
    Image.new("L", (16_000, 12_000), 128).save(buffer, "JPEG", quality=50)

    image = read_one(tmp_path, buffer.getvalue())

    assert (image.width, image.height) == (1238, 928) and decoded_sizes == [(2000, 1500)]


def test_a_jpeg_whose_header_is_over_the_jpeg_limit_is_refused_with_its_size(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_JPEG_HEADER_PIXELS", 10_000_000)

    assert reason(tmp_path, photo_bytes((4000, 3000))) == (
        "This image is 4,000 x 3,000 pixels, over the 10 megapixel limit, so it can't be attached. "
        "Make it smaller and attach it again."
    )


@pytest.mark.parametrize(
    ("size", "expected"),
    [((3000, 500), (1568, 261)), ((2000, 2000), (1072, 1072)), ((800, 600), (800, 600))],
)
def test_images_are_fitted_to_1568_pixels_and_115_megapixels_and_never_upscaled(tmp_path, size, expected):
    image = read_one(tmp_path, image_bytes("PNG", size))

    assert (image.width, image.height) == expected


def test_exif_orientation_is_applied_and_all_metadata_is_stripped(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x010F] = "Secret camera"  # Make
    icc = b"\x00" * 128  # not a profile littlecms can read: the pixels are taken as sRGB
    data = image_bytes("JPEG", (200, 100), exif=exif.tobytes(), icc_profile=icc, comment=b"private note")

    image = read_one(tmp_path, data)

    assert (image.width, image.height) == (100, 200)
    stored = opened(image.path)
    assert not stored.getexif() and "icc_profile" not in stored.info and "comment" not in stored.info
    assert b"Secret camera" not in image.path.read_bytes() and b"private note" not in image.path.read_bytes()


def test_an_animation_keeps_its_first_frame(tmp_path):
    red, blue = Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))
    buffer = io.BytesIO()
    red.save(buffer, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)

    image = read_one(tmp_path, buffer.getvalue())

    assert getattr(opened(image.path), "n_frames", 1) == 1
    assert near(pixel(image, (16, 16)), (255, 0, 0), tolerance=10)


def test_transparency_is_kept_as_png(tmp_path):
    image = read_one(tmp_path, image_bytes("WEBP", (40, 30), "RGBA", (0, 128, 0, 100), lossless=True))

    assert image.media_type == "image/png"
    assert opened(image.path).mode == "RGBA" and opened(image.path).getpixel((5, 5)) == (0, 128, 0, 100)


def test_a_palette_image_with_a_transparent_colour_keeps_its_colours_and_transparency(tmp_path):
    palette = Image.new("P", (40, 30), 1)
    palette.putpalette([0, 0, 0, 30, 90, 200])
    palette.paste(0, (0, 0, 20, 30))
    buffer = io.BytesIO()
    palette.save(buffer, "PNG", transparency=0)

    image = read_one(tmp_path, buffer.getvalue())

    stored = opened(image.path)
    assert image.media_type == "image/png" and stored.mode == "RGBA"
    assert stored.getpixel((5, 15))[3] == 0 and stored.getpixel((35, 15)) == (30, 90, 200, 255)


def test_a_flat_screenshot_becomes_png_and_a_photo_jpeg(tmp_path):
    screenshot = read_one(tmp_path / "screenshot", image_bytes("JPEG", (600, 400), color=(255, 255, 255)))
    photo = read_one(tmp_path / "photo", photo_bytes((1200, 900)))

    assert screenshot.media_type == "image/png"
    assert photo.media_type == "image/jpeg"


def test_an_image_that_only_compresses_badly_still_ends_under_the_api_limit(tmp_path):
    noise = Image.frombytes("RGBA", (1072, 1072), random.Random(7).randbytes(1072 * 1072 * 4))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")

    image = read_one(tmp_path, buffer.getvalue())

    assert len(base64.b64encode(image.path.read_bytes())) <= MAX_ENCODED_BYTES
    assert image.media_type == "image/png" and image.width < 1072


def test_an_image_gets_a_small_thumbnail(tmp_path):
    image = read_one(tmp_path, photo_bytes((1600, 1200)))

    assert image.thumbnail_path.parent == tmp_path / "output" and image.thumbnail_path != image.path
    assert max(opened(image.thumbnail_path).size) == 320 and image.thumbnail_media_type == "image/jpeg"


# --- correct pixels ---------------------------------------------------------------------------------------


def test_a_16_bit_grey_png_keeps_its_tones(tmp_path):
    grey = Image.new("I;16", (64, 48), 0x2000)  # a dark grey: 8,192 of 65,535
    grey.paste(Image.new("I;16", (32, 48), 0xC000), (32, 0))  # and a light one: 49,152
    buffer = io.BytesIO()
    grey.save(buffer, "PNG")

    image = read_one(tmp_path, buffer.getvalue())

    assert near(pixel(image, (8, 24)), (32, 32, 32), tolerance=1)
    assert near(pixel(image, (56, 24)), (192, 192, 192), tolerance=1)


def test_a_16_bit_rgb_png_keeps_its_colours(tmp_path):
    image = read_one(tmp_path, png_16_bit_rgb((40, 30), (0x8000, 0x4000, 0xC000)))

    assert near(pixel(image), (128, 64, 192), tolerance=1)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        pytest.param("I", 16_384, 64, id="32-bit-integers-holding-16-bit-values"),
        pytest.param("I", 100, 100, id="32-bit-integers-holding-8-bit-values"),
        pytest.param("F", 0.25, 64, id="floats-from-0-to-1"),
    ],
)
def test_a_tiff_of_integers_or_floats_keeps_its_tones(tmp_path, mode, value, expected):
    scan = Image.new(mode, (40, 30), value)
    scan.paste(0, (0, 0, 10, 30))

    image = read_one(tmp_path, tiff_bytes([scan]))

    assert near(pixel(image, (30, 15)), (expected,) * 3, tolerance=1) and pixel(image, (2, 15)) == (0, 0, 0)


def test_an_adobe_rgb_photo_is_converted_to_srgb_before_its_profile_is_dropped(tmp_path):
    """(120, 200, 120) in Adobe RGB is (51, 201, 116) in sRGB: the Adobe-to-sRGB matrix on linear light, with
    Adobe's 563/256 gamma and the sRGB curve. Read as sRGB, it would stay (120, 200, 120)."""
    data = image_bytes("PNG", (40, 30), color=(120, 200, 120), icc_profile=adobe_rgb_profile())

    image = read_one(tmp_path, data)

    assert near(pixel(image), (51, 201, 116))
    assert "icc_profile" not in opened(image.path).info


def test_a_cmyk_jpeg_is_converted_naively_without_a_profile_and_through_its_profile_with_one(tmp_path):
    cyan = (255, 0, 0, 0)

    plain = read_one(tmp_path / "plain", image_bytes("JPEG", (40, 30), "CMYK", cyan))
    with_profile = image_bytes("JPEG", (40, 30), "CMYK", cyan, icc_profile=cyan_prints_red_profile())
    profiled = read_one(tmp_path / "profiled", with_profile)

    assert near(pixel(plain), (0, 255, 255), tolerance=8)
    assert near(pixel(profiled), (255, 0, 0), tolerance=16)


# --- formats people have ----------------------------------------------------------------------------------


def test_a_heic_photo_is_accepted_and_turned_upright(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # the iPhone's portrait shots: stored sideways, rotated to display
    photo = Image.new("RGB", (400, 200), (200, 30, 30))
    photo.paste((30, 30, 200), (0, 0, 200, 200))  # blue on the left: after rotating clockwise, on top

    image = read_one(tmp_path, heic_bytes(photo, exif=exif.tobytes()))

    assert (image.width, image.height) == (200, 400) and image.media_type in ("image/jpeg", "image/png")
    assert near(pixel(image, (100, 50)), (30, 30, 200), tolerance=12)
    assert near(pixel(image, (100, 350)), (200, 30, 30), tolerance=12)


@pytest.mark.parametrize(
    ("image_format", "options"),
    [
        pytest.param("AVIF", {"quality": 90}, id="avif"),
        pytest.param("BMP", {}, id="bmp"),
        pytest.param("TIFF", {"compression": "tiff_lzw"}, id="tiff"),
        pytest.param("WEBP", {"lossless": True}, id="webp"),
        pytest.param("GIF", {}, id="gif"),
    ],
)
def test_avif_bmp_tiff_webp_and_gif_images_are_accepted(tmp_path, image_format, options):
    image = read_one(tmp_path, image_bytes(image_format, (64, 48), color=(30, 90, 200), **options))

    assert (image.width, image.height) == (64, 48) and image.page is None
    assert near(pixel(image), (30, 90, 200), tolerance=6)


def test_a_black_and_white_fax_tiff_is_accepted(tmp_path):
    fax = Image.new("1", (1728, 2200), 1)
    fax.paste(0, (0, 0, 864, 2200))

    image = read_one(tmp_path, tiff_bytes([fax], compression="group4"))

    assert pixel(image, (10, 10)) == (0, 0, 0) and pixel(image, (image.width - 10, 10)) == (255, 255, 255)


def test_each_page_of_a_multi_page_tiff_becomes_its_own_image(tmp_path):
    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    pages = [Image.new("RGB", (64, 48), color) for color in colors]

    result = read(tmp_path, tiff_bytes(pages))

    assert [image.page for image in result.images] == [1, 2, 3] and result.note is None
    assert [pixel(image) for image in result.images] == colors
    assert len({image.path for image in result.images}) == 3


def test_a_tiff_with_more_pages_than_the_limit_gets_the_first_ones_and_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_TIFF_PAGES", 2)
    pages = [Image.new("L", (64, 48), 10 * index) for index in range(3)]

    result = read(tmp_path, tiff_bytes(pages))

    assert [image.page for image in result.images] == [1, 2]
    assert result.note == "This TIFF has 3 pages; the first 2 are attached."


def test_a_tiff_page_over_the_pixel_limit_is_refused_naming_the_page(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_DECODED_PIXELS", 1_000_000)
    pages = [Image.new("L", (640, 480)), Image.new("L", (2000, 1000))]

    assert reason(tmp_path, tiff_bytes(pages)).startswith(
        "Page 2 of this TIFF is 2,000 x 1,000 pixels, over the 1 megapixel limit"
    )


# --- images that are refused ------------------------------------------------------------------------------


def test_a_truncated_jpeg_is_refused(tmp_path):
    data = photo_bytes((640, 480))

    assert reason(tmp_path, data[: len(data) // 2]) == images.DAMAGED


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xff\xd8\xff\xe0" + b"junk" * 100, id="jpeg"),
        pytest.param(b"GIF89a" + b"junk" * 100, id="gif"),
        pytest.param(b"II*\x00" + b"junk" * 100, id="tiff"),
    ],
)
def test_a_file_that_starts_like_an_image_but_no_parser_takes_is_damaged_not_unknown(tmp_path, data):
    assert reason(tmp_path, data) == images.DAMAGED


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"just some text, named cat.png", id="text"),
        pytest.param(b"<!doctype html><html><script>alert(1)</script></html>", id="html"),
        pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', id="svg"),
        pytest.param(b"<html><body>" + image_bytes("PNG"), id="html-then-png-polyglot"),
    ],
)
def test_text_html_and_svg_are_refused_whatever_their_name(tmp_path, data):
    assert reason(tmp_path, data) == formats.NOT_KNOWN  # which lists what can be attached

PSD = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 2, 2, 8, 3) + struct.pack(">IIIH", 0, 0, 0, 0) + bytes(12)


@pytest.mark.parametrize(
    ("data", "pillow_format"),
    [
        pytest.param(image_bytes("EPS"), "EPS", id="eps"),
        pytest.param(image_bytes("JPEG2000"), "JPEG2000", id="jpeg2000"),
        pytest.param(PSD, "PSD", id="psd"),
        pytest.param(image_bytes("ICO"), "ICO", id="ico"),
        pytest.param(image_bytes("PCX"), "PCX", id="pcx"),
    ],
)
def test_formats_outside_the_allow_list_never_reach_their_parser(tmp_path, data, pillow_format):
    assert Image.open(io.BytesIO(data)).format == pillow_format  # Pillow could parse them...

    assert reason(tmp_path, data) == formats.NOT_KNOWN  # ...but is never asked to


def test_a_png_with_html_inside_is_re_encoded_without_it(tmp_path):
    """A PNG that is also an HTML page (markup in a text chunk and after the end) keeps only its pixels."""
    png = image_bytes("PNG", (20, 20))
    markup = b"<html><script>alert(document.cookie)</script></html>"
    polyglot = png[:33] + png_chunk(b"tEXt", b"Comment\x00" + markup) + png[33:] + markup

    image = read_one(tmp_path, polyglot)

    assert b"<script" not in image.path.read_bytes() and b"<script" not in image.thumbnail_path.read_bytes()
    assert opened(image.path).size == (20, 20)


@pytest.mark.parametrize("size", [(0, 10), (10, 0)])
def test_a_png_with_zero_width_or_height_is_refused_as_damaged(tmp_path, size):
    assert reason(tmp_path, png_with_header_only(*size)) == images.DAMAGED


@pytest.mark.parametrize("size", [(100_000, 100_000), (10_000, 10_000), (8_000, 8_000)])
def test_absurd_declared_dimensions_are_refused_before_decoding(tmp_path, size):
    """These PNGs have no pixel data at all: decoding them would say "damaged"."""
    assert reason(tmp_path, png_with_header_only(*size)) == (
        f"This image is {size[0]:,} x {size[1]:,} pixels, over the 50 megapixel limit, "
        "so it can't be attached. Make it smaller and attach it again."
    )


def test_a_decompression_bomb_is_refused(tmp_path):
    """A 100 MP grey PNG that compresses to ~100 kB: the pixel count stops it before any pixel is read."""
    bomb = blank_png(10_000, 10_000, color_type=0)
    assert len(bomb) < 200_000

    assert "is 10,000 x 10,000 pixels, over the 50 megapixel limit" in reason(tmp_path, bomb)


def test_a_gif_with_thousands_of_frames_is_refused(tmp_path):
    assert reason(tmp_path, animated_gif(3000)) == (
        "This animation has more than 500 frames, so it can't be attached. "
        "Attach a still image or a shorter animation."
    )
