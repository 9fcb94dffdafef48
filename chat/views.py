import json
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import selectors as billing_selectors
from chat import cache_stats, exports, forks, frames, imports, selectors, services
from chat.db import db_async
from chat.forms import ConversationImportForm, ConversationSettingsForm
from chat.inbound import MAX_ROW_ID
from chat.llm.catalog import model_description
from chat.llm.registry import AUTO, model_offered, models_offered
from chat.llm.request import thinking_choices
from chat.llm.server_tools import server_tools_supported_label
from config.origins import redirect_next
from connectors import selectors as connectors_selectors
from lifecycle import selectors as lifecycle_selectors


def _chat_page(request, conversation, *, through: int | None = None):
    """The chat page of `conversation` (None: a new chat). `through` (a search hit's message, already checked
    by `_switch_target`) shows the branch through it instead of the stored path, read-only; the page then asks
    for that branch with a `switch` frame once its socket opens (data-switch-message, static/chat/socket.js)."""
    shown = conversation or services.conversation_new(owner=request.user)
    tree_data = {"type": "tree", "version": 0, "path": [], "messages": []}
    messages, warmth = [], None
    if conversation is not None:
        # The version was read with the conversation, before the tree: a change in between shows the newer path
        # under the older version, which the next frame replaces; never an older path under a newer version.
        tree = selectors.Tree.of(conversation.pk)
        leaf = conversation.current_leaf_id if through is None else tree.newest_leaf_under(through)
        path = tree.path_to(leaf)
        messages = selectors.messages_in_order(conversation, path)
        # The replies' cache numbers and the cache's expiry: one query, however long the path.
        replies, warmth = cache_stats.conversation_cache(
            conversation, [message.pk for message in messages if message.role == message.Role.ASSISTANT]
        )
        tree_data = frames.tree_frame(
            path, tree, messages, version=conversation.tree_version,
            cache={pk: stats.as_dict() for pk, stats in replies.items()},
        )
    return render(
        request,
        "chat/chat.html",
        {
            # The page refuses a file over it before uploading it.
            "attachment_max_file_bytes": settings.ATTACHMENT_MAX_FILE_BYTES,
            "conversation": conversation,
            # What the page shows before the first message creates the conversation: the user's defaults.
            "shown": shown,
            **_sidebar(request.user),
            "switch_message": through or "",
            # How often the page asks for a queued (half-price) reply: it needs no shared channel layer (batches/).
            "batch_check_ms": int(settings.BATCH_PAGE_CHECK_SECONDS * 1000),
            "tree_data": tree_data,
            "cache_warmth": warmth.as_dict() if warmth else None,
            # A new chat never offers a retired model, even as the user's default: it starts on what is offered.
            "models": model_choices(shown.model if conversation is not None else ""),
            "settings_form": ConversationSettingsForm(instance=shown, turn_gaps=cache_stats.turn_gaps(messages)),
            # Under the composer: the start of the system prompt, which the settings dialog holds whole.
            "system_prompt_line": shown.system_prompt.strip().partition("\n")[0],
            # The Settings dialog's line on the MCP servers and the memory on offer (connectors/selectors.py).
            "tools_on_offer": connectors_selectors.tools_on_offer(request.user),
            "ws_path": f"/ws/conversations/{conversation.pk}/" if conversation else "",
        },
    )


def _sidebar(user) -> dict:
    """What templates/chat/_sidebar.html shows: the user's conversations, read in one query, under their date
    headings in the user's time zone."""
    conversations = list(selectors.conversations_for_user(user))
    groups = selectors.sidebar_groups(conversations, time_zone=user.time_zone)
    return {"conversations": conversations, "conversation_groups": groups}


AUTO_DESCRIPTION = (
    "Picks a model for each message: Opus for hard reasoning and long or many documents, Haiku for short "
    "classifying, extracting and translating, Sonnet for the rest. Each reply says which it chose and why."
)


def model_choices(current: str = "") -> list[dict]:
    """The picker: Auto, then every offered model, each with its description (chat/llm/catalog.py) at the
    prices it is charged at (billing's table wins over the catalog). One query. A deprecated model says when it
    retires and what replaces it (`lifecycle`: "deprecated"); `current`, the conversation's model, is added
    when it is retired (`lifecycle`: "retired"), so the page shows what the conversation is on and a send is
    refused naming the successor instead of going silently to another model."""
    offered = models_offered()
    prices = billing_selectors.prices_in_force(spec.id for spec in offered)
    lifecycles = lifecycle_selectors.lifecycles()
    choices = [{"id": AUTO, "display_name": "Auto", "description": AUTO_DESCRIPTION,
                "thinking": json.dumps(thinking_choices(None))}]
    for spec in offered:
        description = model_description(spec, prices.get(spec.id))
        choice = {"id": spec.id, "display_name": spec.display_name, "description": description,
                  "thinking": json.dumps(thinking_choices(spec)),  # what the Settings dialog offers
                  "server_tools": ", ".join(server_tools_supported_label(spec.server_tools))}
        if (row := lifecycles.get(spec.id)) is not None and row.deprecated():
            label = lifecycle_selectors.deprecation_label(row)
            choice.update(description=f"{description} {label}.", lifecycle="deprecated")
        choices.append(choice)
    if (row := lifecycles.get(current)) is not None and row.retired():
        choices.append({"id": current, "display_name": lifecycle_selectors.model_name(current),
                        "description": lifecycle_selectors.retirement_sentence(row), "lifecycle": "retired"})
    return choices


@login_required
@require_GET
def home(request):
    """Always a new chat: the chat page with no conversation yet. The first message creates it
    (`conversation_create`, asked by static/chat/new_chat.js), so opening this page and leaving creates nothing."""
    return _chat_page(request, None)


@login_required
@require_GET
def conversation_detail(request, conversation_id):
    conversation = selectors.conversation_for_user(request.user, conversation_id)
    through = _switch_target(conversation, _row_id(request.GET.get("message", "")))
    return _chat_page(request, conversation, through=through)


def _switch_target(conversation, message_id: int | None) -> int | None:
    """A search hit opens the conversation at its message (`?message=`, search/views.py). The GET changes
    nothing (a link on another site can open it): when that message is off the stored path, the page shows
    the branch through it as a `switch` would make it (down to the newest leaf under it) and sends that
    `switch` once its socket opens, which stores it and tells every tab (a `tree` frame). None, and the stored
    path shown, when the message is on it, is not one of the conversation's, or a reply is streaming (a
    switch would be refused `busy`)."""
    if message_id is None:
        return None
    tree = selectors.Tree.of(conversation.pk)
    if message_id not in tree.parents or message_id in tree.path_to(conversation.current_leaf_id):
        return None
    if selectors.streaming_message_id(conversation.pk, None) is not None:
        return None
    return message_id


@login_required
@require_POST
def conversation_create_view(request):
    """A new chat with the chosen `model` (optional: the user's default). Always a new conversation, except
    that `conversation=<id>` (the page's retry, with the id an earlier try of the same first message got back)
    names one to reuse: it is reused when it is the user's, not archived, in no project and still without
    messages; otherwise the id is ignored and a new one is made. So two tabs never share a conversation, and a
    page that got its id makes no second one. An empty one stays where a page was left between this answer and
    its first message (sent as soon as the socket opens), where this answer was lost (the page's retry, without
    the id, makes another), or where the no-script form made one never written in; nothing reuses or removes
    those (docs/frontend.md, "New chat").

    Asked by fetch (`X-Requested-With: fetch`, a new chat's first message) it answers what the page needs to
    become that conversation's page; otherwise it redirects there."""
    model = request.POST.get("model", "")
    if model and model != AUTO and not model_offered(model):
        return HttpResponseBadRequest(
            "That model is not offered here.", content_type="text/plain; charset=utf-8"
        )
    claimed = _row_id(request.POST.get("conversation", ""))
    with transaction.atomic():
        conversation = None
        if claimed is not None:
            conversation = selectors.conversation_unwritten_locked(request.user, claimed)
        if conversation is None:
            conversation = services.conversation_create(owner=request.user, model=model)
        elif model and model != conversation.model:
            conversation.model = model
            conversation.save(update_fields=["model"])
    if request.headers.get("X-Requested-With") == "fetch":
        return JsonResponse(_conversation_urls(request, conversation))
    return redirect("conversation_detail", conversation_id=conversation.pk)


def _conversation_urls(request, conversation) -> dict:
    """What the new chat page sets once its first message created the conversation (new_chat.js): its
    addresses, and its sidebar entry rendered by the template the sidebar uses."""
    pk = conversation.pk
    url = reverse("conversation_detail", args=[pk])
    return {
        "id": pk,
        "url": url,
        "ws_path": f"/ws/conversations/{pk}/",
        "upload_url": reverse("attachment_upload"),
        "fork_url": reverse("conversation_fork", args=[pk]),
        "model_switch_url": reverse("conversation_model_switch", args=[pk]),
        "settings_url": reverse("conversation_settings", args=[pk]),
        "export_markdown_url": reverse("conversation_export_markdown", args=[pk]),
        "export_json_url": reverse("conversation_export_json", args=[pk]),
        "shares_url": reverse("conversation_shares", args=[pk]),
        "project_url": reverse("conversation_project", args=[pk]),
        "sidebar_item": render_to_string(
            "chat/_sidebar_item.html",
            {"item": conversation, "conversation": conversation, "page_path": url},
            request=request,
        ),
    }


@login_required
@require_POST
def conversation_rename_view(request, conversation_id):
    """A blank title is refused (400, the reason as text) and the conversation keeps its title."""
    conversation = selectors.conversation_for_user(request.user, conversation_id)
    try:
        services.conversation_rename(conversation=conversation, title=request.POST.get("title", ""))
    except services.TitleRefused as refusal:
        return HttpResponseBadRequest(refusal.detail, content_type="text/plain; charset=utf-8")
    if request.headers.get("X-Requested-With") == "fetch":
        return HttpResponse(status=204)
    return redirect("conversation_detail", conversation_id=conversation.pk)


SWITCH_VALUES = {"1": True, "0": False}


@login_required
@require_POST
def conversation_pin_view(request, conversation_id):
    """`pinned` 1 pins, 0 unpins; back to the page it was asked from (`next`, this site's only)."""
    return _conversation_switch(request, conversation_id, "pinned", services.conversation_pin)


@login_required
@require_POST
def conversation_archive_view(request, conversation_id):
    """`archived` 1 archives, 0 brings it back; back to `next`, or home when the open conversation left."""
    return _conversation_switch(request, conversation_id, "archived", services.conversation_archive)


def _conversation_switch(request, conversation_id, field: str, change):
    conversation = selectors.conversation_for_user(request.user, conversation_id)
    value = SWITCH_VALUES.get(request.POST.get(field, ""))
    if value is None:
        return HttpResponseBadRequest(f"`{field}` must be 1 or 0.", content_type="text/plain; charset=utf-8")
    change(conversation=conversation, **{field: value})
    if request.headers.get("X-Requested-With") == "fetch":
        return HttpResponse(status=204)
    return redirect_next(request)


@login_required
@require_GET
def conversation_archived_list(request):
    """The archived conversations, each with Unarchive; opening one works as from the sidebar."""
    return render(request, "chat/archived.html", {"archived": selectors.conversations_archived(request.user)})


# An import reads and writes for as long as its file takes (seconds for a large export), so it runs on threads of
# its own, as uploads do (chat/attachments/views.py): not on the one thread that serves every sync view under ASGI.
IMPORT_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="conversation-import")


@csrf_exempt  # checked in _conversation_import: the middleware would parse the body on the sync thread
@login_required
@require_http_methods(["GET", "POST"])
async def conversation_import_view(request):
    """An export file in, conversations of the signed-in user out (chat/imports/): one conversation opens at
    once; more, or any skipped, are listed. A file that holds nothing to import is refused with the reason,
    and so is a second import while one of the same user runs."""
    return await db_async(_conversation_import, executor=IMPORT_THREADS)(request)


@csrf_protect
def _conversation_import(request):
    posted = request.method == "POST"
    form = ConversationImportForm(request.POST, request.FILES) if posted else ConversationImportForm()
    report = None
    if posted and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            report = imports.conversations_import(owner=request.user, upload=upload)
        except imports.ImportRefused as refusal:
            form.add_error("file", refusal.detail)
        finally:
            upload.close()  # deletes the received file now, not at the end of the request
        if report is not None and len(report.imported) == 1 and not report.skipped and not report.stopped:
            return redirect("conversation_detail", conversation_id=report.imported[0].pk)
    status = 400 if form.errors else 200
    return render(request, "chat/import.html", {"form": form, "report": report}, status=status)


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


# The diagram frame's own policy (the site's would refuse it): mermaid writes its SVG with a <style> element and
# style attributes, so inline styles are allowed here, in a page that holds nothing but the diagram. It runs only
# this site's scripts, fetches nothing (default-src 'none'), and is framed only by this site's pages, which load
# it with sandbox="allow-scripts": an opaque origin, without the user's cookies or any way into the page.
DIAGRAM_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)


@require_GET
@xframe_options_sameorigin
def diagram_frame(request):
    """The sandboxed page that draws one mermaid diagram (static/chat/diagram.js), its source sent by the page
    that frames it. It is the same for everyone and reads nothing of anyone's, so it is served without a
    login: a shared conversation's anonymous reader sees diagrams too."""
    response = render(request, "chat/diagram.html")
    response["Content-Security-Policy"] = DIAGRAM_POLICY
    response["Cache-Control"] = "public, max-age=3600"
    return response
