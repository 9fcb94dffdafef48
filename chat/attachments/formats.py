"""What an uploaded file is, from its bytes, and the sentence that says why a format is refused.

The content decides, never the name or the type the browser declares: a PDF renamed `.png` is a PDF, a
Python script named `notes` is text. Each format that is refused for what it is gets its own sentence saying
what the file is and what to do instead, here, beside the check that leads to it. A file of an accepted format
that can't be used is refused by the module that finds out: services.py (empty, over the size limit),
readers.py (no text, a PDF too big for a request), images.py (damaged, too many pixels or frames), pdfs.py and
texts.py (too long), workers/pdf_text.py and workers/docx_text.py (damaged), isolation.py and workers/entry.py
(busy, too slow, out of memory, crashed) and storage.py (a full disk).

Text is any file that decodes, whole, as UTF-8 (a byte order mark allowed), as UTF-16 or UTF-32 with a byte
order mark, as UTF-16 without one when a quarter or more of its 16-bit units have a NUL byte on one side (Latin-script
text saved by some Windows tools), or else as Windows-1252 (what older Windows programs, Excel among them, save
as "CSV"); and has no NUL character. An encoding that is guessed (UTF-16 without a mark, Windows-1252) must
also give no control character but tab and line breaks, since almost any bytes decode as Windows-1252.
Whatever its extension: Markdown, CSV, JSON, logs and source code are all text to the model. HTML pages and
SVG drawings are text too, but refused as markup: the model would read their tags, not what they show.
"""

import codecs
import enum
import re
import unicodedata
from pathlib import Path

from django.core.exceptions import ValidationError


class Format(enum.Enum):
    IMAGE = "image"
    PDF = "pdf"
    TEXT = "text"
    # A ZIP container: a Word document (.docx) or another package, told apart by its entries in the child that
    # reads it (workers/docx_text.py), which answers with one of PACKAGE_REFUSALS' keys when it is not Word.
    ZIP = "zip"


# What a stored file's name ends with, by its media type; and back (a thumbnail's row has no media type).
SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "application/pdf": ".pdf", "text/plain": ".txt"}
MEDIA_TYPES = {suffix: media_type for media_type, suffix in SUFFIXES.items()}

# The bytes a format is told by: PDF readers look for the header anywhere in the first kilobyte; the others
# start their file. Read once from the head of the file.
HEAD_BYTES = 64 * 1024
PDF_HEADER_WITHIN = 1024

ACCEPTED = (
    "images (JPEG, PNG, GIF, WebP, HEIC, AVIF, TIFF, BMP), PDFs, Word documents (.docx) and text files "
    "(plain text, Markdown, CSV, JSON, source code)"
)
NOT_KNOWN = f"This file isn't a kind that can be attached. You can attach {ACCEPTED}."

ZIP = "ZIP archives are not supported: attach the files inside."
OLD_OFFICE = (
    "This is an old-style Office file (.doc, .xls or .ppt), which can't be read: save it as .docx or PDF."
)
OFFICE_PASSWORD = "This Office document needs a password to open: remove it, save, and upload again."
POSTSCRIPT = "This is a PostScript or EPS file, which can't be attached: save it as PDF or PNG."
HTML = "This is an HTML page, and markup can't be attached: save the page as PDF, or its text as a text file."
SVG = "This is an SVG drawing, and markup can't be attached: export it as PNG."
PDF_PASSWORD = "This PDF needs a password to open: remove it and upload again."
# What workers/docx_text.py answers for a ZIP container that is not a Word document.
PACKAGE_REFUSALS = {
    "xlsx": "This is an Excel workbook (.xlsx), which can't be attached: save it as PDF or CSV.",
    "pptx": "This is a PowerPoint presentation (.pptx), which can't be attached: save it as PDF.",
    "odf": (
        "This is an OpenDocument file (.odt, .ods or .odp), which can't be attached: save it as .docx or PDF."
    ),
    "epub": "This is an e-book (EPUB), which can't be attached: save it as PDF.",
    "zip": ZIP,
}


def _archive(kind: str) -> str:
    return f"{kind} archives are not supported: attach the files inside."


def _recording(what: str, instead: str) -> str:
    return f"This is {what}, which the model can't play: {instead}"


AUDIO = "attach a transcript as a text file instead."
VIDEO = "attach screenshots, or a transcript as a text file, instead."
PROGRAM = "This is a program ({}), which can't be attached: attach its source code instead."

# ISO base media files (MP4, QuickTime, HEIF, AVIF) name their brands in an `ftyp` box at offset 4.
IMAGE_BRANDS = {
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"mif2", b"msf1", b"avif", b"avis",
}
AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
# Office's encrypted documents (.docx as well as .doc) are OLE2 files with an EncryptedPackage stream; the old
# formats have their main stream. Directory entries hold stream names in UTF-16LE.
OLE2_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")
OLE2_DOCUMENTS = tuple(
    name.encode("utf-16-le") for name in ("WordDocument", "Workbook", "Book", "PowerPoint Document")
)
OLE2_SCAN_CHUNK = 1024 * 1024

# (prefix at offset 0, what to answer): checked in order, the first match wins.
SIGNATURES: tuple[tuple[bytes, Format | str], ...] = (
    (b"\xff\xd8\xff", Format.IMAGE),  # JPEG
    (b"\x89PNG\r\n\x1a\n", Format.IMAGE),
    (b"GIF87a", Format.IMAGE),
    (b"GIF89a", Format.IMAGE),
    (b"II*\x00", Format.IMAGE),  # TIFF, little- and big-endian
    (b"MM\x00*", Format.IMAGE),
    (b"II+\x00", Format.IMAGE),  # BigTIFF
    (b"MM\x00+", Format.IMAGE),
    (b"PK\x03\x04", Format.ZIP),
    (b"PK\x05\x06", Format.ZIP),  # an empty archive
    (b"PK\x07\x08", Format.ZIP),  # a spanned one
    (b"Rar!\x1a\x07", _archive("RAR")),
    (b"7z\xbc\xaf\x27\x1c", _archive("7-Zip")),
    (b"\x1f\x8b", _archive("gzip (.gz, .tgz)")),
    (b"\xfd7zXZ\x00", _archive("xz")),
    (b"\x28\xb5\x2f\xfd", _archive("Zstandard")),
    (b"%!PS", POSTSCRIPT),  # not "%!" alone: LaTeX sources start with "%!TEX" comments
    (b"\xc5\xd0\xd3\xc6", POSTSCRIPT),  # an EPS with a preview image
    (b"ID3", _recording("an MP3 audio file", AUDIO)),
    (b"OggS", _recording("an Ogg audio or video file", AUDIO)),
    (b"fLaC", _recording("a FLAC audio file", AUDIO)),
    (b"MThd", _recording("a MIDI file", AUDIO)),
    (b"#!AMR", _recording("an AMR voice recording", AUDIO)),
    (b"caff", _recording("a Core Audio file", AUDIO)),
    (b"\x1a\x45\xdf\xa3", _recording("a Matroska or WebM video", VIDEO)),
    (b"FLV\x01", _recording("a Flash video", VIDEO)),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", _recording("a Windows Media file", VIDEO)),
    (b"\x00\x00\x01\xba", _recording("an MPEG video", VIDEO)),
    (b"\x7fELF", PROGRAM.format("a Linux executable or library")),
    (b"\xcf\xfa\xed\xfe", PROGRAM.format("a macOS executable")),
    (b"\xce\xfa\xed\xfe", PROGRAM.format("a macOS executable")),
    (b"\xca\xfe\xba\xbe", PROGRAM.format("a macOS executable or Java class")),
    (b"\x00asm", PROGRAM.format("WebAssembly")),
)
# The comments before the root element are taken possessively (`*+`): a lazy `.*?` that may also swallow the
# next comment's `-->` gives the engine 2**n ways to split n comments, tried one by one when no root follows
# (25 comments took 3.5 s, in the server process, holding the GIL).
MARKUP = re.compile(
    r"\A\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*+<(?:!doctype\s+)?(?P<root>html|svg)[\s>]",
    re.IGNORECASE | re.DOTALL,
)
# UTF-32's marks first: UTF-32-LE's starts with UTF-16-LE's.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
# Encodings read without a byte order mark to say so, in which text may hold no control character but these.
GUESSED = {"utf-16-le", "utf-16-be", "cp1252"}
TEXT_CONTROLS = {"\t", "\n", "\r", "\f"}
# UTF-16 without a byte order mark: at least this share of its 16-bit units has a NUL byte (Latin letters,
# digits, spaces and line breaks all do), on one side only but for a few (U+0100, U+4E00 and the like).
UTF16_NUL_UNITS = 0.25


def file_format(path: Path) -> Format:
    """What the file at `path` is, or ValidationError with the sentence for a format that is refused."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    if b"%PDF-" in head[:PDF_HEADER_WITHIN]:
        return Format.PDF
    for prefix, answer in SIGNATURES:
        if head.startswith(prefix):
            return _accepted(answer)
    found = _container(head) or _ole2(path, head)
    if found is not None:
        return _accepted(found)
    if head[:2] == b"MZ" and b"\x00" in head[:64]:
        raise ValidationError(PROGRAM.format("a Windows executable or library"))
    encoding = text_encoding(head)
    if encoding is None:
        raise ValidationError(NOT_KNOWN)
    markup = MARKUP.match(codecs.getincrementaldecoder(encoding)(errors="replace").decode(head))
    if markup is not None:
        raise ValidationError(SVG if markup["root"].lower() == "svg" else HTML)
    return Format.TEXT


def text_encoding(head: bytes) -> str | None:
    """The encoding the text starting with `head` is read in (see the module's docstring), or None: not text.

    `head` may end in the middle of a character; the rest of the file is checked as it is read (texts.py).
    """
    encodings = next(([encoding] for bom, encoding in BOMS if head.startswith(bom)), None)
    if encodings is None:
        utf16 = _utf16_without_bom(head)
        encodings = [utf16] if utf16 else ["utf-8", "cp1252"]
    for encoding in encodings:
        try:
            text = codecs.getincrementaldecoder(encoding)().decode(head)
        except UnicodeDecodeError:
            continue
        if text_is_clean(text, encoding):
            return encoding
    return None


def text_is_clean(text: str, encoding: str) -> bool:
    if "\x00" in text:
        return False
    if encoding not in GUESSED:
        return True
    return not any(unicodedata.category(char) == "Cc" and char not in TEXT_CONTROLS for char in set(text))


def _utf16_without_bom(head: bytes) -> str | None:
    """"utf-16-le" or "utf-16-be" when the NUL bytes of `head` say it is UTF-16 (see UTF16_NUL_UNITS)."""
    units = len(head) // 2
    low, high = head[0 : 2 * units : 2].count(0), head[1 : 2 * units : 2].count(0)
    if units and high >= UTF16_NUL_UNITS * units and low <= high * UTF16_NUL_UNITS:
        return "utf-16-le"
    if units and low >= UTF16_NUL_UNITS * units and high <= low * UTF16_NUL_UNITS:
        return "utf-16-be"
    return None


def _accepted(answer: Format | str) -> Format:
    if isinstance(answer, str):
        raise ValidationError(answer)
    return answer


def _container(head: bytes) -> Format | str | None:
    """Formats told by more than a prefix: RIFF (WebP, WAV, AVI), ISO media, BMP, MPEG audio, bzip2, tar."""
    if head[:4] == b"RIFF":
        kind = head[8:12]
        if kind == b"WEBP":
            return Format.IMAGE
        if kind == b"WAVE":
            return _recording("a WAV audio file", AUDIO)
        if kind == b"AVI ":
            return _recording("an AVI video", VIDEO)
        return None
    if head[4:8] == b"ftyp":
        box = head[8 : max(16, min(len(head), int.from_bytes(head[:4], "big")))]
        brands = {box[:4], *(box[at : at + 4] for at in range(8, len(box) - 3, 4))}
        if brands & IMAGE_BRANDS:
            return Format.IMAGE
        if box[:4] in AUDIO_BRANDS:
            return _recording("an MPEG-4 audio file", AUDIO)
        return _recording("an MP4 or QuickTime video", VIDEO)
    # BMP: "BM", then the size of the header that follows the file header, one of a few fixed values.
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124):
        return Format.IMAGE
    # An MPEG audio frame starts with 11 bits set (a JPEG with FF D8); FF FE is UTF-16's byte order mark.
    if head[:1] == b"\xff" and len(head) > 1 and 0xE0 <= head[1] < 0xFE:
        return _recording("an MP3 or AAC audio file", AUDIO)
    if head[:3] == b"BZh" and head[4:10] == b"1AY&SY":  # the block size digit between
        return _archive("bzip2")
    if head[257:262] == b"ustar":
        return _archive("tar")
    return None


def _ole2(path: Path, head: bytes) -> str | None:
    """Old Office files, and encrypted new ones, are OLE2 compound files; so are other, unrelated formats.

    The stream names are in directory sectors that may sit anywhere in the file, so it is scanned for them, a
    chunk at a time (overlapping, so no name is cut in two).
    """
    if not head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return None
    overlap = max(map(len, (OLE2_ENCRYPTED, *OLE2_DOCUMENTS)))
    found_document = False
    previous = b""
    with path.open("rb") as handle:
        while chunk := handle.read(OLE2_SCAN_CHUNK):
            window = previous + chunk
            if OLE2_ENCRYPTED in window:
                return OFFICE_PASSWORD
            found_document = found_document or any(name in window for name in OLE2_DOCUMENTS)
            previous = window[-overlap:]
    return OLD_OFFICE if found_document else NOT_KNOWN
