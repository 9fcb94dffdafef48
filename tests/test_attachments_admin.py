"""Attachments in the admin, and the cleanup of uploads that were never sent."""

import io
import os
import time
from datetime import timedelta

import pytest
from attachment_samples import image_bytes, pdf_bytes
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from document_samples import uploaded

from chat.attachments.services import attachments_claim
from chat.models import Attachment, Message

pytestmark = pytest.mark.django_db

MARKUP_NAME = "<img src=x onerror=alert(1)>.png"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1"))
    return client


@pytest.fixture
def sent(conversation, owner):
    """A user message that sent an image with a hostile name, and a PDF."""
    message = Message.objects.create(conversation=conversation, role="user", content=[])
    attachments = [
        *uploaded(owner, MARKUP_NAME, image_bytes()),
        *uploaded(owner, "notes.pdf", pdf_bytes(["Notes"])),
    ]
    attachments_claim(attachments=attachments, message=message)
    return message


def assert_escaped(body: str) -> None:
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in body and MARKUP_NAME not in body


def test_a_conversation_shows_attachments_next_to_their_message_escaped(staff_client, sent, conversation):
    image = sent.attachments.get(kind="image")

    response = staff_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))

    body = response.content.decode()
    assert_escaped(body)
    assert reverse("admin:chat_attachment_thumbnail", args=[image.pk]) in body and "PDF, 1 page<" in body


def test_a_message_shows_its_attachments(staff_client, sent):
    response = staff_client.get(reverse("admin:chat_message_change", args=[sent.pk]))

    assert_escaped(response.content.decode())


@pytest.mark.parametrize("page", ["changelist", "change"])
def test_the_attachment_pages_render_names_escaped(staff_client, sent, page):
    image = sent.attachments.get(kind="image")
    url = reverse(f"admin:chat_attachment_{page}", args=[image.pk] if page == "change" else [])

    response = staff_client.get(url)

    assert response.status_code == 200
    assert_escaped(response.content.decode())


def test_staff_get_thumbnails_and_files_through_the_admin(staff_client, sent):
    image = sent.attachments.get(kind="image")

    thumbnail = staff_client.get(reverse("admin:chat_attachment_thumbnail", args=[image.pk]))
    file = staff_client.get(reverse("admin:chat_attachment_file", args=[image.pk]))

    assert thumbnail.status_code == file.status_code == 200
    assert thumbnail["X-Content-Type-Options"] == "nosniff" and file["Content-Type"] == image.media_type


@pytest.mark.parametrize("view", ["chat_attachment_thumbnail", "chat_attachment_file"])
def test_the_admin_file_views_are_for_staff_only(sent, owner, view):
    """The uploader, not staff, is sent to the admin's login; their own files are served by the owner views."""
    client = Client()
    client.force_login(owner)
    image = sent.attachments.get(kind="image")

    response = client.get(reverse(f"admin:{view}", args=[image.pk]))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- cleanup --------------------------------------------------------------------------------------------


def age(attachment: Attachment, hours: float, media_root) -> None:
    """Make an upload (and its files) look `hours` old."""
    Attachment.objects.filter(pk=attachment.pk).update(created_at=timezone.now() - timedelta(hours=hours))
    past = time.time() - hours * 3600
    for name in (attachment.file, attachment.thumbnail):
        if name:
            os.utime(media_root / name, (past, past))


def test_cleanup_removes_unclaimed_uploads_older_than_a_day_and_their_files(owner, sent, media_root):
    [old] = uploaded(owner, "old.png", image_bytes(color=(1, 2, 3)))
    [recent] = uploaded(owner, "recent.png", image_bytes(color=(4, 5, 6)))
    age(old, 25, media_root)
    age(recent, 23, media_root)
    for attachment in sent.attachments.all():
        age(attachment, 48, media_root)

    call_command("attachments_cleanup", stdout=io.StringIO())

    assert set(Attachment.objects.values_list("name", flat=True)) == {MARKUP_NAME, "notes.pdf", "recent.png"}
    assert not (media_root / old.file).exists() and not (media_root / old.thumbnail).exists()
    assert (media_root / recent.file).exists()
    assert all((media_root / attachment.file).exists() for attachment in sent.attachments.all())


def test_cleanup_keeps_a_file_that_another_upload_of_the_same_bytes_still_uses(owner, sent, media_root):
    data = image_bytes(color=(9, 9, 9))
    [old] = uploaded(owner, "first.png", data)
    age(old, 30, media_root)
    [again] = uploaded(owner, "again.png", data)
    attachments_claim(attachments=[again], message=sent)

    call_command("attachments_cleanup", stdout=io.StringIO())

    assert not Attachment.objects.filter(pk=old.pk).exists()
    assert again.file == old.file and (media_root / again.file).exists()


def test_cleanup_removes_files_left_by_a_deleted_conversation(owner, sent, conversation, media_root):
    files = [attachment.file for attachment in sent.attachments.all()]
    for attachment in sent.attachments.all():
        age(attachment, 30, media_root)
    conversation.delete()

    call_command("attachments_cleanup", stdout=io.StringIO())

    assert not any((media_root / name).exists() for name in files)
