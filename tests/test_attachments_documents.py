"""Documents: untrusted PDFs, Word documents and text files to what the model reads, and what is stored."""

import io

import docx
import pytest
from attachment_samples import image_bytes, pdf_bytes, slow_pdf
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from document_samples import (
    docx_bytes,
    pdf_with_text_stream,
    pdf_with_unreadable_page,
    secured_pdf,
    tiff_pages,
    uploaded,
    zip_of,
)
from pypdf import PdfReader

from chat.attachments import formats, storage, texts
from chat.attachments.limits import AttachmentRefused, megabytes, request_limits_check
from chat.attachments.pdfs import pdf_read, pdf_text
from chat.frames import attachment_payload
from chat.models import Attachment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def written(tmp_path, data: bytes, name: str = "upload"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refusal(owner, name: str, data: bytes) -> str:
    """The sentence the upload is refused with; it stored no attachment."""
    before = Attachment.objects.count()
    with pytest.raises(ValidationError) as error:
        uploaded(owner, name, data)
    assert Attachment.objects.count() == before
    return error.value.messages[0]


def stored_text(attachment: Attachment) -> str:
    return storage.file_path(attachment.file).read_text(encoding="utf-8")


# --- PDFs, read in the limited child --------------------------------------------------------------------


def test_a_pdf_gives_the_text_of_each_page_and_is_sent_as_uploaded(tmp_path):
    source = written(tmp_path, pdf_bytes(["Quarterly report\nRevenue grew", "Second page"]))

    read = pdf_read(source, tmp_path)

    assert [page.strip() for page in read.pages] == ["Quarterly report\nRevenue grew", "Second page"]
    assert read.file == source and not read.as_text


def test_a_secured_pdf_is_unlocked_into_a_copy_the_api_can_read(tmp_path):
    source = written(tmp_path, secured_pdf(["Statement\nBalance 10"]))
    assert PdfReader(source).is_encrypted

    read = pdf_read(source, tmp_path)

    assert read.file == tmp_path / "unlocked.pdf"
    copy = PdfReader(read.file)
    assert not copy.is_encrypted and copy.pages[0].extract_text().strip() == "Statement\nBalance 10"
    assert read.pages[0].strip() == "Statement\nBalance 10"


def test_a_pdf_that_needs_a_password_to_open_is_refused(tmp_path):
    with pytest.raises(ValidationError) as error:
        pdf_read(written(tmp_path, pdf_bytes(["secret"], password="hunter2")), tmp_path)

    assert error.value.messages == ["This PDF needs a password to open: remove it and upload again."]


def test_a_page_whose_text_cannot_be_extracted_is_empty_and_the_rest_is_read(tmp_path):
    read = pdf_read(written(tmp_path, pdf_with_unreadable_page(["First", "Second", "Third"], 1)), tmp_path)

    assert [page.strip() for page in read.pages] == ["First", "", "Third"]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\nthis is not a pdf", id="garbage"),
        pytest.param(pdf_bytes(["Cut short"])[:300], id="truncated"),
    ],
)
def test_a_malformed_pdf_is_refused(owner, data):
    assert refusal(owner, "bad.pdf", data) == "This PDF is damaged or not really a PDF, so it can't be read."


def test_a_pdf_that_keeps_the_parser_busy_is_stopped_by_its_cpu_time(owner, settings):
    """A real file that pypdf spends ~5 s of CPU on; the kernel stops the child at its CPU-time limit."""
    settings.ATTACHMENT_DECODE_CPU_SECONDS = 1

    message = refusal(owner, "spin.pdf", slow_pdf(200_000))

    assert message == (
        "Reading this file took more than 1 s of processing, so it was stopped; it can't be attached."
    )


def test_a_pdf_that_needs_too_much_memory_is_refused(owner, settings):
    settings.ATTACHMENT_DECODE_MEMORY_BYTES = 120 * 1024 * 1024

    message = refusal(owner, "huge.pdf", slow_pdf(2_000_000))  # a 60 MB content stream, parsed into objects

    assert message == "This file needs more memory to read than the server allows, so it can't be attached."


def test_a_pdf_of_100_pages_is_a_pdf_and_counts_its_pages(owner):
    [attachment] = uploaded(owner, "hundred.pdf", pdf_bytes(["page"] * 100))

    assert (attachment.kind, attachment.page_count, attachment.note) == ("pdf", 100, "")
    assert attachment.tokens == 100 * (2 + 1_500)  # each page's text, "page\n", is two tokens


def test_a_pdf_over_100_pages_is_stored_as_its_text_with_a_note(owner):
    [attachment] = uploaded(owner, "manual.pdf", pdf_bytes([f"Chapter {n}" for n in range(1, 102)]))

    assert (attachment.kind, attachment.media_type, attachment.page_count) == ("text", "text/plain", 101)
    assert attachment.note == (
        "101 pages: over the model's 100-page limit for PDFs, so it reads the text of every page, without the page "
        "images."
    )
    assert stored_text(attachment).count("--- Page ") == 101 and "Chapter 101" in stored_text(attachment)
    assert attachment.tokens == texts.text_tokens(stored_text(attachment)) and len(attachment.pages) == 101


def test_a_long_pdf_with_more_text_than_fits_sends_the_pages_that_fit_and_says_which():
    page = "word " * 5_000  # 25,000 characters: 6,250 tokens a page

    text, note = pdf_text([page] * 150)

    fitted = text.count("--- Page ")
    assert 10 < fitted < 150 and texts.text_tokens(text) <= texts.MAX_TEXT_TOKENS
    assert note == (
        f"150 pages: over the model's 100-page limit for PDFs, so it reads the text of pages 1 to {fitted} (as much "
        "as fits), without the page images."
    )


def test_a_long_pdf_without_text_is_refused_saying_to_send_fewer_pages(owner):
    message = refusal(owner, "scan.pdf", pdf_with_text_stream(120, b""))

    assert message == (
        "This PDF has 120 pages, more than the 100 the model reads as a PDF, and no text to read instead (it may be "
        "scanned): attach at most 100 pages of it at a time."
    )


def test_a_pdf_too_big_for_one_request_is_refused_with_sizes_that_do_not_round_to_the_limit(owner, settings):
    settings.ATTACHMENT_MAX_FILE_BYTES = 64 * 1024 * 1024
    data = pdf_bytes(["Big"]).replace(b"startxref", b"%" + b"x" * 24 * 1024 * 1024 + b"\nstartxref")

    assert refusal(owner, "big.pdf", data) == (
        "This PDF is 24.1 MB; a PDF can be at most 22.5 MB to fit in a request to the model (32 MB once encoded)."
    )


# --- Word documents -------------------------------------------------------------------------------------


def test_a_word_document_gives_its_paragraphs_and_tables_in_order(owner):
    data = docx_bytes(["Invoice 7", "", "Thanks"], [["Item", "Price"], ["Chair", "40"]])

    [attachment] = uploaded(owner, "invoice.docx", data)

    assert (attachment.kind, attachment.name, attachment.media_type) == ("text", "invoice.docx", "text/plain")
    assert stored_text(attachment) == "Invoice 7\n\nThanks\nItem | Price\nChair | 40"


def test_a_merged_table_cell_is_read_once(owner):
    document = docx.Document()
    table = document.add_table(rows=1, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Both"
    table.cell(0, 2).text = "Third"
    buffer = io.BytesIO()
    document.save(buffer)

    [attachment] = uploaded(owner, "merged.docx", buffer.getvalue())

    assert stored_text(attachment) == "Both | Third"


def test_a_word_document_without_text_is_refused_saying_to_save_it_as_pdf(owner):
    assert refusal(owner, "pictures.docx", docx_bytes([""])) == (
        "This Word document has no text (pictures in it are not read): save it as PDF and attach that."
    )


def test_a_damaged_word_document_is_refused(owner):
    data = zip_of([("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w:document><w:body>")])

    assert refusal(owner, "broken.docx", data) == "This Word document is damaged, so it can't be read."


def test_a_word_document_longer_than_the_model_reads_is_refused(owner):
    data = docx_bytes(["x" * 1_000] * (texts.MAX_TEXT_CHARACTERS // 1_000 + 1))

    assert refusal(owner, "book.docx", data) == texts.TOO_LONG


# --- text -----------------------------------------------------------------------------------------------


def test_a_text_at_the_limit_is_accepted_and_one_character_more_is_refused(owner):
    at_limit = b"a" * texts.MAX_TEXT_CHARACTERS

    [attachment] = uploaded(owner, "limit.txt", at_limit)

    assert attachment.tokens == texts.MAX_TEXT_TOKENS
    assert refusal(owner, "over.txt", at_limit + b"a") == texts.TOO_LONG


def test_text_outside_ascii_counts_as_the_context_budget_counts_it(owner):
    """Six characters each in the request's JSON: 100,000 CJK characters are 150,000 tokens, too many."""
    [attachment] = uploaded(owner, "poem.txt", ("字" * 1_000).encode())

    assert attachment.tokens == 1_500
    assert refusal(owner, "novel.txt", ("字" * 100_000).encode()) == texts.TOO_LONG


def test_a_file_that_turns_out_not_to_be_text_past_its_first_bytes_is_refused(owner):
    data = b"a" * formats.HEAD_BYTES + b"\x00\x01\x02 binary from here"

    assert refusal(owner, "sneaky.txt", data) == formats.NOT_KNOWN


def test_a_text_file_of_whitespace_only_is_refused(owner):
    assert refusal(owner, "blank.txt", b" \n\t\n") == "This file has no text in it."


# --- stored once, and nothing left behind ---------------------------------------------------------------


def test_the_same_document_uploaded_again_copies_the_first_one_and_its_note(owner):
    data = pdf_bytes([f"Page {n}" for n in range(1, 121)])
    [first] = uploaded(owner, "a.pdf", data)

    [second] = uploaded(owner, "b.pdf", data)

    assert (second.name, second.file, second.tokens) == ("b.pdf", first.file, first.tokens)
    assert second.note == first.note
    assert second.note.startswith("120 pages") and second.pk != first.pk


def test_the_same_tiff_uploaded_again_is_every_page_again(owner, media_root):
    data = tiff_pages(2)
    first = uploaded(owner, "scan.tif", data)

    again = uploaded(owner, "copy.tif", data)

    assert [a.name for a in again] == ["copy.tif (page 1)", "copy.tif (page 2)"]
    assert [a.file for a in again] == [a.file for a in first] and len({a.file for a in first}) == 2


def test_a_full_disk_while_storing_the_thumbnail_leaves_no_file_and_no_row(owner, media_root, monkeypatch):
    """The disk is made full by the one part that cannot be a real full disk in a test: the store call."""
    real_store, calls = storage.file_store, []

    def store(name, source):
        calls.append(name)
        if ".thumb." in name:
            raise ValidationError(storage.DISK_FULL)
        real_store(name, source)

    monkeypatch.setattr(storage, "file_store", store)

    message = refusal(owner, "photo.png", image_bytes())

    assert message == storage.DISK_FULL and len(calls) == 2
    assert not [path for path in media_root.rglob("*") if path.is_file()]


def test_a_failed_upload_keeps_a_file_that_another_attachment_names(owner, media_root, monkeypatch):
    data = image_bytes()
    [earlier] = uploaded(owner, "photo.png", data)
    storage.file_delete(earlier.thumbnail)  # so the next upload processes the bytes again, to the same names
    monkeypatch.setattr(storage, "file_store", failing_on_thumbnails(storage.file_store))

    with pytest.raises(ValidationError):
        uploaded(owner, "again.png", data)

    assert storage.file_path(earlier.file).exists() and Attachment.objects.get() == earlier


def failing_on_thumbnails(real_store):
    def store(name, source):
        if ".thumb." in name:
            raise ValidationError(storage.DISK_FULL)
        real_store(name, source)

    return store


def test_the_upload_answer_carries_the_note(owner):
    [attachment] = uploaded(owner, "long.pdf", pdf_bytes(["p"] * 101))

    payload = attachment_payload(attachment)

    assert payload["note"] == attachment.note != ""
    assert (payload["kind"], payload["page_count"]) == ("text", 101)


# --- what a request to the model may carry ------------------------------------------------------------


def test_the_text_of_a_long_pdf_does_not_count_toward_the_100_pdf_pages():
    as_text = Attachment(kind=Attachment.Kind.TEXT, size=50_000, page_count=300)
    as_pdf = Attachment(kind=Attachment.Kind.PDF, size=50_000, page_count=100)

    request_limits_check(sending=[as_text], sent=[as_pdf])  # 400 pages uploaded, 100 sent as PDF pages

    with pytest.raises(AttachmentRefused) as refused:
        request_limits_check(sending=[Attachment(kind=Attachment.Kind.PDF, size=1_000, page_count=1)], sent=[as_pdf])
    assert refused.value.code == "too_many_pages"


def test_a_text_document_counts_toward_the_request_size_at_three_times_its_utf8():
    ten_megabytes = Attachment(kind=Attachment.Kind.TEXT, size=10 * 1024 * 1024)  # 30 MB of JSON at worst, + 2

    request_limits_check(sending=[ten_megabytes], sent=[])

    with pytest.raises(AttachmentRefused) as refused:
        request_limits_check(sending=[ten_megabytes, Attachment(kind=Attachment.Kind.TEXT, size=1)], sent=[])
    assert refused.value.code == "too_large"


# --- sizes in sentences ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (32 * 1024 * 1024, "32 MB"),
        (32 * 1024 * 1024 + 1, "32.1 MB"),
        (33 * 1024 * 1024 + 100, "33.1 MB"),
        (int(22.5 * 1024 * 1024), "22.5 MB"),
        (5_500_000, "5.3 MB"),
        (1, "0.1 MB"),
    ],
)
def test_megabytes_never_shows_a_size_over_a_limit_as_the_limit(size, shown):
    assert megabytes(size) == shown


# --- the migration --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_attachments_stored_before_text_documents_stay_valid(owner):
    executor = MigrationExecutor(connection)
    executor.migrate([("chat", "0005_apicall_settle_key")])
    old = executor.loader.project_state([("chat", "0005_apicall_settle_key")]).apps
    old.get_model("chat", "Attachment").objects.create(
        owner_id=owner.pk, kind="pdf", name="old.pdf", sha256="0" * 64, media_type="application/pdf", file="f.pdf",
        size=10, page_count=2, pages=["a", "b"], tokens=3_002,
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    attachment = Attachment.objects.get(name="old.pdf")
    assert (attachment.kind, attachment.note, attachment.page_count) == ("pdf", "", 2)
    assert attachment.pages == ["a", "b"]
    attachment.full_clean()
