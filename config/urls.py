from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # Before the admin, which would otherwise claim admin/usage/.
    path("", include("billing.urls")),
    path("admin/", admin.site.urls),
    path("", include("apikeys.urls")),  # api/anthropic/..., and accounts/settings/api-keys/...
    path("", include("memory.urls")),  # accounts/settings/memory/...: the memory tool's files
    path("accounts/", include("accounts.urls")),
    path("groups/", include("teams.urls")),
    path("", include("projects.urls")),  # projects/..., and conversations/<id>/project/
    path("", include("shares.urls")),
    path("", include("search.urls")),
    path("", include("batches.urls")),  # batches/...: half-price bulk questions, cancelling queued replies
    path("", include("lifecycle.urls")),  # conversations/<id>/model/successor/
    path("", include("chat.urls")),
]

if settings.OIDC_ISSUER:
    # Single sign-on: oidc/authenticate/ (the login page's button) and oidc/callback/ (the redirect URI).
    urlpatterns.insert(0, path("oidc/", include("mozilla_django_oidc.urls")))
