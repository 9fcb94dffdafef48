"""Uploading attachments over HTTP, and the owner-checked views that serve them.

What each format becomes, and why a file is refused, is tested by kind (test_attachments_images.py,
test_attachments_documents.py); this file tests the endpoint: who may upload, one answer per file, what is left
on disk, a full disk, and the headers files are served with. A body over the request limit is refused before
Django reads it, which only a real server shows (config/body_limit.py, tested against one).
"""

import asyncio
import io
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docx
import pytest
from attachment_samples import image_bytes, pdf_bytes, photo_bytes, png_16_bit_rgb
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.test import AsyncClient, Client
from django.urls import reverse
from PIL import Image

from chat.attachments import storage
from chat.attachments.readers import PIPELINE_VERSION
from chat.models import Attachment

# The view parses and processes on the thread pool, each thread with its own connection: the test's rows must
# be committed for those threads to see them.
pytestmark = pytest.mark.django_db(transaction=True)

SERVED_POLICY = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def received(settings, tmp_path):
    """Where Django writes each file of a request as it receives it (FILE_UPLOAD_TEMP_DIR)."""
    settings.FILE_UPLOAD_TEMP_DIR = tmp_path / "received"
    settings.FILE_UPLOAD_TEMP_DIR.mkdir()
    return settings.FILE_UPLOAD_TEMP_DIR


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def upload(client, *files: tuple[str, bytes]):
    return client.post(
        reverse("attachment_upload"), {"file": [SimpleUploadedFile(name, data) for name, data in files]}
    )


def uploaded(client, name: str, data: bytes) -> dict:
    response = upload(client, (name, data))
    assert response.status_code == 200, response.content
    result = response.json()["files"][0]
    assert "attachment" in result, result
    return result["attachment"]


def files_in(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


def onto_a_full_disk(descriptor: int) -> None:
    """Points an open file's descriptor at /dev/full, where the kernel refuses every write with ENOSPC."""
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, descriptor)
    os.close(full)


def tiff_pages(count: int) -> bytes:
    pages = [Image.new("RGB", (200, 100), (40 * index, 90, 160)) for index in range(count)]
    buffer = io.BytesIO()
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def docx_bytes(*paragraphs: str) -> bytes:
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# --- who may upload -------------------------------------------------------------------------------------


def test_uploading_requires_login(client):
    response = upload(client, ("cat.png", image_bytes()))

    assert response.status_code == 302 and reverse("login") in response["Location"]
    assert not Attachment.objects.exists()


def test_uploading_requires_the_csrf_token(owner, received):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = upload(client, ("cat.png", image_bytes()))

    assert response.status_code == 403
    assert not Attachment.objects.exists() and not files_in(received)


def test_uploading_with_the_csrf_header_works(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    client.get(reverse("home"))
    token = client.cookies["csrftoken"].value

    response = client.post(
        reverse("attachment_upload"), {"file": SimpleUploadedFile("cat.png", image_bytes())}, HTTP_X_CSRFTOKEN=token
    )

    assert response.status_code == 200 and "attachment" in response.json()["files"][0]


def test_uploading_is_only_a_post(owner_client):
    assert owner_client.get(reverse("attachment_upload")).status_code == 405


# --- what is stored -------------------------------------------------------------------------------------


def test_an_image_is_processed_once_and_stored_privately_under_a_generated_name(owner_client, owner, media_root):
    result = uploaded(owner_client, "../holiday photo.jpg", photo_bytes((3000, 2000)))

    attachment = Attachment.objects.get()
    assert (attachment.owner, attachment.message, attachment.kind) == (owner, None, "image")
    assert result["name"] == attachment.name == "holiday photo.jpg"
    assert (result["width"], result["height"]) == (1313, 875) and result["tokens"] == attachment.tokens
    assert attachment.file == f"attachments/{owner.pk}/{attachment.sha256}.jpg"
    assert [path.name for path in files_in(media_root)] == [
        f"{attachment.sha256}.jpg", f"{attachment.sha256}.thumb.jpg"
    ]
    assert result["url"] == f"/attachments/{attachment.pk}/"
    assert result["thumbnail_url"] == f"/attachments/{attachment.pk}/thumbnail/"


def test_a_pdf_is_stored_with_its_pages(owner_client):
    result = uploaded(owner_client, "report.pdf", pdf_bytes(["Annual report 2026\nAll good", "Appendix"]))

    attachment = Attachment.objects.get()
    assert (result["kind"], result["page_count"], result["thumbnail_url"]) == ("pdf", 2, None)
    assert attachment.pages[0].startswith("Annual report 2026") and attachment.media_type == "application/pdf"


def test_a_text_document_is_stored_as_text(owner_client, owner):
    result = uploaded(owner_client, "notes.md", b"# Plans\n\n- ship uploads\n")

    attachment = Attachment.objects.get()
    assert (result["kind"], result["media_type"], result["thumbnail_url"]) == ("text", "text/plain", None)
    assert attachment.file == f"attachments/{owner.pk}/{attachment.sha256}.txt"
    assert "note" in result


def test_each_page_of_a_multi_page_tiff_gets_its_own_entry(owner_client):
    response = upload(owner_client, ("scan.tiff", tiff_pages(3)), ("cat.png", image_bytes()))

    results = response.json()["files"]
    assert len(results) == 4 and all("attachment" in result for result in results), results
    assert [result["attachment"]["kind"] for result in results] == ["image"] * 4
    assert len({result["attachment"]["id"] for result in results}) == 4
    assert Attachment.objects.count() == 4


def test_the_same_bytes_uploaded_twice_by_one_user_are_stored_once(owner_client, media_root):
    data = photo_bytes((800, 600))

    first = uploaded(owner_client, "a.jpg", data)
    second = uploaded(owner_client, "b.jpg", data)

    assert first["id"] != second["id"]
    assert len(files_in(media_root)) == 2  # one image and its thumbnail
    assert len(set(Attachment.objects.values_list("file", flat=True))) == 1


def test_bytes_processed_by_an_older_pipeline_are_processed_again_not_copied(owner_client, media_root):
    """A 16-bit PNG uploaded before high bit depths kept their tones came out washed out: a row from then is
    not what the same bytes make now."""
    data = png_16_bit_rgb((40, 30), (0x8000, 0x4000, 0xC000))
    first = uploaded(owner_client, "chart.png", data)
    old = Attachment.objects.get()
    Image.new("RGB", (40, 30), (255, 255, 255)).save(storage.file_path(old.file), "PNG")
    Attachment.objects.update(pipeline=1, width=4, height=3, tokens=1)  # as the first pipeline stored it

    second = uploaded(owner_client, "chart.png", data)

    new = Attachment.objects.get(pk=second["id"])
    assert new.pk != first["id"] and new.pipeline == PIPELINE_VERSION
    assert (second["width"], second["height"]) == (40, 30)
    assert Image.open(storage.file_path(new.file)).convert("RGB").getpixel((0, 0)) == (128, 64, 192)


def test_each_file_of_an_upload_gets_its_own_answer_and_a_refused_one_does_not_affect_the_others(owner_client):
    response = upload(owner_client, ("one.png", image_bytes()), ("empty.png", b""), ("two.pdf", pdf_bytes(["Two"])))

    results = response.json()["files"]
    assert [result["name"] for result in results] == ["one.png", "empty.png", "two.pdf"]
    assert "attachment" in results[0] and "attachment" in results[2]
    assert results[1] == {"name": "empty.png", "error": "This file is empty."}
    assert Attachment.objects.count() == 2


async def test_an_upload_is_processed_while_every_thread_of_the_event_loops_default_pool_is_busy(owner):
    """Websocket turns and checkpoints run on the default pool (chat/db.py); an upload, which holds its thread
    for as long as its files take to read, runs on threads of its own and cannot take theirs. (The test client
    closes each response on the default pool, so the pool is freed once the upload is stored.)"""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    released = threading.Event()
    busy = loop.run_in_executor(None, released.wait)
    client = AsyncClient()
    await client.aforce_login(owner)
    upload = asyncio.create_task(
        client.post(reverse("attachment_upload"), {"file": SimpleUploadedFile("cat.png", image_bytes())})
    )
    try:
        async with asyncio.timeout(30):
            while not await Attachment.objects.aexists():
                await asyncio.sleep(0.05)
    finally:
        released.set()
        await busy
        response = await upload

    assert response.status_code == 200 and "attachment" in response.json()["files"][0]


def test_the_received_files_are_deleted_once_processed(owner_client, received):
    response = upload(owner_client, ("one.png", image_bytes()), ("empty.png", b""), ("two.pdf", pdf_bytes(["Two"])))

    assert response.status_code == 200
    assert not files_in(received)


@pytest.mark.parametrize("count", [11, 200])
def test_too_many_files_in_one_upload_are_refused_and_none_is_stored(owner_client, received, count):
    response = upload(owner_client, *[(f"{n}.png", image_bytes(color=(n % 256, 0, 0))) for n in range(count)])

    assert response.status_code == 400
    assert response.json() == {"error": "At most 10 files can be uploaded at once."}
    assert not Attachment.objects.exists() and not files_in(received)


def test_an_upload_without_files_is_refused(owner_client):
    response = owner_client.post(reverse("attachment_upload"), {})

    assert response.status_code == 400 and response.json() == {"error": "Choose a file to upload."}


def upload_named(client, raw_name: str, data: bytes):
    """A multipart body written by hand, so the file name reaches the server exactly as given."""
    boundary = "attachment-test-boundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{raw_name}"\r\n\r\n'
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return client.post(
        reverse("attachment_upload"), data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        pytest.param("../../etc/passwd.png", "passwd.png", id="path-separators"),
        pytest.param("..\\..\\boot.png", "boot.png", id="backslashes"),
        pytest.param("tab\there\x07bell\x1b.png", "tabherebell.png", id="control-characters"),
        pytest.param("evil\u202egnp.exe.png", "evilgnp.exe.png", id="right-to-left-override"),
        pytest.param("\u200fmark\u200e.png", "mark.png", id="right-to-left-mark"),
        pytest.param("<img src=x onerror=alert(1)>.png", "<img src=x onerror=alert(1)>.png", id="markup"),
    ],
)
def test_a_bad_filename_is_sanitised_and_never_part_of_the_stored_name(owner_client, media_root, raw, shown):
    response = upload_named(owner_client, raw, image_bytes())

    assert response.json()["files"][0]["attachment"]["name"] == shown
    attachment = Attachment.objects.get()
    assert attachment.name == shown
    assert all(path.name.startswith(attachment.sha256) for path in files_in(media_root))


def test_a_file_named_dot_dot_is_not_taken_as_a_file(owner_client, media_root):
    response = upload_named(owner_client, "..", image_bytes())

    assert response.status_code == 400 and response.json() == {"error": "Choose a file to upload."}
    assert not files_in(media_root)


# --- a full disk: a clear answer, nothing left behind ---------------------------------------------------


class ReceivedOntoAFullDisk(TemporaryFileUploadHandler):
    """Django's handler, whose files from the second on are received onto a full disk."""

    files = 0

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.files += 1
        if self.files > 1:
            onto_a_full_disk(self.file.fileno())


def test_a_disk_that_fills_while_the_files_are_received_gets_507_and_leaves_no_file(
    owner_client, settings, received, media_root
):
    settings.FILE_UPLOAD_HANDLERS = [f"{__name__}.{ReceivedOntoAFullDisk.__qualname__}"]

    response = upload(owner_client, ("one.png", image_bytes()), ("two.jpg", photo_bytes((800, 600))))

    assert response.status_code == 507
    assert response.json() == {"error": storage.DISK_FULL}
    assert not files_in(received), "neither the file received nor the one being received is left"
    assert not Attachment.objects.exists() and not files_in(media_root)


@pytest.fixture
def full_media_disk(monkeypatch, media_root):
    """From the n-th file stored under MEDIA_ROOT on (n set by the test), storage's temporary file is on a full
    disk: created where storage asked, its descriptor then pointed at /dev/full."""
    real_mkstemp = tempfile.mkstemp
    disk = {"full_from": 1, "stored": 0}

    def mkstemp(*args, dir=None, **kwargs):
        descriptor, path = real_mkstemp(*args, dir=dir, **kwargs)
        if dir is not None and Path(dir).is_relative_to(media_root):
            disk["stored"] += 1
            if disk["stored"] >= disk["full_from"]:
                onto_a_full_disk(descriptor)
        return descriptor, path

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return disk


@pytest.mark.parametrize("full_from", [1, 2], ids=["the-image", "its-thumbnail"])
def test_a_disk_that_fills_while_a_file_is_stored_refuses_that_file_and_stores_nothing_of_it(
    owner_client, full_media_disk, media_root, received, full_from
):
    full_media_disk["full_from"] = full_from

    response = upload(owner_client, ("photo.jpg", photo_bytes((800, 600))))

    assert response.status_code == 200
    assert response.json() == {"files": [{"name": "photo.jpg", "error": storage.DISK_FULL}]}
    assert full_media_disk["stored"] >= full_from, "the full disk was reached"
    assert not Attachment.objects.exists() and not files_in(media_root) and not files_in(received)


def test_a_stored_file_is_a_complete_copy_and_nothing_else_is_left(tmp_path, media_root):
    source = tmp_path / "upload"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))

    storage.file_store("attachments/1/abc.pdf", source)
    storage.file_store("attachments/1/abc.pdf", source)  # the same upload processed twice

    assert files_in(media_root) == [media_root / "attachments/1/abc.pdf"]
    assert (media_root / "attachments/1/abc.pdf").read_bytes() == source.read_bytes()


# --- serving: owner only, declared type, never active content in this origin -------------------------------


def test_an_image_is_served_inline_under_the_sandbox_policy(owner_client):
    attachment = uploaded(owner_client, 'my "best" photo.webp', image_bytes("WEBP", (300, 200)))

    response = owner_client.get(attachment["url"])

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Disposition"] == 'inline; filename="my \\"best\\" photo.jpg"'
    assert response["Content-Security-Policy"] == SERVED_POLICY
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content)[:3] == b"\xff\xd8\xff"


def test_a_thumbnail_is_served_inline_under_the_sandbox_policy(owner_client):
    image = uploaded(owner_client, "cat.png", image_bytes("PNG", (900, 600), "RGBA", (0, 0, 0, 10)))

    response = owner_client.get(image["thumbnail_url"])

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'inline; filename="cat.png"'
    assert response["Content-Security-Policy"] == SERVED_POLICY
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_pdf_is_only_ever_downloaded(owner_client):
    attachment = uploaded(owner_client, "report.pdf", pdf_bytes(["Report"]))

    response = owner_client.get(attachment["url"])

    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="report.pdf"'
    assert response["Content-Security-Policy"] == SERVED_POLICY
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content).startswith(b"%PDF-")


def test_a_name_that_is_not_ascii_is_sent_as_filename_star(owner_client):
    attachment = uploaded(owner_client, "résumé\u202e.pdf", pdf_bytes(["CV"]))

    response = owner_client.get(attachment["url"])

    assert response["Content-Disposition"] == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf"


@pytest.mark.parametrize(
    ("name", "data", "text"),
    [
        pytest.param("notes.md", "# Plans: café ☕\n".encode(), "# Plans: café ☕", id="markdown"),
        pytest.param("letter.docx", docx_bytes("Dear café,", "☕ at noon."), "Dear café,", id="word"),
    ],
)
def test_a_text_document_is_served_inline_as_utf8_text_under_the_sandbox_policy(owner_client, name, data, text):
    attachment = uploaded(owner_client, name, data)

    response = owner_client.get(attachment["url"])

    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == f'inline; filename="{Path(name).stem}.txt"'
    assert response["Content-Security-Policy"] == SERVED_POLICY
    assert response["X-Content-Type-Options"] == "nosniff"
    assert text in b"".join(response.streaming_content).decode("utf-8")


@pytest.mark.parametrize(
    ("name", "data"), [("doc.pdf", pdf_bytes(["Doc"])), ("notes.txt", b"Some notes")], ids=["pdf", "text"]
)
def test_only_images_have_a_thumbnail(owner_client, name, data):
    attachment = uploaded(owner_client, name, data)

    assert owner_client.get(reverse("attachment_thumbnail", args=[attachment["id"]])).status_code == 404


@pytest.mark.parametrize("view", ["attachment_file", "attachment_thumbnail"])
def test_an_outsider_gets_404_for_someone_elses_attachment(owner_client, outsider, view):
    attachment = uploaded(owner_client, "private.png", image_bytes())
    outsider_client = Client()
    outsider_client.force_login(outsider)

    response = outsider_client.get(reverse(view, args=[attachment["id"]]))

    assert response.status_code == 404


@pytest.mark.parametrize("view", ["attachment_file", "attachment_thumbnail"])
def test_serving_requires_login(client, view):
    response = client.get(reverse(view, args=[1]))

    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_media_root_is_not_served_by_any_url(owner_client):
    uploaded(owner_client, "cat.png", image_bytes())
    attachment = Attachment.objects.get()

    assert owner_client.get(f"/media/{attachment.file}").status_code == 404
    assert owner_client.get(f"/{attachment.file}").status_code == 404


# --- the page ---------------------------------------------------------------------------------------------


def test_the_chat_page_gives_its_script_the_file_size_limit_and_offers_every_accepted_format(
    owner_client, conversation, settings
):
    settings.ATTACHMENT_MAX_FILE_BYTES = 5 * 1024 * 1024

    page = owner_client.get(reverse("conversation_detail", args=[conversation.pk])).content.decode()

    assert 'data-max-file-bytes="5242880"' in page
    accept = page.split('id="attach-input"')[1].split('accept="')[1].split('"')[0].split(",")
    for offered in ["image/heic", "image/avif", "image/tiff", "image/bmp", "application/pdf", ".docx", ".txt",
                    ".md", ".csv", ".json", ".py"]:
        assert offered in accept
    assert not {".html", ".htm", ".svg", "image/svg+xml", "text/html"} & set(accept)  # always refused as markup
