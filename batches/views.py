from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from batches import selectors, services
from batches.forms import BulkForm
from batches.models import Batch
from batches.worker import settled_tell
from chat.refusals import Refusal
from config.spreadsheets import csv_response

STATUS_SHOWN = {
    "pending": "Queued", "succeeded": "Answered", "errored": "Failed", "canceled": "Cancelled", "expired": "Expired",
}


@login_required
@require_http_methods(["GET", "POST"])
def bulk_new(request):
    """Ask the same question of each of several files, at half price."""
    form = BulkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch = services.bulk_create(
                user=request.user, question=form.cleaned_data["question"], model=form.cleaned_data["model"],
                attachment_ids=form.cleaned_data["attachments"],
                per_file=form.cleaned_data["per_file_conversations"],
            )
        except Refusal as refusal:
            form.add_error(None, refusal.detail)
        else:
            return redirect("batch_detail", batch.pk)
    return render(request, "batches/bulk_new.html", {
        "form": form, "max_files": settings.BATCH_BULK_MAX_FILES, "batches": selectors.batches_for_user(request.user),
    })


@login_required
def batch_detail(request, batch_id):
    """The table of answers, which fills in as results land (the page reloads itself while the batch is open)."""
    batch = selectors.batch_for_user(request.user, batch_id)
    rows = selectors.batch_rows(batch)
    open_ = batch.status in (Batch.Status.PENDING, Batch.Status.SUBMITTING, Batch.Status.SUBMITTED)
    return render(request, "batches/batch_detail.html", {
        "batch": batch, "rows": [(row, STATUS_SHOWN[row.status]) for row in rows], "open": open_,
        "refresh_seconds": int(settings.BATCH_PAGE_CHECK_SECONDS), "total": sum(row.cost for row in rows),
    })


@login_required
def batch_csv(request, batch_id):
    batch = selectors.batch_for_user(request.user, batch_id)
    rows = (
        (row.name, row.answer, STATUS_SHOWN[row.status], row.error, row.cost)
        for row in selectors.batch_rows(batch)
    )
    return csv_response(f"batch-{batch.pk}.csv", ("File", "Answer", "Status", "Error", "Cost ($)"), rows)


@login_required
@require_POST
def batch_cancel_view(request, batch_id):
    batch = selectors.batch_for_user(request.user, batch_id)
    _tell(services.batch_cancel(batch=batch))
    return redirect("batch_detail", batch.pk)


@login_required
@require_POST
def reply_cancel_view(request, message_id):
    """Cancel a queued reply without the socket (the page's Cancel button uses the `cancel` frame)."""
    item = selectors.queued_item_for_user(request.user, message_id)
    _tell(services.batch_cancel(batch=item.batch))
    return redirect("conversation_detail", item.message.conversation_id)


def _tell(settled) -> None:
    """Items a cancel settled at once: their frames to the pages open on them."""
    for entry in settled:
        async_to_sync(settled_tell)(entry)
