from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest, JsonResponse
from django.views.decorators.http import require_POST

from chat import selectors as chat_selectors
from chat.refusals import Refusal
from lifecycle import selectors, services


@login_required
@require_POST
def conversation_model_switch_view(request, conversation_id):
    """The page's one click after a `model_retired` refusal: the conversation moves to its model's successor.
    The draft stays in the composer, to be sent again."""
    conversation = chat_selectors.conversation_for_user(request.user, conversation_id)
    try:
        successor = services.conversation_model_switch(conversation=conversation)
    except Refusal as refusal:
        return HttpResponseBadRequest(refusal.detail, content_type="text/plain; charset=utf-8")
    return JsonResponse({"model": successor, "display_name": selectors.model_name(successor)})
