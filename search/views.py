from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from search import selectors


@login_required
@require_GET
@never_cache
def search_view(request):
    """The sidebar's search: `?q=` (400 with the reason for a query that cannot be run), the user's own hits,
    newest first. Not cached anywhere: the hits are the user's own text."""
    try:
        hits = selectors.search_hits(request.user.pk, request.GET.get("q", ""))
    except selectors.QueryRefused as refusal:
        return JsonResponse({"error": refusal.detail}, status=400)
    return JsonResponse({"results": [_hit_json(hit) for hit in hits]})


def _hit_json(hit: selectors.SearchHit) -> dict:
    url = reverse("conversation_detail", args=[hit.conversation_id])
    return {
        "conversation": hit.conversation_id,
        "title": hit.title or "New chat",
        "archived": hit.archived,
        "message": hit.message_id,
        "role": hit.role or None,
        "snippet": hit.snippet_html(),
        "date": hit.date.isoformat(),
        "url": f"{url}?message={hit.message_id}" if hit.message_id else url,
    }
