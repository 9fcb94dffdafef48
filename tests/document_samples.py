"""Real files of the formats uploads meet, built here: with python-docx, pypdf, Pillow, pillow-heif and the
standard library where a library writes the format, and byte by byte from the format's specification where
none does here (archives, Office containers, media). No binary fixtures."""

import bz2
import gzip
import io
import lzma
import struct
import tarfile
import tempfile
import wave
import zipfile
import zlib
from pathlib import Path

import docx
import pillow_heif
from attachment_samples import _stream, pdf_bytes
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, StreamObject

# --- documents ------------------------------------------------------------------------------------------


def docx_bytes(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    """A Word document: the paragraphs, then (when given) a table with these rows."""
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for row, cells in zip(grid.rows, table, strict=True):
            for cell, text in zip(row.cells, cells, strict=True):
                cell.text = text
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def secured_pdf(pages: list[str]) -> bytes:
    """A PDF that opens without a password but forbids copying and printing (an owner password only)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    writer.encrypt(user_password="", owner_password="the bank's", permissions_flag=0, algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def pdf_with_unreadable_page(pages: list[str], unreadable: int) -> bytes:
    """A PDF whose page `unreadable` (0-based) has its content in a filter pypdf cannot decode (JBIG2)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    content = StreamObject()
    content.set_data(b"\x00\x00\x00\x01JBIG2 data")
    content[NameObject("/Filter")] = NameObject("/JBIG2Decode")
    writer.pages[unreadable][NameObject("/Contents")] = writer._add_object(content)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def pdf_with_text_stream(pages: int, text: bytes) -> bytes:
    """A PDF of `pages` pages, each showing `text` (already escaped for a PDF string)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(["x"] * pages))))
    for page in writer.pages:
        content = _stream(b"BT /F1 12 Tf 72 720 Td (" + text + b") Tj ET")
        page[NameObject("/Contents")] = writer._add_object(content)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def zip_of(entries: list[tuple[str, bytes]]) -> bytes:
    """A ZIP archive of these (name, bytes) entries; a `mimetype` entry uncompressed, as OpenDocument wants."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data, compress_type=zipfile.ZIP_STORED if name == "mimetype" else None)
    return buffer.getvalue()


def _content_types(overrides: dict[str, str]) -> bytes:
    parts = "".join(f'<Override PartName="/{part}" ContentType="{kind}"/>' for part, kind in overrides.items())
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        f'<Default Extension="xml" ContentType="application/xml"/>{parts}</Types>'
    ).encode()


def _relationships(targets: dict[str, str]) -> bytes:
    relations = "".join(
        f'<Relationship Id="rId{number}" Type="{kind}" Target="{target}"/>'
        for number, (target, kind) in enumerate(targets.items(), 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{relations}'
        "</Relationships>"
    ).encode()


OFFICE_DOCUMENT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
SPREADSHEET = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def xlsx_bytes() -> bytes:
    """An Excel workbook with one sheet holding one number."""
    workbook = (
        f'<workbook xmlns="{SPREADSHEET}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    sheet = (
        f'<worksheet xmlns="{SPREADSHEET}"><sheetData><row r="1"><c r="A1"><v>42</v></c></row></sheetData>'
        "</worksheet>"
    )
    return zip_of([
        ("[Content_Types].xml", _content_types({
            "xl/workbook.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
            "xl/worksheets/sheet1.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml",
        })),
        ("_rels/.rels", _relationships({"xl/workbook.xml": OFFICE_DOCUMENT})),
        ("xl/workbook.xml", workbook.encode()),
        ("xl/_rels/workbook.xml.rels", _relationships({
            "worksheets/sheet1.xml": "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
        })),
        ("xl/worksheets/sheet1.xml", sheet.encode()),
    ])


def pptx_bytes() -> bytes:
    """A PowerPoint package: its presentation part and one slide."""
    presentation = (
        '<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<p:sldIdLst><p:sldId id="256" r:id="rId1"/></p:sldIdLst><p:sldSz cx="9144000" cy="6858000"/>'
        "</p:presentation>"
    )
    slide = '<p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"><p:cSld/></p:sld>'
    return zip_of([
        ("[Content_Types].xml", _content_types({
            "ppt/presentation.xml": "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
            "ppt/slides/slide1.xml": "application/vnd.openxmlformats-officedocument.presentationml.slide+xml",
        })),
        ("_rels/.rels", _relationships({"ppt/presentation.xml": OFFICE_DOCUMENT})),
        ("ppt/presentation.xml", presentation.encode()),
        ("ppt/_rels/presentation.xml.rels", _relationships({
            "slides/slide1.xml": "http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide"
        })),
        ("ppt/slides/slide1.xml", slide.encode()),
    ])


def odt_bytes() -> bytes:
    """An OpenDocument text: its `mimetype` entry first and uncompressed, as the standard requires."""
    manifest = (
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2"><manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.text"/></manifest:manifest>'
    )
    content = (
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        "<office:body><office:text><text:p>Minutes</text:p></office:text></office:body></office:document-content>"
    )
    return zip_of([
        ("mimetype", b"application/vnd.oasis.opendocument.text"),
        ("META-INF/manifest.xml", manifest.encode()),
        ("content.xml", content.encode()),
    ])


def epub_bytes() -> bytes:
    """An EPUB book's container: its `mimetype` entry first and uncompressed, then where its package is."""
    container = (
        '<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
        '<rootfile full-path="book.opf" media-type="application/oebps-package+xml"/></rootfiles></container>'
    )
    return zip_of([("mimetype", b"application/epub+zip"), ("META-INF/container.xml", container.encode())])


def zip_bytes() -> bytes:
    return zip_of([("notes.txt", b"Inside the archive"), ("photo.png", b"\x89PNG not really")])


def ole2_bytes(streams: list[str]) -> bytes:
    """A compound file (the container of .doc, .xls, .ppt and of encrypted Office documents) holding these
    streams, each 4 KB, in version 3's 512-byte sectors: a FAT sector, a directory sector, then the streams."""
    sector, stream_sectors = 512, 8
    free, end_of_chain, fat_sector, no_stream = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
    fat = [fat_sector, end_of_chain]
    for index in range(len(streams)):
        first = 2 + index * stream_sectors
        fat += [*range(first + 1, first + stream_sectors), end_of_chain]
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + struct.pack(
        "<HHHHH6xIIIIIIIII", 0x3E, 3, 0xFFFE, 9, 6, 0, 1, 1, 0, 0x1000, end_of_chain, 0, end_of_chain, 0
    ) + struct.pack("<109I", 0, *[free] * 108)

    def entry(name: str, kind: int, child: int, right: int, start: int, size: int) -> bytes:
        encoded = (name + "\x00").encode("utf-16-le")
        return encoded.ljust(64, b"\x00") + struct.pack(
            "<HBBIII16sIQQIQ", len(encoded), kind, 1, no_stream, right, child, bytes(16), 0, 0, 0, start, size
        )

    directory = entry("Root Entry", 5, 1, no_stream, end_of_chain, 0)
    for index, name in enumerate(streams, 1):  # a right-leaning chain of siblings under the root
        right = index + 1 if index < len(streams) else no_stream
        directory += entry(name, 2, no_stream, right, 2 + (index - 1) * stream_sectors, stream_sectors * sector)
    directory = directory.ljust(sector * -(-len(directory) // sector), b"\x00")
    assert len(directory) == sector, "this writer keeps the directory in one sector: at most 3 streams"
    fat_bytes = struct.pack(f"<{sector // 4}I", *fat, *[free] * (sector // 4 - len(fat)))
    return header + fat_bytes + directory + b"\x01" * (len(streams) * stream_sectors * sector)


# --- archives -------------------------------------------------------------------------------------------


def rar_bytes() -> bytes:
    """An empty RAR 5 archive: its signature, a main header and an end-of-archive header, each with its CRC."""
    def header(fields: bytes) -> bytes:
        body = bytes([len(fields)]) + fields
        return struct.pack("<I", zlib.crc32(body)) + body

    return b"Rar!\x1a\x07\x01\x00" + header(b"\x01\x00\x00") + header(b"\x05\x00\x00")


def seven_zip_bytes() -> bytes:
    """An empty 7z archive: the signature header, pointing at an empty next header."""
    next_header = struct.pack("<QQI", 0, 0, 0)
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(next_header)) + next_header


def gzip_bytes() -> bytes:
    return gzip.compress(b"a log file\n" * 100)


def bzip2_bytes() -> bytes:
    return bz2.compress(b"a log file\n" * 100)


def xz_bytes() -> bytes:
    return lzma.compress(b"a log file\n" * 100)


def zstd_bytes() -> bytes:
    """A Zstandard frame holding one raw block: magic, frame header (window size only), the block."""
    data = b"a log file\n"
    block_header = (1 | len(data) << 3).to_bytes(3, "little")  # the last block, raw
    return b"\x28\xb5\x2f\xfd\x00\x00" + block_header + data


def tar_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = b"Inside the tarball"
        member = tarfile.TarInfo("notes.txt")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


# --- images the product accepts -------------------------------------------------------------------------


def heic_bytes(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", size, (30, 120, 200))).save(buffer, quality=80)
    return buffer.getvalue()


def tiff_pages(count: int, size=(64, 48)) -> bytes:
    pages = [Image.new("RGB", size, (10 * number, 100, 100)) for number in range(count)]
    buffer = io.BytesIO()
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


# --- media and programs ---------------------------------------------------------------------------------


def wav_bytes() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as recording:
        recording.setnchannels(1)
        recording.setsampwidth(2)
        recording.setframerate(8000)
        recording.writeframes(bytes(1600))
    return buffer.getvalue()


def mp3_bytes() -> bytes:
    """An ID3v2 tag, then MPEG-1 Layer III frames of silence (128 kbit/s, 44.1 kHz: 417 bytes each)."""
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, 0, 0])
    return tag + (b"\xff\xfb\x90\x64" + bytes(413)) * 4


def mp3_without_tag_bytes() -> bytes:
    return mp3_bytes()[10:]


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mp4_bytes() -> bytes:
    """An ISO media file as phones and cameras write video: `ftyp` (isom), then an empty `mdat`."""
    return _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41") + _box(b"mdat", b"")


def m4a_bytes() -> bytes:
    return _box(b"ftyp", b"M4A " + struct.pack(">I", 0) + b"M4A mp42isom") + _box(b"mdat", b"")


def webm_bytes() -> bytes:
    """An EBML header naming the document type "webm" (what starts every WebM and Matroska file)."""
    doc_type = b"\x42\x82\x84webm"
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(doc_type)]) + doc_type


def elf_bytes() -> bytes:
    """The ELF header of a 64-bit Linux executable, with no program to run."""
    header = struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0)  # an x86-64 executable
    return b"\x7fELF\x02\x01\x01" + bytes(9) + header


def exe_bytes() -> bytes:
    """A Windows executable's DOS header, pointing at its "PE" signature and an empty COFF header."""
    dos = b"MZ" + bytes(58) + struct.pack("<I", 64)
    return dos + b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x8664, 0, 0, 0, 0, 0, 0x22)


# --- uploading ------------------------------------------------------------------------------------------


def uploaded(owner, name: str, data: bytes) -> list:
    """attachments_upload on these bytes, from a file on disk as the upload view has it (deleted after)."""
    from chat.attachments.services import attachments_upload

    with tempfile.NamedTemporaryFile(prefix="upload-") as received:
        received.write(data)
        received.flush()
        return attachments_upload(owner=owner, name=name, path=Path(received.name))
