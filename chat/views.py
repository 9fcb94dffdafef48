from itertools import islice

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from chat import exports, forks, frames, selectors, services
from chat.forms import ConversationSettingsForm
from chat.inbound import MAX_ROW_ID
from chat.llm.registry import AUTO, models_offered


def _chat_page(request, conversation):
    tree_data = {"type": "tree", "version": 0, "path": [], "messages": []}
    if conversation is not None:
        # The version was read with the conversation, before the tree: a change in between shows the newer path
        # under the older version, which the next frame replaces; never an older path under a newer version.
        tree = selectors.Tree.of(conversation.pk)
        path = tree.path_to(conversation.current_leaf_id)
        tree_data = frames.tree_frame(
            path, tree, selectors.messages_in_order(conversation, path), version=conversation.tree_version
        )
    return render(
        request,
        "chat/chat.html",
        {
            # The page refuses a file over it before uploading it.
            "attachment_max_file_bytes": settings.ATTACHMENT_MAX_FILE_BYTES,
            "conversation": conversation,
            "conversations": selectors.conversations_for_user(request.user),
            "tree_data": tree_data,
            "models": model_choices(),
            "settings_form": ConversationSettingsForm(instance=conversation) if conversation else None,
            "ws_path": f"/ws/conversations/{conversation.pk}/" if conversation else "",
        },
    )


def model_choices() -> list[dict]:
    """The picker: Auto, then every offered model."""
    offered = [{"id": spec.id, "display_name": spec.display_name} for spec in models_offered()]
    return [{"id": AUTO, "display_name": "Auto"}, *offered]


@login_required
@require_GET
def home(request):
    latest = selectors.conversations_for_user(request.user).first()
    if latest is not None:
        return redirect("conversation_detail", conversation_id=latest.pk)
    return _chat_page(request, None)


@login_required
@require_GET
def conversation_detail(request, conversation_id):
    return _chat_page(request, selectors.conversation_for_user(request.user, conversation_id))


@login_required
@require_POST
def conversation_create_view(request):
    """A new chat, reusing the user's newest one if it is still empty, so "New chat" never piles up blanks."""
    latest = selectors.conversations_for_user(request.user).first()
    if latest is not None and not selectors.conversation_messages(latest).exists():
        return redirect("conversation_detail", conversation_id=latest.pk)
    conversation = services.conversation_create(owner=request.user)
    return redirect("conversation_detail", conversation_id=conversation.pk)


@login_required
@require_POST
def conversation_rename_view(request, conversation_id):
    conversation = selectors.conversation_for_user(request.user, conversation_id)
    services.conversation_rename(conversation=conversation, title=request.POST.get("title", ""))
    if request.headers.get("X-Requested-With") == "fetch":
        return HttpResponse(status=204)
    return redirect("conversation_detail", conversation_id=conversation.pk)


@login_required
@require_POST
def conversation_delete_view(request, conversation_id):
    conversation = selectors.conversation_for_user(request.user, conversation_id)
    services.conversation_delete(conversation=conversation)
    return redirect("home")


@login_required
@require_POST
def conversation_settings_view(request, conversation_id):
    """The conversation's system prompt and thinking level, from the dialog in the chat header."""
    conversation = selectors.conversation_for_user(request.user, conversation_id)
    form = ConversationSettingsForm(request.POST, instance=conversation)
    if not form.is_valid():
        return HttpResponseBadRequest(" ".join(error for errors in form.errors.values() for error in errors))
    services.conversation_settings_update(conversation=conversation, **form.cleaned_data)
    return redirect("conversation_detail", conversation_id=conversation.pk)


@login_required
@require_POST
def conversation_fork_view(request, conversation_id):
    """A new conversation holding the path from the root down to `message` (a reply still being written is
    left out), which the owner then continues on its own."""
    conversation = selectors.conversation_for_user(request.user, conversation_id)
    message_id = _row_id(request.POST.get("message", ""))
    path = selectors.path_messages(conversation, message_id) if message_id is not None else []
    if not path:
        raise Http404("No such message in this conversation.")
    messages = forks.path_settled(path)
    fork = forks.conversation_fork(
        messages=messages, owner=request.user, title=f"{conversation.title or 'New chat'} (fork)",
    )
    return redirect("conversation_detail", conversation_id=fork.pk)


def _row_id(text: str) -> int | None:
    """`text` as the id of a row, or None for anything else: not ASCII digits, 0, or past the largest bigint
    (checked by its length first, so a number thousands of digits long is never converted)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ROW_ID)):
        return None
    row_id = int(text)
    return row_id if 0 < row_id <= MAX_ROW_ID else None


EXPORTS = {
    "md": (exports.markdown_parts, "text/markdown; charset=utf-8"),
    "json": (exports.json_parts, "application/json; charset=utf-8"),
}


@login_required
@require_GET
def conversation_export_view(request, conversation_id, export_format):
    """The conversation as a download, streamed as it is read (chat/exports.py)."""
    conversation = selectors.conversation_for_user(request.user, conversation_id)
    parts, content_type = EXPORTS[export_format]
    response = StreamingHttpResponse(_served(request, parts(conversation)), content_type=content_type)
    filename = exports.export_filename(conversation, export_format)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


def _served(request, parts):
    """`parts` as the server streams it. Under ASGI a plain iterator would be read into memory whole before the
    first byte is sent (Django warns and lists it), so there it is read in batches on the thread that serves
    sync code, keeping the export's server-side cursors on one connection."""
    if not isinstance(request, ASGIRequest):
        return parts

    async def batches():
        take = sync_to_async(lambda: "".join(islice(parts, 64)), thread_sensitive=True)
        while chunk := await take():
            yield chunk

    return batches()
