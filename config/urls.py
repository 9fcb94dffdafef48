from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # Before the admin, which would otherwise claim admin/usage/.
    path("", include("billing.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("groups/", include("teams.urls")),
    path("", include("projects.urls")),  # projects/..., and conversations/<id>/project/
    path("", include("shares.urls")),
    path("", include("search.urls")),
    path("", include("chat.urls")),
]

if settings.OIDC_ISSUER:
    # Single sign-on: oidc/authenticate/ (the login page's button) and oidc/callback/ (the redirect URI).
    urlpatterns.insert(0, path("oidc/", include("mozilla_django_oidc.urls")))
