"""Import conversations from a file (docs/import.md): this app's JSON export, or claude.ai's or ChatGPT's data
export. `reading` turns the upload into documents at bounded cost, `formats` each document into a checked
Draft, and `conversation_store` writes a draft as a conversation of the importing user, in one transaction.

An imported conversation is like one written here, with nothing spent: no ledger rows, no usage or cost, no
reservation, and nothing of it goes to the model until its owner sends a message in it.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from chat.imports import formats, reading
from chat.imports.reading import ImportRefused
from chat.llm.registry import AUTO, model_offered
from chat.models import Conversation, Message, TitleSource
from chat.services import storable, title_from

__all__ = ["ImportRefused", "ImportReport", "conversation_store", "conversations_import"]

TITLE_LENGTH = Conversation._meta.get_field("title").max_length
NOT_KNOWN = "This file is not a conversation exported from this app, claude.ai or ChatGPT."
BUSY = "Another import of yours is still running; try again once it has finished."
# How long an import holds its owner's lock at most: well past what one at the caps takes (about two minutes
# on the 2-core test machine), so that a process that dies mid-import does not keep its owner out for long.
IMPORT_LOCK_SECONDS = 15 * 60


@dataclass
class ImportReport:
    imported: list[Conversation] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (a name for it, why: "… because <why>")
    stopped: str = ""  # why the file was not read to its end, in a sentence


def conversations_import(*, owner, upload: IO[bytes]) -> ImportReport:
    """Every conversation in `upload` (a file of at most IMPORT_MAX_BYTES, which the caller checked), as
    conversations of `owner`, each committed on its own: a conversation that cannot be imported is skipped and
    the rest are kept, and a file that breaks off keeps what came before the break. At most
    IMPORT_MAX_CONVERSATIONS are read. ImportRefused, with nothing imported, when the file holds nothing to
    import: not JSON or a zip, a zip without conversations.json, a single conversation that cannot be one;
    or while another import of the same owner runs (one at a time each, by a lock in the cache: with Redis
    across processes, with the in-process cache within one), so one user cannot hold every import thread."""
    lock = f"conversation-import:{owner.pk}"
    if not cache.add(lock, True, timeout=IMPORT_LOCK_SECONDS):
        raise ImportRefused("busy", BUSY)
    try:
        return _conversations_read(owner, upload)
    finally:
        cache.delete(lock)


def _conversations_read(owner, upload: IO[bytes]) -> ImportReport:
    many, documents = reading.documents(upload)
    report = ImportReport()
    limit = settings.IMPORT_MAX_CONVERSATIONS
    try:
        for number, document in enumerate(documents, 1):
            if number > limit:
                report.stopped = (
                    f"The file holds more than {limit:,} conversations; the first {limit:,} were read."
                )
                break
            name = formats.title_of(document.value) or f"Conversation {number}"
            try:
                if document.problem:
                    raise formats.Skipped(document.problem)
                draft = formats.draft_from(document.value)
                if not draft.messages:
                    raise formats.Skipped("it has no messages")
            except formats.Skipped as skipped:
                if not many:
                    detail = (
                        NOT_KNOWN
                        if isinstance(skipped, formats.NotAConversation)
                        else f"This conversation cannot be imported: {skipped.reason}."
                    )
                    raise ImportRefused("not_importable", detail) from None
                report.skipped.append((name, skipped.reason))
                continue
            report.imported.append(conversation_store(owner=owner, draft=draft))
    except reading.DocumentsBroken as broken:
        if not report.imported and not report.skipped:
            raise ImportRefused("broken", broken.detail) from None
        report.stopped = broken.detail
    if not report.imported and not report.skipped:
        raise ImportRefused("empty", "The file holds no conversations.")
    return report


def conversation_store(*, owner, draft: formats.Draft) -> Conversation:
    """The draft as a new conversation of `owner`, in one transaction: the conversation, its messages in one
    INSERT (bulk_create hands back their ids, in order, on PostgreSQL and SQLite 3.35 or later), one UPDATE
    for their parents and times (`_parents_and_times_set`), one for the conversation's leaf and times: the
    same queries for a short conversation and a long one, more only past a batch (the database's parameter
    limit for the INSERT, UPDATE_BATCH rows for the UPDATE).

    Times come from the source, never later than now (a file cannot pin a conversation to the top of the
    sidebar); the conversation's model is the source's when it is offered here, else the owner's default."""
    now = timezone.now()
    title = " ".join(draft.title.split())[:TITLE_LENGTH]
    title_source = TitleSource.USER if title else TitleSource.NONE
    if not title and (words := formats.first_words(draft)):
        title, title_source = title_from(words), TitleSource.FIRST_MESSAGE
    model = draft.model if draft.model == AUTO or (draft.model and model_offered(draft.model)) else ""
    created = [_not_after(message.created_at, now) for message in draft.messages]
    known = [moment for moment in created if moment]
    with transaction.atomic():
        conversation = Conversation.objects.create(
            owner=owner,
            title=storable(title),
            title_source=title_source,
            model=model or owner.default_model or settings.CHAT_DEFAULT_MODEL,
            system_prompt=storable(
                owner.system_prompt if draft.system_prompt is None else draft.system_prompt
            ),
            thinking=draft.thinking,
        )
        rows = Message.objects.bulk_create(
            Message(
                conversation=conversation,
                role=message.role,
                content=storable(message.content),
                status=message.status,
                error=storable(message.error),
                stop_reason=storable(message.stop_reason),
                model=storable(message.model),
                first_token_ms=message.first_token_ms,
                duration_ms=message.duration_ms,
                route_reason=storable(message.route_reason),
                notices=storable(message.notices),
            )
            for message in draft.messages
        )
        ids = {message.key: row.pk for message, row in zip(draft.messages, rows)}
        _parents_and_times_set(
            (row.pk, ids[message.parent] if message.parent is not None else None, moment or row.created_at)
            for message, row, moment in zip(draft.messages, rows, created)
        )
        conversation.current_leaf_id = ids.get(draft.leaf)
        conversation.created_at = _not_after(draft.created_at, now) or min(known, default=now)
        conversation.updated_at = _not_after(draft.updated_at, now) or max(
            known, default=conversation.created_at
        )
        # An UPDATE, not save(): save() would set updated_at to now.
        Conversation.objects.filter(pk=conversation.pk).update(
            current_leaf_id=conversation.current_leaf_id,
            created_at=conversation.created_at,
            updated_at=conversation.updated_at,
        )
    return conversation


# Rows of (id, parent, created_at) in one UPDATE: three parameters each, within SQLite's 999.
UPDATE_BATCH = 300


def _parents_and_times_set(rows) -> None:
    """Each message's parent and time, `(id, parent_id, created_at)`, in one UPDATE ... FROM (VALUES ...) per
    UPDATE_BATCH rows (PostgreSQL, and SQLite 3.33 or later). Not bulk_update: its CASE WHEN per row cost a
    millisecond and more of Python each, three quarters of an import's time. Where the database cannot tell a
    parameter's type inside VALUES (PostgreSQL), each is cast to its column's type, as bulk_update casts."""
    parent_field, time_field = Message._meta.get_field("parent"), Message._meta.get_field("created_at")
    quote = connection.ops.quote_name
    table, parent, created, pk = (
        quote(name) for name in (Message._meta.db_table, parent_field.column, time_field.column, "id")
    )
    row_sql = "(%s, %s, %s)"
    if connection.features.requires_casted_case_in_updates:
        parent_type, time_type = parent_field.db_type(connection), time_field.db_type(connection)
        row_sql = f"(%s, CAST(%s AS {parent_type}), CAST(%s AS {time_type}))"
    rows = list(rows)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), UPDATE_BATCH):
            batch = rows[start : start + UPDATE_BATCH]
            values = ", ".join([row_sql] * len(batch))
            cursor.execute(
                f"UPDATE {table} SET {parent} = v.column2, {created} = v.column3 "
                f"FROM (VALUES {values}) AS v WHERE {table}.{pk} = v.column1",
                [
                    value
                    for row_id, parent_id, moment in batch
                    for value in (row_id, parent_id, time_field.get_db_prep_value(moment, connection))
                ],
            )


def _not_after(moment: datetime | None, now: datetime) -> datetime | None:
    return min(moment, now) if moment else None
