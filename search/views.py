import math
import time

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from search import selectors

WINDOW_SECONDS = 60
# A window's counter outlives its minute, so it cannot expire while its minute is still counting.
WINDOW_TTL = 2 * WINDOW_SECONDS
# Seconds since the epoch; tests pin it so a window boundary never falls in the middle of a test.
clock = time.time


@login_required
@require_GET
@never_cache
def search_view(request):
    """The sidebar's search: `?q=` (400 with the reason for a query that cannot be run; 429 with the reason
    past SEARCH_RATE_LIMIT_PER_MINUTE searches in this minute), the user's own hits, newest first. Not cached
    anywhere: the hits are the user's own text."""
    text = request.GET.get("q", "")
    try:
        selectors.search_terms(text)  # a refused query costs no database work, and is not counted
        retry_after = _rate_limit_retry_after(request.user.pk)
        if retry_after:
            response = JsonResponse(
                {"error": f"Too many searches in a minute. Try again in {retry_after} seconds."}, status=429
            )
            response["Retry-After"] = str(retry_after)
            return response
        hits = selectors.search_hits(request.user.pk, text)
    except selectors.QueryRefused as refusal:
        return JsonResponse({"error": refusal.detail}, status=400)
    return JsonResponse({"results": [_hit_json(hit) for hit in hits]})


def _rate_limit_retry_after(user_id: int) -> int:
    """Count one search into the user's window of this minute (in the cache, so across server processes);
    past the limit, the seconds until the next window, else 0. A fixed window: the sidebar searches 200 ms
    after the last key, so a limit well above a person's typing only stops scripts."""
    limit = settings.SEARCH_RATE_LIMIT_PER_MINUTE
    if not limit:
        return 0
    now = clock()
    key = f"ratelimit:search:{user_id}:{int(now // WINDOW_SECONDS)}"
    # `add` creates the counter only if it is missing; `incr` is atomic but raises for a missing key (evicted
    # between the two calls: then this search is the first counted again).
    if cache.add(key, 1, timeout=WINDOW_TTL):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:
            count = 1 if cache.add(key, 1, timeout=WINDOW_TTL) else cache.incr(key)
    if count <= limit:
        return 0
    return max(1, math.ceil(WINDOW_SECONDS - now % WINDOW_SECONDS))


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
