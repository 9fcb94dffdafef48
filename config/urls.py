from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # Before the admin, which would otherwise claim admin/usage/.
    path("", include("billing.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("", include("chat.urls")),
]
