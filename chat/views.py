from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from chat import frames, selectors, services
from chat.forms import ConversationSettingsForm
from chat.llm.registry import AUTO, models_offered


def _chat_page(request, conversation):
    messages_data = []
    if conversation is not None:
        messages_data = [frames.message_payload(m) for m in selectors.conversation_messages(conversation)]
    return render(
        request,
        "chat/chat.html",
        {
            # The page refuses a file over it before uploading it.
            "attachment_max_file_bytes": settings.ATTACHMENT_MAX_FILE_BYTES,
            "conversation": conversation,
            "conversations": selectors.conversations_for_user(request.user),
            "messages_data": messages_data,
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
