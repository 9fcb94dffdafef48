"""Uploading attachments over HTTP, and the owner-checked views that serve them."""

import struct
from pathlib import Path

import pytest
from attachment_samples import animated_gif, image_bytes, pdf_bytes, photo_bytes, png_with_header_only, slow_pdf
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http.multipartparser import MultiPartParser
from django.test import Client
from django.urls import reverse

from chat.attachments import images
from chat.models import Attachment

pytestmark = pytest.mark.django_db

PSD = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 2, 2, 8, 3) + struct.pack(">IIIH", 0, 0, 0, 0) + bytes(12)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


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


def stored_files(media_root: Path) -> list[Path]:
    return sorted(path for path in media_root.rglob("*") if path.is_file())


# --- who may upload -------------------------------------------------------------------------------------


def test_uploading_requires_login(client):
    response = upload(client, ("cat.png", image_bytes()))

    assert response.status_code == 302 and reverse("login") in response["Location"]
    assert not Attachment.objects.exists()


def test_uploading_requires_the_csrf_token(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = upload(client, ("cat.png", image_bytes()))

    assert response.status_code == 403
    assert not Attachment.objects.exists()


def test_uploading_with_the_csrf_header_works(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    client.get(reverse("home"))
    token = client.cookies["csrftoken"].value

    response = client.post(
        reverse("attachment_upload"), {"file": SimpleUploadedFile("cat.png", image_bytes())}, HTTP_X_CSRFTOKEN=token
    )

    assert response.status_code == 200 and "attachment" in response.json()["files"][0]


# --- what is stored -------------------------------------------------------------------------------------


def test_an_image_is_processed_once_and_stored_privately_under_a_generated_name(owner_client, owner, media_root):
    result = uploaded(owner_client, "../holiday photo.jpg", photo_bytes((3000, 2000)))

    attachment = Attachment.objects.get()
    assert (attachment.owner, attachment.message, attachment.kind) == (owner, None, "image")
    assert result["name"] == attachment.name == "holiday photo.jpg"
    assert (result["width"], result["height"]) == (1313, 875) and result["tokens"] == attachment.tokens
    assert attachment.file == f"attachments/{owner.pk}/{attachment.sha256}.jpg"
    assert [path.name for path in stored_files(media_root)] == [
        f"{attachment.sha256}.jpg", f"{attachment.sha256}.thumb.jpg"
    ]
    assert result["url"] == f"/attachments/{attachment.pk}/"
    assert result["thumbnail_url"] == f"/attachments/{attachment.pk}/thumbnail/"


def test_a_pdf_is_stored_with_its_pages(owner_client):
    result = uploaded(owner_client, "report.pdf", pdf_bytes(["Annual report 2026\nAll good", "Appendix"]))

    attachment = Attachment.objects.get()
    assert (result["kind"], result["page_count"], result["thumbnail_url"]) == ("pdf", 2, None)
    assert attachment.pages[0].startswith("Annual report 2026") and attachment.media_type == "application/pdf"
    assert attachment.tokens > 2 * 1_500


def test_the_same_bytes_uploaded_twice_by_one_user_are_stored_once(owner_client, media_root):
    data = photo_bytes((800, 600))

    first = uploaded(owner_client, "a.jpg", data)
    second = uploaded(owner_client, "b.jpg", data)

    assert first["id"] != second["id"]
    assert len(stored_files(media_root)) == 2  # one image and its thumbnail
    files = set(Attachment.objects.values_list("file", flat=True))
    assert len(files) == 1


def test_each_file_of_an_upload_gets_its_own_answer_and_a_refused_one_does_not_affect_the_others(owner_client):
    response = upload(
        owner_client, ("one.png", image_bytes()), ("notes.png", b"plain text"), ("two.pdf", pdf_bytes(["Two"]))
    )

    results = response.json()["files"]
    assert [result["name"] for result in results] == ["one.png", "notes.png", "two.pdf"]
    assert "attachment" in results[0] and "attachment" in results[2]
    assert results[1]["error"] == images.NOT_AN_IMAGE
    assert Attachment.objects.count() == 2


# --- bad input: a clear reason for each, nothing stored -------------------------------------------------


def truncated_jpeg():
    data = photo_bytes((640, 480))
    return data[: len(data) // 2]


BAD_FILES = [
    pytest.param("empty.png", b"", "This file is empty.", id="zero-bytes"),
    pytest.param("broken.jpg", truncated_jpeg(), images.DAMAGED, id="truncated-jpeg"),
    pytest.param("notes.png", b"Dear diary, today I renamed a text file.", images.NOT_AN_IMAGE, id="text-as-png"),
    pytest.param("page.png", b"<html><script>alert(1)</script></html>", images.NOT_AN_IMAGE, id="html-as-png"),
    pytest.param("poly.png", b"<html>" + image_bytes(), images.NOT_AN_IMAGE, id="html-png-polyglot"),
    pytest.param("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', images.NOT_AN_IMAGE, id="svg"),
    pytest.param("print.jpg", image_bytes("EPS"), images.NOT_AN_IMAGE, id="eps-as-jpg"),
    pytest.param("layers.jpg", PSD, images.NOT_AN_IMAGE, id="psd-as-jpg"),
    pytest.param("scan.jpg", image_bytes("TIFF"), images.NOT_AN_IMAGE, id="tiff-as-jpg"),
    pytest.param("cinema.jpg", image_bytes("JPEG2000"), images.NOT_AN_IMAGE, id="jpeg2000-as-jpg"),
    pytest.param("zero.png", png_with_header_only(0, 100), images.NOT_AN_IMAGE, id="zero-width"),
    pytest.param(
        "huge.png", png_with_header_only(100_000, 100_000),
        "This image is over the 50 megapixel limit, so it can't be attached.", id="absurd-dimensions",
    ),
    pytest.param(
        "large.png", png_with_header_only(9_000, 7_000),
        "This image is 9,000 x 7,000 pixels, which is over the 50 megapixel limit, so it can't be attached.",
        id="over-the-pixel-cap",
    ),
    pytest.param(
        "party.gif", animated_gif(2000), "This animation has more than 500 frames, so it can't be attached.",
        id="thousands-of-frames",
    ),
    pytest.param(
        "locked.pdf", pdf_bytes(["secret"], password="pw"),
        "This PDF is password-protected. Remove the password and upload it again.", id="encrypted-pdf",
    ),
    pytest.param(
        "bad.pdf", b"%PDF-1.4\nnot really", "This PDF is damaged or not really a PDF, so it can't be read.",
        id="malformed-pdf",
    ),
    pytest.param(
        "long.pdf", pdf_bytes(["page"] * 101), "This PDF has 101 pages; at most 100 can be attached.",
        id="101-pages",
    ),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_FILES)
def test_bad_files_are_refused_with_a_clear_reason_and_nothing_is_stored(owner_client, media_root, name, data, message):
    response = upload(owner_client, (name, data))

    assert response.status_code == 200
    assert response.json() == {"files": [{"name": name, "error": message}]}
    assert not Attachment.objects.exists() and not stored_files(media_root)


def test_a_pdf_that_makes_the_parser_spin_is_refused_at_the_timeout(owner_client, settings, media_root):
    settings.ATTACHMENT_PDF_TIMEOUT = 1.0

    response = upload(owner_client, ("spin.pdf", slow_pdf(200_000)))

    assert "took longer than 1 s" in response.json()["files"][0]["error"]
    assert not Attachment.objects.exists() and not stored_files(media_root)


def test_a_file_over_the_size_limit_is_refused_and_the_others_are_kept(owner_client, settings):
    settings.ATTACHMENT_MAX_FILE_BYTES = 5 * 1024 * 1024
    big = photo_bytes((5000, 4000))[:5_500_000].ljust(5_500_000, b"\0")

    response = upload(owner_client, ("big.jpg", big), ("small.png", image_bytes()))

    results = response.json()["files"]
    assert results[0]["error"] == "This file is 5.2 MB; files can be at most 5 MB."
    assert "attachment" in results[1]


def test_a_pdf_over_32_mb_is_refused(owner_client):
    data = pdf_bytes(["Huge"]).replace(b"%%EOF", b"%" + b"x" * 33 * 1024 * 1024 + b"\n%%EOF")

    response = upload(owner_client, ("huge.pdf", data))

    assert response.json()["files"][0]["error"] == "This file is 33.0 MB; files can be at most 32 MB."
    assert not Attachment.objects.exists()


def test_a_pdf_too_big_for_one_request_to_the_model_is_refused(owner_client):
    padding = b"%" + b"x" * 24 * 1024 * 1024 + b"\n"
    data = pdf_bytes(["Big"]).replace(b"%%EOF", padding + b"%%EOF")

    response = upload(owner_client, ("big.pdf", data))

    assert response.json()["files"][0]["error"] == (
        "This PDF is 24.0 MB; a PDF can be at most 22 MB to fit in a request to the model (32 MB once encoded)."
    )


def test_an_upload_over_the_request_limit_is_refused_before_it_is_read(owner_client, settings, monkeypatch):
    settings.ATTACHMENT_MAX_UPLOAD_BYTES = 1024 * 1024
    monkeypatch.setattr(MultiPartParser, "parse", lambda parser: pytest.fail("the body was parsed"))

    response = upload(owner_client, ("photo.png", image_bytes()), ("padding.png", b"\0" * 1024 * 1024))

    assert response.status_code == 413
    assert response.json() == {"error": "An upload can be at most 1 MB. Send fewer or smaller files."}
    assert not Attachment.objects.exists()


@pytest.mark.parametrize("count", [11, 200])
def test_too_many_files_in_one_upload_are_refused_and_none_is_stored(owner_client, count):
    response = upload(owner_client, *[(f"{n}.png", image_bytes(color=(n % 256, 0, 0))) for n in range(count)])

    assert response.status_code == 400
    assert response.json() == {"error": "At most 10 files can be uploaded at once."}
    assert not Attachment.objects.exists()


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
    assert all(path.name.startswith(attachment.sha256) for path in stored_files(media_root))


def test_a_file_named_dot_dot_is_not_taken_as_a_file(owner_client, media_root):
    response = upload_named(owner_client, "..", image_bytes())

    assert response.status_code == 400 and response.json() == {"error": "Choose a file to upload."}
    assert not stored_files(media_root)


# --- serving: owner only, declared type, safe name ------------------------------------------------------


def test_the_owner_gets_the_processed_file_inline_with_safe_headers(owner_client):
    attachment = uploaded(owner_client, 'my "best" photo.webp', image_bytes("WEBP", (300, 200)))

    response = owner_client.get(attachment["url"])

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == 'inline; filename="my \\"best\\" photo.jpg"'
    assert b"".join(response.streaming_content)[:3] == b"\xff\xd8\xff"


def test_a_name_that_is_not_ascii_is_sent_as_filename_star(owner_client):
    attachment = uploaded(owner_client, "résumé\u202e.pdf", pdf_bytes(["CV"]))

    response = owner_client.get(attachment["url"])

    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == "inline; filename*=utf-8''r%C3%A9sum%C3%A9.pdf"


def test_the_owner_gets_the_thumbnail_and_a_pdf_has_none(owner_client):
    image = uploaded(owner_client, "cat.png", image_bytes("PNG", (900, 600), "RGBA", (0, 0, 0, 10)))
    pdf = uploaded(owner_client, "doc.pdf", pdf_bytes(["Doc"]))

    response = owner_client.get(image["thumbnail_url"])

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert owner_client.get(reverse("attachment_thumbnail", args=[pdf["id"]])).status_code == 404


@pytest.mark.parametrize("view", ["attachment_file", "attachment_thumbnail"])
def test_an_outsider_gets_404_for_someone_elses_attachment(owner_client, client, outsider, view):
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
