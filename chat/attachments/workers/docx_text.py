"""One untrusted ZIP container: a Word document's text, or which other package it is (task "docx", entry.py).

Every ZIP-based upload comes here, since telling them apart means parsing the archive's directory, and that is
untrusted work like any other (an archive of a million entries takes hundreds of megabytes to list). A Word
document (.docx) answers with its text, written as UTF-8 to the output path: its paragraphs, and its tables a
row a line with the cells between " | ", in the order they appear (headers, footers, comments and text boxes
are left out). Reading stops past the most characters asked for, which is then the answer.

Answers {"characters": n}, {"too_long": true}, {"package": "xlsx" | "pptx" | "odf" | "epub" | "zip"}, or
{"error": ...}.
"""

import io
import zipfile

import docx
from docx.table import Table

# The part each Office package's main document is in; OpenDocument files and EPUB books instead start with a
# `mimetype` entry naming what they are.
PACKAGES = (("word/document.xml", "docx"), ("xl/workbook.xml", "xlsx"), ("ppt/presentation.xml", "pptx"))
MIMETYPES = ((b"application/vnd.oasis.opendocument.", "odf"), (b"application/epub+zip", "epub"))
DAMAGED = "This Word document is damaged, so it can't be read."


def run(stdin, max_characters: str, output: str) -> dict:
    data = io.BytesIO(stdin.read())
    try:
        package = _package(data)
    except (zipfile.BadZipFile, ValueError, EOFError, KeyError):
        return {"package": "zip"}
    if package != "docx":
        return {"package": package}
    try:
        lines = _lines(docx.Document(data), int(max_characters))
    except MemoryError:
        raise  # entry.py answers it
    except Exception:  # noqa: BLE001 - python-docx and lxml raise many types for broken files
        return {"error": DAMAGED}
    if lines is None:
        return {"too_long": True}
    text = "\n".join(lines)
    with open(output, "w", encoding="utf-8") as target:
        target.write(text)
    return {"characters": len(text)}


def _package(data: io.BytesIO) -> str:
    with zipfile.ZipFile(data) as archive:
        names = set(archive.namelist())
        found = next((kind for part, kind in PACKAGES if part in names), None)
        if found is None and "mimetype" in names:
            with archive.open("mimetype") as entry:
                mimetype = entry.read(64)
            found = next((kind for prefix, kind in MIMETYPES if mimetype.startswith(prefix)), None)
    return found or "zip"


def _lines(document, max_characters: int) -> list[str] | None:
    lines, count = [], 0
    for block in document.iter_inner_content():
        for line in _table_rows(block) if isinstance(block, Table) else [block.text]:
            count += len(line) + 1
            if count > max_characters:
                return None
            lines.append(line)
    return lines


def _table_rows(table: Table) -> list[str]:
    """Each row's cells once: a merged cell is the same cell in each column it spans."""
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells.append(" ".join(cell.text.split()))
        rows.append(" | ".join(cells))
    return rows
