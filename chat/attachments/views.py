"""Upload, and the owner-checked views that serve stored files. MEDIA_ROOT itself is never served."""

from pathlib import PurePath

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import TooManyFilesSent, ValidationError
from django.http import FileResponse, Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from chat import frames, selectors
from chat.attachments import services, storage
from chat.attachments.names import display_name

MEGABYTE = 1024 * 1024
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "application/pdf": ".pdf"}


@csrf_exempt  # checked in _upload, after the size: the middleware would read the whole body first
@login_required
@require_POST
def attachment_upload_view(request):
    """Multipart `file` fields, one result each, in order: {"files": [{name, attachment} or {name, error}]}.

    A refused file does not affect the others. The request as a whole is refused, with nothing stored, only
    when it is too big (checked before its body is read) or has too many files.
    """
    if int(request.META.get("CONTENT_LENGTH") or 0) > settings.ATTACHMENT_MAX_UPLOAD_BYTES:
        limit = settings.ATTACHMENT_MAX_UPLOAD_BYTES / MEGABYTE
        message = f"An upload can be at most {limit:g} MB. Send fewer or smaller files."
        return JsonResponse({"error": message}, status=413)
    try:
        return _upload(request)
    except TooManyFilesSent:  # Django stops parsing at DATA_UPLOAD_MAX_NUMBER_FILES
        return _too_many_files()


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
            attachment = services.attachment_upload(owner=request.user, name=name, data=upload.read())
        except ValidationError as error:
            results.append({"name": display_name(name), "error": error.messages[0]})
        else:
            results.append({"name": attachment.name, "attachment": frames.attachment_payload(attachment)})
    return JsonResponse({"files": results})


def _too_many_files():
    most = settings.ATTACHMENT_MAX_FILES_PER_UPLOAD
    return JsonResponse({"error": f"At most {most} files can be uploaded at once."}, status=400)


@login_required
@require_GET
def attachment_file(request, attachment_id):
    """The stored file, inline (images open, PDFs open in the browser's viewer), under the name shown."""
    attachment = selectors.attachment_for_user(request.user, attachment_id)
    return file_response(attachment.file, attachment.media_type, attachment.name)


@login_required
@require_GET
def attachment_thumbnail(request, attachment_id):
    return thumbnail_response(selectors.attachment_for_user(request.user, attachment_id))


def thumbnail_response(attachment) -> FileResponse:
    """An image attachment's thumbnail (PDFs have none); the admin serves it to staff with this too."""
    if not attachment.thumbnail:
        raise Http404("PDFs have no thumbnail.")
    media_type = "image/png" if attachment.thumbnail.endswith(".png") else "image/jpeg"
    return file_response(attachment.thumbnail, media_type, attachment.name)


def file_response(name: str, media_type: str, shown_name: str) -> FileResponse:
    """A stored file, for a caller that checked who may see it.

    The declared type, never sniffed; the name shown quoted safely in Content-Disposition (RFC 6266, with
    `filename*` when it is not ASCII), with the stored file's extension, since an image may be re-encoded.
    """
    try:
        handle = storage.file_path(name).open("rb")
    except FileNotFoundError:
        raise Http404("This file is no longer stored.") from None
    filename = PurePath(shown_name).stem + EXTENSIONS.get(media_type, "")
    response = FileResponse(handle, content_type=media_type, filename=filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
