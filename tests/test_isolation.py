"""The isolation runner: untrusted files are decoded in a child under limits, a bounded number at once."""

import logging
import os
import tempfile
import threading

import document_samples
import pytest
from attachment_samples import blank_png, image_bytes, tiff_bytes
from django.core.exceptions import ValidationError
from PIL import Image

from chat.attachments import isolation, storage
from chat.attachments.formats import NOT_KNOWN
from chat.attachments.images import image_read
from chat.attachments.pdfs import pdf_read
from chat.attachments.texts import MAX_TEXT_CHARACTERS
from chat.attachments.workers.entry import OUT_OF_MEMORY


@pytest.fixture
def decode_turns(settings, monkeypatch):
    """The runner's turns, made afresh from this test's settings; `hold()` takes every one of them."""
    monkeypatch.setattr(isolation, "_turns", None)
    settings.ATTACHMENT_DECODE_CONCURRENCY = 2
    settings.ATTACHMENT_DECODE_WAIT = 0.2
    held = []

    class Turns:
        def hold(self):
            turns = isolation._decode_turns()
            for _ in range(settings.ATTACHMENT_DECODE_CONCURRENCY):
                assert turns.acquire(timeout=1)
                held.append(turns)

        def release_one(self):
            held.pop().release()

    yield Turns()
    for turns in held:
        turns.release()


def upload(tmp_path, data: bytes, name="upload"):
    source, output = tmp_path / name, tmp_path / f"{name}-output"
    source.write_bytes(data)
    output.mkdir()
    return image_read(source, output)


def reason(tmp_path, data: bytes, name="upload") -> str:
    with pytest.raises(ValidationError) as error:
        upload(tmp_path, data, name)
    return error.value.messages[0]


# --- at most ATTACHMENT_DECODE_CONCURRENCY decodes at once ------------------------------------------------


def test_an_upload_that_gets_no_turn_within_the_wait_is_refused_with_the_busy_sentence(
    tmp_path, decode_turns
):
    decode_turns.hold()

    assert reason(tmp_path, image_bytes()) == isolation.BUSY


def test_an_upload_waits_for_a_turn_and_is_decoded_once_one_is_released(tmp_path, settings, decode_turns):
    settings.ATTACHMENT_DECODE_WAIT = 30
    decode_turns.hold()
    results = []
    waiting = threading.Thread(target=lambda: results.append(upload(tmp_path, image_bytes())))
    waiting.start()

    waiting.join(0.3)
    assert waiting.is_alive() and not results  # still waiting: with the wait at 30 s, not refused
    decode_turns.release_one()
    waiting.join(30)

    assert [image.width for image in results[0].images] == [64]


@pytest.mark.parametrize(
    ("outcome", "memory", "data", "sentence"),
    [
        pytest.param("success", None, image_bytes(), None, id="success"),
        pytest.param("refusal", None, b"plain text", NOT_KNOWN, id="refusal"),
        # 20 MB of address space: the child cannot even load its libraries, and dies without an answer
        pytest.param("crash", 20_000_000, image_bytes(), isolation.CRASHED, id="crash"),
    ],
)
def test_the_turn_is_given_back_after_each_outcome(
    tmp_path, settings, decode_turns, outcome, memory, data, sentence
):
    settings.ATTACHMENT_DECODE_CONCURRENCY = 1
    default_memory = settings.ATTACHMENT_DECODE_MEMORY_BYTES
    settings.ATTACHMENT_DECODE_MEMORY_BYTES = memory or default_memory

    if sentence:
        assert reason(tmp_path, data, "first") == sentence
    else:
        upload(tmp_path, data, "first")
    settings.ATTACHMENT_DECODE_MEMORY_BYTES = default_memory

    assert len(upload(tmp_path, image_bytes(), "second").images) == 1  # the one turn was free again


# --- each child under a CPU-time and a memory limit -------------------------------------------------------


def test_a_decode_that_needs_more_cpu_time_than_the_limit_is_stopped_with_a_sentence(
    tmp_path, settings, decode_turns
):
    """Twenty 25 MP pages: about 3 s of CPU time for the child to decode and fit them all."""
    settings.ATTACHMENT_DECODE_CPU_SECONDS = 1
    pages = [Image.new("L", (5000, 5000))] * 20

    assert reason(tmp_path, tiff_bytes(pages)) == (
        "Reading this file took more than 1 s of processing, so it was stopped; it can't be attached."
    )
    assert len(upload(tmp_path, image_bytes(), "next").images) == 1  # and its turn was given back


def test_a_decode_over_the_memory_limit_is_refused_and_the_server_process_carries_on(
    tmp_path, settings, decode_turns
):
    """A 49 MP RGBA PNG that compresses to 200 kB: within the pixel limit, but 196 MB to hold."""
    settings.ATTACHMENT_DECODE_MEMORY_BYTES = 256 * 1024 * 1024

    assert reason(tmp_path, blank_png(7000, 7000)) == OUT_OF_MEMORY
    assert len(upload(tmp_path, image_bytes(), "next").images) == 1


def test_the_default_memory_limit_lets_a_49_megapixel_rgba_png_decode(tmp_path, settings, decode_turns):
    """The worst legitimate case of the pixel limit: 196 MB of pixels, held twice while resampling alpha."""
    settings.ATTACHMENT_DECODE_MEMORY_BYTES = 1024 * 1024 * 1024

    image = upload(tmp_path, blank_png(7000, 7000)).images[0]

    assert (image.width, image.height) == (1072, 1072)


# --- what the child leaves behind: a full disk, its stderr -------------------------------------------------


def onto_a_full_disk(*paths):
    """Each path a link to /dev/full, where the kernel refuses every write with ENOSPC."""
    for path in paths:
        path.symlink_to("/dev/full")


def test_a_full_disk_while_the_child_writes_an_image_is_the_disk_full_sentence_not_damaged(tmp_path, decode_turns):
    source, output = tmp_path / "upload", tmp_path / "output"
    source.write_bytes(image_bytes())
    output.mkdir()
    onto_a_full_disk(*(output / name for name in ("1.png", "1.jpg", "1-thumbnail.png", "1-thumbnail.jpg")))

    with pytest.raises(ValidationError) as error:
        image_read(source, output)

    assert error.value.messages == [storage.DISK_FULL]


def test_a_full_disk_while_the_child_writes_a_word_documents_text_is_the_disk_full_sentence(tmp_path, decode_turns):
    source, output = tmp_path / "letter.docx", tmp_path / "document.txt"
    source.write_bytes(document_samples.docx_bytes(["Dear Ana,", "See you at noon."]))
    onto_a_full_disk(output)

    with pytest.raises(ValidationError) as error:
        isolation.isolated_run("docx", source, str(MAX_TEXT_CHARACTERS), output=output)

    assert error.value.messages == [storage.DISK_FULL]


def test_a_full_disk_while_the_child_writes_an_unlocked_pdf_is_the_disk_full_sentence(tmp_path, decode_turns):
    source, output = tmp_path / "statement.pdf", tmp_path / "output"
    source.write_bytes(document_samples.secured_pdf(["Balance: 1,234.56"]))
    output.mkdir()
    onto_a_full_disk(output / "unlocked.pdf")

    with pytest.raises(ValidationError) as error:
        pdf_read(source, output)

    assert error.value.messages == [storage.DISK_FULL]


def test_a_crashed_child_is_logged_with_the_end_of_its_stderr(tmp_path, settings, decode_turns, caplog):
    settings.ATTACHMENT_DECODE_MEMORY_BYTES = 20_000_000  # too little to load its libraries: a traceback

    with caplog.at_level(logging.WARNING, logger=isolation.__name__):
        assert reason(tmp_path, image_bytes()) == isolation.CRASHED

    [record] = caplog.records
    assert record.getMessage().startswith("image worker exited 1: ")
    assert "Error" in record.getMessage().splitlines()[-1]  # the traceback's last line: the exception


def test_only_the_end_of_a_long_stderr_is_read_back():
    """pypdf's warnings ran to 5 MB for one 3 MB PDF: the server reads only the last few kilobytes."""
    with tempfile.TemporaryFile() as stderr:
        stderr.write(os.urandom(5 * 1024 * 1024).hex().encode()[: 5 * 1024 * 1024])
        stderr.write(b"the last line\n")

        tail = isolation.stderr_tail(stderr)

    assert len(tail) == isolation.STDERR_TAIL_BYTES and tail.endswith("the last line\n")
