"""Upload, and the owner-checked views that serve stored files. MEDIA_ROOT itself is never served."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import TooManyFilesSent, ValidationError
from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from chat import citations, frames, selectors
from chat.attachments import services, storage
from chat.attachments.formats import MEDIA_TYPES, SUFFIXES
from chat.attachments.names import display_name
from chat.db import db_async
from chat.models import Attachment

# A PDF may carry JavaScript, which a browser's PDF viewer runs: it is only ever downloaded, never opened here.
DOWNLOADED = {"application/pdf"}
# Whatever a stored file turns out to be, the browser runs nothing from it in this origin: sandboxed (no
# script, plugin or form, and not this origin's cookies or storage), loading nothing but images from here (the
# file itself, in the browser's image viewer) and inline styles (which its image and text viewers use).
SERVED_POLICY = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
# A PDF in the browser's viewer (`attachment_pdf_view`): no sandbox, which the viewer refuses; nothing else may
# load or frame it, and the viewer's own generated page keeps its inline styles and embed.
PDF_VIEWER_POLICY = "default-src 'none'; object-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"
# An upload holds its thread while its files are parsed and read, which may mean waiting for a decode turn
# (isolation.py) and then for the child: on the event loop's default pool, which every websocket turn and
# checkpoint shares (chat/db.py), twenty uploads at once stalled every chat. Uploads get their own threads:
# one per decode turn, and two to parse the next requests meanwhile; more wait here for a thread.
UPLOAD_THREADS = ThreadPoolExecutor(
    max_workers=settings.ATTACHMENT_DECODE_CONCURRENCY + 2, thread_name_prefix="attachment-upload"
)


@csrf_exempt  # checked in _upload: the middleware would parse the whole body on the thread for sync views
@login_required
@require_POST
async def attachment_upload_view(request):
    """Multipart `file` fields, one result each, in order: {"files": [{name, attachment} or {name, error}]}.

    A refused file does not affect the others; a file that became several attachments (a multi-page TIFF) has
    an entry for each. The request as a whole is refused, with nothing stored, only when it has too many files
    or the disk fills while its files are received. Async, with the parsing and the processing on
    UPLOAD_THREADS (each thread its own connection), so a slow upload holds none of the threads that serve
    pages, websocket turns or checkpoints.
    """
    return await db_async(_upload_answered, executor=UPLOAD_THREADS)(request)


def _upload_answered(request):
    try:
        return _upload(request)
    except TooManyFilesSent:  # Django stops parsing at DATA_UPLOAD_MAX_NUMBER_FILES
        return _too_many_files()
    except OSError as error:
        if not storage.is_disk_full(error):
            raise
        # The file being received when the disk filled is still open in its handler: Django only closes the
        # ones it finished.
        for handler in request.upload_handlers:
            handler.upload_interrupted()
        return JsonResponse({"error": storage.DISK_FULL}, status=507)


@csrf_protect
def _upload(request):
    uploads = request.FILES.getlist("file")
    if len(uploads) > settings.ATTACHMENT_MAX_FILES_PER_UPLOAD:
        return _too_many_files()
    if not uploads:
        return JsonResponse({"error": "Choose a file to upload."}, status=400)
    results = []
    for upload in uploads:
        name = upload.name or ""
        try:
            attachments = services.attachments_upload(
                owner=request.user, name=name, path=Path(upload.temporary_file_path())
            )
        except ValidationError as error:
            results.append({"name": display_name(name), "error": error.messages[0]})
        else:
            results.extend(
                {"name": attachment.name, "attachment": frames.attachment_payload(attachment)}
                for attachment in attachments
            )
        finally:
            upload.close()  # deletes the received file now, not at the end of the request
    return JsonResponse({"files": results})


def _too_many_files():
    most = settings.ATTACHMENT_MAX_FILES_PER_UPLOAD
    return JsonResponse({"error": f"At most {most} files can be uploaded at once."}, status=400)


@login_required
@require_GET
def attachment_file(request, attachment_id):
    """The stored file under the name shown: images and text open in the browser, PDFs download."""
    attachment = selectors.attachment_for_user(request.user, attachment_id)
    return file_response(attachment.file, attachment.media_type, attachment.name)


def _cited_attachment(user, attachment_id) -> Attachment:
    """The attachment a citation leads to, if `user` may read it, else 404: their own upload, or a file of a
    project they own or are a member of (a project's files are its owner's uploads, and every member's
    conversation in it sends and cites them; projects/views.py `project_file` serves them to members too)."""
    from projects.selectors import projects_for_user  # projects builds on chat

    readable = Q(owner=user) | Q(project__in=projects_for_user(user).values("pk"))
    return get_object_or_404(Attachment.objects.filter(readable), pk=attachment_id)


@login_required
@require_GET
def attachment_pdf_view(request, attachment_id):
    """A PDF opened in the browser's own viewer, where a citation's `#page=N` takes it (chat/citations.py).

    Inline, unlike `attachment_file`: the browser's PDF viewer refuses to run in a sandboxed document, so the
    policy here is what leaves it working while the file still runs nothing in this origin. The viewer (Chrome's
    and Firefox's alike) runs a PDF's scripts, if any, in its own isolated context, not in this page's; the
    declared type, never sniffed, means the bytes can only ever be shown as a PDF; and no page may frame it.
    """
    attachment = _cited_attachment(request.user, attachment_id)
    if attachment.media_type != "application/pdf":
        raise Http404("Only PDFs open in the viewer.")
    response = file_response(attachment.file, attachment.media_type, attachment.name)
    response["Content-Disposition"] = response["Content-Disposition"].replace("attachment", "inline", 1)
    response["Content-Security-Policy"] = PDF_VIEWER_POLICY
    response["X-Frame-Options"] = "DENY"
    response["Cache-Control"] = "private, no-store"  # a member removed from the project cannot keep opening it
    return response


@login_required
@require_GET
def attachment_passage(request, attachment_id):
    """A text document with the cited characters `start`..`end` highlighted and scrolled to (`#passage`):
    where a citation of a text document leads. The text is escaped by the template like any user input."""
    attachment = _cited_attachment(request.user, attachment_id)
    if attachment.kind != Attachment.Kind.TEXT:
        raise Http404("Only text documents have passages.")
    try:
        start, end = int(request.GET.get("start", "0")), int(request.GET.get("end", "0"))
    except ValueError:
        return HttpResponseBadRequest("start and end are character positions: whole numbers.")
    try:
        text = storage.file_read(attachment.file).decode("utf-8", "replace")
    except FileNotFoundError:
        raise Http404("This file is no longer stored.") from None
    before, cited, after = citations.passage_parts(text, start, end)
    context = {"attachment": attachment, "before": before, "cited": cited, "after": after}
    response = render(request, "chat/passage.html", context)
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def attachment_thumbnail(request, attachment_id):
    return thumbnail_response(selectors.attachment_for_user(request.user, attachment_id))


def thumbnail_response(attachment) -> FileResponse:
    """An image attachment's thumbnail (PDFs and text have none); the admin serves it to staff with this too."""
    if not attachment.thumbnail:
        raise Http404("Only images have a thumbnail.")
    media_type = MEDIA_TYPES[PurePath(attachment.thumbnail).suffix]
    return file_response(attachment.thumbnail, media_type, attachment.name)


def file_response(name: str, media_type: str, shown_name: str) -> FileResponse:
    """A stored file, for a caller that checked who may see it.

    The declared type, never sniffed, under SERVED_POLICY, since an uploaded file is the one thing here that
    its sender chose; text as UTF-8, as stored. The name shown is quoted safely in Content-Disposition
    (RFC 6266, with `filename*` when it is not ASCII), with the stored file's extension, since an image may
    have been re-encoded and a document turned into text.
    """
    try:
        handle = storage.file_path(name).open("rb")
    except FileNotFoundError:
        raise Http404("This file is no longer stored.") from None
    filename = PurePath(shown_name).stem + SUFFIXES.get(media_type, "")
    content_type = f"{media_type}; charset=utf-8" if media_type.startswith("text/") else media_type
    response = FileResponse(
        handle, content_type=content_type, filename=filename, as_attachment=media_type in DOWNLOADED
    )
    response["Content-Security-Policy"] = SERVED_POLICY
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def uncached(response):
    """A file whose access can end while the browser still holds it (a share revoked, a project member
    removed), where the owner's own files may be kept an hour: asked for again each time, so closing the
    access closes the file too."""
    response["Cache-Control"] = "private, no-store"
    return response
