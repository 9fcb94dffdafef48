"""The owner's share page, the shared transcript and its files, continuing it, and the shares received.

Everything under /s/<token>/ reaches its share through `shared` (shares.selectors.share_for_viewer): read-only
pages with no socket, no composer and none of the owner's other conversations. The owner's page reaches the
conversation through chat.selectors.conversation_for_user, so anyone else gets a 404 there.
"""

import functools

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import frames
from chat import selectors as chat_selectors
from chat.attachments.views import file_response, thumbnail_response, uncached
from chat.llm.registry import models_offered
from chat.llm.tools import context_results_withheld
from shares import selectors, services
from shares.forms import ShareForm
from shares.models import Share


def shared(view):
    """Hands `view` the share at `token` if this viewer may read it (404 otherwise); an anonymous viewer of a
    share that needs an account goes to the login page, and comes back to the shared page."""

    @functools.wraps(view)
    def opened(request, token, **kwargs):
        try:
            share = selectors.share_for_viewer(request.user, token)
        except selectors.SignInRequired:
            return redirect_to_login(reverse("share_detail", args=[token]))
        return view(request, share, **kwargs)

    return opened


@login_required
@require_http_methods(["GET", "POST"])
def conversation_shares(request, conversation_id):
    conversation = chat_selectors.conversation_for_user(request.user, conversation_id)
    public_allowed = selectors.public_links_allowed()
    form = ShareForm(request.POST if request.method == "POST" else None, public_allowed=public_allowed)
    if request.method == "POST" and form.is_valid():
        try:
            share = services.share_create(
                conversation=conversation, by=request.user, request=request, **form.cleaned_data,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Shared. The link: {_link(request, share)}")
            return redirect("conversation_shares", conversation_id=conversation.pk)
    shares = [
        {"share": share, "link": _link(request, share)}
        for share in selectors.shares_of_conversation(conversation)
    ]
    return render(request, "shares/conversation_shares.html", {
        "conversation": conversation, "form": form, "shares": shares, "public_allowed": public_allowed,
    }, status=400 if form.errors else 200)


@login_required
@require_POST
def share_revoke(request, conversation_id, share_id):
    conversation = chat_selectors.conversation_for_user(request.user, conversation_id)
    share = get_object_or_404(conversation.shares, pk=share_id)
    if services.share_revoke(share=share, by=request.user, request=request):
        messages.success(request, "The link is revoked: it no longer opens.")
    return redirect("conversation_shares", conversation_id=conversation.pk)


@require_GET
@never_cache  # a revoked link must not keep opening from a cache
@shared
def share_detail(request, share):
    """The transcript, rendered in the browser (static/chat/shared.js) from the payloads embedded here."""
    shown = selectors.share_messages(share)
    return render(request, "shares/share_detail.html", {
        "share": share,
        "conversation": share.conversation,
        "share_data": {
            "messages": [_payload(share, message) for message in shown],
            "model_names": {spec.id: spec.display_name for spec in models_offered()},
        },
    })


@require_GET
@shared
def share_attachment(request, share, attachment_id):
    attachment = selectors.shared_attachment(selectors.share_messages(share), attachment_id)
    return uncached(file_response(attachment.file, attachment.media_type, attachment.name))


@require_GET
@shared
def share_attachment_thumbnail(request, share, attachment_id):
    return uncached(thumbnail_response(selectors.shared_attachment(selectors.share_messages(share), attachment_id)))


@require_POST
@shared
def share_continue(request, share):
    """The shared path as a new conversation of the viewer's own (signed in: an anonymous viewer of a public
    link signs in first)."""
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("share_detail", args=[share.token]))
    conversation = services.share_continue(
        share=share, messages=selectors.share_messages(share), viewer=request.user,
    )
    return redirect("conversation_detail", conversation_id=conversation.pk)


@login_required
@require_GET
def shares_received(request):
    return render(request, "shares/shares_received.html", {"shares": selectors.shares_received(request.user)})


def _link(request, share: Share) -> str:
    return request.build_absolute_uri(reverse("share_detail", args=[share.token]))


def _payload(share: Share, message) -> dict:
    """A message as the chat page's payload shows it, less what the owner paid for it (usage and cost are
    theirs) and what tools read of their own data (`context_results_withheld`), with its files served through
    the share."""
    payload = frames.message_payload(message)
    del payload["usage"], payload["cost"]
    payload["content"] = context_results_withheld(payload["content"])
    for attachment in payload.get("attachments", []):
        attachment["url"] = reverse("share_attachment", args=[share.token, attachment["id"]])
        if attachment["thumbnail_url"]:
            attachment["thumbnail_url"] = reverse("share_attachment_thumbnail", args=[share.token, attachment["id"]])
    return payload
