from django.conf import settings


def model_backend(request):
    """Every page says whether replies come from the offline model, so nobody mistakes it for Claude."""
    return {"offline_model": not settings.ANTHROPIC_API_KEY}
