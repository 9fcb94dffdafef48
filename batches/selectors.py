"""Reads of the half-price batches, each owner-checked: another user's batch is a 404, as every object is."""

from django.shortcuts import get_object_or_404

from batches.models import Batch, BatchItem


def batch_for_user(user, batch_id) -> Batch:
    """A bulk batch of `user`, else 404: the one door of the bulk pages, their CSV and their cancel."""
    return get_object_or_404(Batch, pk=batch_id, owner=user, kind=Batch.Kind.BULK)


def batches_for_user(user, *, limit: int = 20) -> list[Batch]:
    """The user's latest bulk questions (index batch_owner_created)."""
    return list(Batch.objects.filter(owner=user, kind=Batch.Kind.BULK).order_by("-created_at", "-id")[:limit])


def batch_rows(batch: Batch) -> list[BatchItem]:
    """The table of a bulk batch: one row per file, in the order they were given, with its conversation."""
    return list(batch.items.select_related("message").order_by("id"))


def queued_item_for_user(user, message_id) -> BatchItem:
    """The unsettled batch item of a queued reply in one of `user`'s conversations, else 404."""
    return get_object_or_404(
        BatchItem.objects.select_related("batch"), message_id=message_id, message__conversation__owner=user,
    )
