"""The bulk question: the same question of each of several files, as one Message Batch. Files go through the
upload pipeline (POST /attachments/); the batch's table fills in as the worker settles the results; CSV export
through the project's spreadsheet-safe helper; owner-checked pages."""

import csv
import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from batches.models import Batch, BatchItem
from billing.models import Reservation
from chat.models import ApiCall, Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "What is this file about?"


@pytest.fixture(autouse=True)
def offline_batches(settings, tmp_path):
    settings.OFFLINE_MODEL_BATCH_DIR = str(tmp_path / "offline-batches")
    settings.OFFLINE_MODEL_BATCH_SECONDS = 0
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FILE_UPLOAD_TEMP_DIR = tmp_path / "received"
    settings.FILE_UPLOAD_TEMP_DIR.mkdir()


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def uploaded_ids(client, *files: tuple[str, bytes]) -> list[int]:
    response = client.post(
        reverse("attachment_upload"), {"file": [SimpleUploadedFile(name, data) for name, data in files]}
    )
    assert response.status_code == 200, response.content
    return [result["attachment"]["id"] for result in response.json()["files"]]


FILES = [
    ("minutes.txt", b"The team met and agreed on the offsite budget."),
    ("=HYPERLINK(evil).txt", b"A file whose name a spreadsheet would run."),
]


def ask(client, ids, *, per_file=False, model="claude-haiku-5-5"):
    data = {"question": QUESTION, "model": model, "attachments": [str(pk) for pk in ids]}
    if per_file:
        data["per_file_conversations"] = "on"
    return client.post(reverse("bulk_new"), data)


def work_once():
    call_command("batches_work", "--once")


def offered_model():
    from chat.llm.registry import models_offered

    return models_offered()[0].id


def test_the_bulk_page_asks_each_file_in_one_batch_and_fills_the_table(owner_client, owner):
    ids = uploaded_ids(owner_client, *FILES)

    response = ask(owner_client, ids, model=offered_model())

    batch = Batch.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("batch_detail", args=[batch.pk])
    assert batch.kind == "bulk" and batch.items.count() == 2
    assert Reservation.objects.filter(user=owner).count() == 2
    page = owner_client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    assert "Queued at half price" in page and 'http-equiv="refresh"' in page

    work_once()
    work_once()

    assert Batch.objects.get().status == "ended"
    assert set(BatchItem.objects.values_list("status", flat=True)) == {"succeeded"}
    assert ApiCall.objects.filter(purpose="batch").count() == 2 and not Reservation.objects.exists()
    page = owner_client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    assert "Answered" in page and "minutes.txt" in page and 'http-equiv="refresh"' not in page
    assert not Conversation.objects.exists()


def test_the_csv_has_a_row_per_file_and_no_formula_cells(owner_client):
    ask(owner_client, uploaded_ids(owner_client, *FILES), model=offered_model())
    work_once()
    work_once()
    batch = Batch.objects.get()

    response = owner_client.get(reverse("batch_csv", args=[batch.pk]))

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["File", "Answer", "Status", "Error", "Cost ($)"]
    assert [row[0] for row in rows[1:]] == ["minutes.txt", "'=HYPERLINK(evil).txt"]
    assert all(row[1] and row[2] == "Answered" and Decimal(row[4]) > 0 for row in rows[1:])


def test_one_conversation_per_file_holds_the_question_and_the_answer(owner_client, owner):
    ask(owner_client, uploaded_ids(owner_client, *FILES), per_file=True, model=offered_model())
    assert Conversation.objects.filter(owner=owner).count() == 2
    assert set(Message.objects.filter(role="assistant").values_list("status", flat=True)) == {"queued"}

    work_once()
    work_once()

    for conversation in Conversation.objects.filter(owner=owner):
        question, answer = conversation.messages.order_by("id")
        assert question.text == QUESTION and question.attachments.count() == 1
        assert answer.status == "complete" and answer.text and answer.cost > 0
        assert conversation.current_leaf_id == answer.pk
    assert Batch.objects.count() == 1 and not Reservation.objects.exists()


def test_the_whole_batch_is_refused_when_the_budget_cannot_hold_its_worst_case(owner_client, owner):
    owner.monthly_budget = Decimal("0.01")
    owner.save()

    response = ask(owner_client, uploaded_ids(owner_client, *FILES), model=offered_model())

    assert response.status_code == 200 and "could cost up to" in response.content.decode()
    assert not Batch.objects.exists() and not Reservation.objects.exists()


def test_someone_elses_files_are_refused(owner_client, client, outsider):
    ids = uploaded_ids(owner_client, *FILES)
    client.force_login(outsider)

    response = ask(client, ids, model=offered_model())

    assert response.status_code == 200 and "not yours" in response.content.decode()
    assert not Batch.objects.exists()


def test_more_files_than_the_limit_are_refused(owner_client, settings):
    settings.BATCH_BULK_MAX_FILES = 1
    response = ask(owner_client, uploaded_ids(owner_client, *FILES), model=offered_model())
    assert "At most 1 files" in response.content.decode() and not Batch.objects.exists()


def test_an_outsider_gets_404_on_the_table_the_csv_and_cancel(owner_client, client, outsider):
    ask(owner_client, uploaded_ids(owner_client, *FILES), model=offered_model())
    batch = Batch.objects.get()
    client.force_login(outsider)

    assert client.get(reverse("batch_detail", args=[batch.pk])).status_code == 404
    assert client.get(reverse("batch_csv", args=[batch.pk])).status_code == 404
    assert client.post(reverse("batch_cancel", args=[batch.pk])).status_code == 404
    assert Batch.objects.get().status == "pending"


def test_cancelling_a_bulk_batch_before_it_is_sent_releases_everything(owner_client):
    ask(owner_client, uploaded_ids(owner_client, *FILES), model=offered_model())
    batch = Batch.objects.get()

    owner_client.post(reverse("batch_cancel", args=[batch.pk]))

    assert set(BatchItem.objects.values_list("status", flat=True)) == {"canceled"}
    assert not Reservation.objects.exists()
    work_once()
    assert Batch.objects.get().upstream_id == ""


def test_a_queued_reply_can_be_cancelled_by_post_and_an_outsider_gets_404(owner_client, client, owner, outsider):
    from tests.test_admission import admit, signed_in

    conversation = Conversation.objects.create(owner=owner, model=offered_model())
    reply_id = admit(owner, conversation, signed_in(owner), batch=True).reply.pk
    client.force_login(outsider)
    assert client.post(reverse("reply_cancel", args=[reply_id])).status_code == 404
    assert Message.objects.get(pk=reply_id).status == "queued"

    owner_client.force_login(owner)
    response = owner_client.post(reverse("reply_cancel", args=[reply_id]))

    assert response.status_code == 302 and Message.objects.get(pk=reply_id).status == "stopped"
