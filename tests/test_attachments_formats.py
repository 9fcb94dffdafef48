"""What each kind of file becomes when it is uploaded, through the upload view: one real file of every accepted
kind, and of every kind that is refused, with the sentence that says what it is and what to do."""

import struct
from pathlib import Path

import document_samples as samples
import pytest
from attachment_samples import animated_gif, image_bytes, pdf_bytes, photo_bytes
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from pypdf import PdfReader

from chat.attachments import formats, images, storage
from chat.models import Attachment

# The view processes uploads on the thread pool, each thread with its own connection: the test's rows (the
# signed-in user's session) must be committed for those threads to see them.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def results(client, name: str, data: bytes) -> list[dict]:
    response = client.post(reverse("attachment_upload"), {"file": SimpleUploadedFile(name, data)})
    assert response.status_code == 200, response.content
    return response.json()["files"]


def attached(client, name: str, data: bytes) -> dict:
    [result] = results(client, name, data)
    assert "attachment" in result, result
    return result["attachment"]


def stored_files(media_root: Path) -> list[Path]:
    return sorted(path for path in media_root.rglob("*") if path.is_file())


# --- accepted: images and PDFs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        pytest.param("photo.jpg", photo_bytes((800, 600)), id="jpeg"),
        pytest.param("screenshot.png", image_bytes("PNG"), id="png"),
        pytest.param("party.gif", animated_gif(3), id="gif"),
        pytest.param("sticker.webp", image_bytes("WEBP"), id="webp"),
        pytest.param("IMG_0001.HEIC", samples.heic_bytes(), id="heic"),
        pytest.param("frame.avif", image_bytes("AVIF"), id="avif"),
        pytest.param("scan.tiff", image_bytes("TIFF"), id="tiff"),
        pytest.param("old.bmp", image_bytes("BMP"), id="bmp"),
    ],
)
def test_every_accepted_image_format_becomes_an_image(owner_client, media_root, name, data):
    attachment = attached(owner_client, name, data)

    row = Attachment.objects.get()
    assert (attachment["kind"], attachment["name"], attachment["note"]) == ("image", name, "")
    assert row.media_type in ("image/jpeg", "image/png") and row.width and row.height
    assert storage.file_path(row.file).exists() and storage.file_path(row.thumbnail).exists()


def test_a_multi_page_tiff_becomes_an_image_per_page(owner_client, media_root):
    files = results(owner_client, "scan.tiff", samples.tiff_pages(3))

    assert [result["name"] for result in files] == [f"scan.tiff (page {n})" for n in (1, 2, 3)]
    assert len({result["attachment"]["url"] for result in files}) == 3
    assert len(stored_files(media_root)) == 6  # an image and a thumbnail for each page


def test_a_tiff_over_the_page_limit_says_on_its_first_page_which_pages_are_attached(owner_client):
    files = results(owner_client, "long scan.tif", samples.tiff_pages(21))

    assert len(files) == 20
    assert files[0]["attachment"]["note"] == "This TIFF has 21 pages; the first 20 are attached."
    assert {result["attachment"]["note"] for result in files[1:]} == {""}


def test_a_pdf_is_sent_as_a_pdf(owner_client):
    attachment = attached(owner_client, "report.pdf", pdf_bytes(["Annual report", "Appendix"]))

    assert (attachment["kind"], attachment["media_type"]) == ("pdf", "application/pdf")
    assert attachment["page_count"] == 2
    assert attachment["note"] == ""


def test_a_secured_pdf_that_opens_without_a_password_is_stored_unlocked(owner_client):
    attachment = attached(owner_client, "statement.pdf", samples.secured_pdf(["Balance: 1,234.56"]))

    row = Attachment.objects.get()
    assert (attachment["kind"], attachment["page_count"]) == ("pdf", 1)
    stored = PdfReader(storage.file_path(row.file))
    assert not stored.is_encrypted and "Balance: 1,234.56" in stored.pages[0].extract_text()


def test_a_pdf_over_100_pages_is_sent_as_the_text_of_its_pages(owner_client):
    attachment = attached(owner_client, "minutes.pdf", pdf_bytes([f"Meeting {n}" for n in range(1, 301)]))

    row = Attachment.objects.get()
    assert (attachment["kind"], attachment["media_type"], attachment["page_count"]) == ("text", "text/plain", 300)
    assert attachment["note"] == (
        "300 pages: over the model's 100-page limit for PDFs, so it reads the text of every page, without the "
        "page images."
    )
    text = storage.file_path(row.file).read_text()
    assert text.startswith("--- Page 1 ---\nMeeting 1\n\n--- Page 2 ---\nMeeting 2")
    assert text.endswith("--- Page 300 ---\nMeeting 300\n") and row.file.endswith(".txt")


# --- accepted: text -------------------------------------------------------------------------------------


TEXTS = [
    pytest.param("notes.txt", b"Buy milk\nCall Ana\n", "Buy milk\nCall Ana\n", id="plain-text"),
    pytest.param("README.md", b"# Setup\n\n- run `make`\n", "# Setup\n\n- run `make`\n", id="markdown"),
    pytest.param("sales.csv", b"region,total\nnorth,12\n", "region,total\nnorth,12\n", id="csv"),
    pytest.param("config.json", b'{"debug": false}\n', '{"debug": false}\n', id="json"),
    pytest.param("tool.py", b"def main():\n    print('hi')\n", "def main():\n    print('hi')\n", id="source-code"),
    pytest.param("Makefile", b"test:\n\tpytest\n", "test:\n\tpytest\n", id="no-extension"),
    pytest.param("thesis.tex", b"%!TEX program = xelatex\n", "%!TEX program = xelatex\n", id="latex-magic-comment"),
    pytest.param("names.png", "Zoë, Jürgen, 李雷\n".encode(), "Zoë, Jürgen, 李雷\n", id="utf-8-named-as-an-image"),
    pytest.param("bom.txt", "\ufeffcafé\n".encode(), "café\n", id="utf-8-with-bom"),
    pytest.param("windows.txt", "Grüße\r\n".encode("utf-16"), "Grüße\r\n", id="utf-16-with-bom"),
    pytest.param("big-endian.txt", "\ufeffΩ\n".encode("utf-16-be"), "Ω\n", id="utf-16-be-with-bom"),
    pytest.param("excel.csv", "naïve;€ 5\r\n".encode("cp1252"), "naïve;€ 5\r\n", id="windows-1252-csv"),
    pytest.param("export.csv", "Name;Größe\r\n一,2\r\n".encode("utf-16-le"), "Name;Größe\r\n一,2\r\n",
                 id="utf-16-le-without-bom"),
    pytest.param("export.txt", "Grüße\n".encode("utf-16-be"), "Grüße\n", id="utf-16-be-without-bom"),
    pytest.param("wide.txt", "Grüße 🙂\n".encode("utf-32"), "Grüße 🙂\n", id="utf-32-with-bom"),
    pytest.param("wide-be.txt", "\ufeffΩ\n".encode("utf-32-be"), "Ω\n", id="utf-32-be-with-bom"),
    # Comments before anything else make no markup of a text: found quickly however many (2**200 ways to split
    # them, tried one by one, when the pattern could backtrack into them).
    pytest.param("comments.txt", b"<!--a-->" * 200 + b"X", "<!--a-->" * 200 + "X", id="200-comments-then-text"),
]


@pytest.mark.parametrize(("name", "data", "text"), TEXTS)
def test_text_of_any_kind_becomes_a_text_document_stored_as_utf8(owner_client, name, data, text):
    attachment = attached(owner_client, name, data)

    row = Attachment.objects.get()
    assert (attachment["kind"], attachment["media_type"], attachment["name"]) == ("text", "text/plain", name)
    assert storage.file_path(row.file).read_bytes() == text.encode("utf-8")
    assert row.file.endswith(".txt") and row.tokens >= len(text) // 4 and attachment["thumbnail_url"] is None


def test_a_word_document_becomes_its_text_with_tables_in_place(owner_client):
    data = samples.docx_bytes(["Offer", "Prices below."], [["Item", "Price"], ["Desk", "120"]])

    attachment = attached(owner_client, "offer.docx", data)

    row = Attachment.objects.get()
    assert (attachment["kind"], attachment["name"]) == ("text", "offer.docx")
    assert storage.file_path(row.file).read_text() == "Offer\nPrices below.\nItem | Price\nDesk | 120"


# --- refused: what it is, and what to do ----------------------------------------------------------------


def archive(kind: str) -> str:
    return f"{kind} archives are not supported: attach the files inside."


def recording(what: str) -> str:
    return f"This is {what}, which the model can't play: attach a transcript as a text file instead."


def video(what: str) -> str:
    instead = "attach screenshots, or a transcript as a text file, instead."
    return f"This is {what}, which the model can't play: {instead}"


def program(what: str) -> str:
    return f"This is a program ({what}), which can't be attached: attach its source code instead."


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
HTML = b"<!DOCTYPE html>\n<html><body><script>alert(1)</script></body></html>"
POSTSCRIPT = b"%!PS-Adobe-3.0\n/Times findfont 12 scalefont setfont\nshowpage\n"
ENCRYPTED_OFFICE = samples.ole2_bytes(["EncryptionInfo", "EncryptedPackage"])

REFUSED = [
    pytest.param("files.zip", samples.zip_bytes(), formats.ZIP, id="zip"),
    pytest.param("files.rar", samples.rar_bytes(), archive("RAR"), id="rar"),
    pytest.param("files.7z", samples.seven_zip_bytes(), archive("7-Zip"), id="7z"),
    pytest.param("log.gz", samples.gzip_bytes(), archive("gzip (.gz, .tgz)"), id="gzip"),
    pytest.param("log.bz2", samples.bzip2_bytes(), archive("bzip2"), id="bzip2"),
    pytest.param("log.xz", samples.xz_bytes(), archive("xz"), id="xz"),
    pytest.param("log.zst", samples.zstd_bytes(), archive("Zstandard"), id="zstd"),
    pytest.param("backup.tar", samples.tar_bytes(), archive("tar"), id="tar"),
    pytest.param("letter.doc", samples.ole2_bytes(["WordDocument"]), formats.OLD_OFFICE, id="doc"),
    pytest.param("budget.xls", samples.ole2_bytes(["Workbook"]), formats.OLD_OFFICE, id="xls"),
    pytest.param("talk.ppt", samples.ole2_bytes(["PowerPoint Document"]), formats.OLD_OFFICE, id="ppt"),
    pytest.param("locked.docx", ENCRYPTED_OFFICE, formats.OFFICE_PASSWORD, id="password-protected-docx"),
    pytest.param("other.bin", samples.ole2_bytes(["Contents"]), formats.NOT_KNOWN, id="other-compound-file"),
    pytest.param("budget.xlsx", samples.xlsx_bytes(), formats.PACKAGE_REFUSALS["xlsx"], id="xlsx"),
    pytest.param("talk.pptx", samples.pptx_bytes(), formats.PACKAGE_REFUSALS["pptx"], id="pptx"),
    pytest.param("minutes.odt", samples.odt_bytes(), formats.PACKAGE_REFUSALS["odf"], id="odt"),
    pytest.param("novel.epub", samples.epub_bytes(), formats.PACKAGE_REFUSALS["epub"], id="epub"),
    pytest.param("print.eps", image_bytes("EPS"), formats.POSTSCRIPT, id="eps"),
    pytest.param("print.ps", POSTSCRIPT, formats.POSTSCRIPT, id="postscript"),
    pytest.param("logo.svg", SVG, formats.SVG, id="svg"),
    pytest.param("page.html", HTML, formats.HTML, id="html"),
    pytest.param("page.png", b"<!-- saved -->\n<html><body>hi</body></html>", formats.HTML, id="html-as-png"),
    pytest.param("page.txt", b"<!--a-->" * 200 + b"<html>", formats.HTML, id="html-after-200-comments"),
    pytest.param("page.htm", "<!DOCTYPE html>\n<html>".encode("utf-16-le"), formats.HTML, id="html-in-utf-16"),
    pytest.param("photo.jpg", b"\xff\xd8\xff" + b"not a jpeg " * 100, images.DAMAGED, id="jpeg-start-then-junk"),
    pytest.param("memo.wav", samples.wav_bytes(), recording("a WAV audio file"), id="wav"),
    pytest.param("song.mp3", samples.mp3_bytes(), recording("an MP3 audio file"), id="mp3"),
    pytest.param("raw.mp3", samples.mp3_without_tag_bytes(), recording("an MP3 or AAC audio file"), id="mp3-raw"),
    pytest.param("voice.m4a", samples.m4a_bytes(), recording("an MPEG-4 audio file"), id="m4a"),
    pytest.param("clip.mp4", samples.mp4_bytes(), video("an MP4 or QuickTime video"), id="mp4"),
    pytest.param("clip.webm", samples.webm_bytes(), video("a Matroska or WebM video"), id="webm"),
    pytest.param("tool", samples.elf_bytes(), program("a Linux executable or library"), id="elf"),
    pytest.param("setup.exe", samples.exe_bytes(), program("a Windows executable or library"), id="exe"),
    pytest.param("locked.pdf", pdf_bytes(["secret"], password="pw"), formats.PDF_PASSWORD, id="pdf-password"),
    pytest.param("data.bin", bytes(range(256)) * 4, formats.NOT_KNOWN, id="unknown-binary"),
    pytest.param("latin.txt", b"caf\xe9\x01\x02", formats.NOT_KNOWN, id="not-text-in-any-encoding"),
    # Each 16-bit unit has a NUL byte, like UTF-16 text, but reads as control characters.
    pytest.param("counts.bin", struct.pack("<255H", *range(1, 256)), formats.NOT_KNOWN, id="16-bit-numbers"),
]


@pytest.mark.parametrize(("name", "data", "sentence"), REFUSED)
def test_a_refused_format_is_named_with_what_to_do_and_nothing_is_stored(
    owner_client, media_root, name, data, sentence
):
    assert results(owner_client, name, data) == [{"name": name, "error": sentence}]
    assert not Attachment.objects.exists() and not stored_files(media_root)


def test_the_sentence_for_an_unknown_file_lists_what_can_be_attached():
    assert formats.NOT_KNOWN == (
        "This file isn't a kind that can be attached. You can attach images (JPEG, PNG, GIF, WebP, HEIC, AVIF, "
        "TIFF, BMP), PDFs, Word documents (.docx) and text files (plain text, Markdown, CSV, JSON, source code)."
    )


def test_an_empty_file_is_refused(owner_client):
    assert results(owner_client, "empty.txt", b"") == [{"name": "empty.txt", "error": "This file is empty."}]


def test_a_file_just_over_the_size_limit_never_reads_as_the_limit(owner_client, settings, media_root):
    settings.ATTACHMENT_MAX_FILE_BYTES = 2 * 1024 * 1024

    files = results(owner_client, "notes.txt", b"a" * (2 * 1024 * 1024 + 1))

    assert files == [{"name": "notes.txt", "error": "This file is 2.1 MB; files can be at most 2 MB."}]
    assert not stored_files(media_root)


def test_an_outsider_gets_404_for_a_text_document(owner_client, outsider):
    attachment = attached(owner_client, "private.md", b"# Salaries\n")
    other = Client()
    other.force_login(outsider)

    assert other.get(attachment["url"]).status_code == 404
    assert owner_client.get(attachment["url"]).status_code == 200
