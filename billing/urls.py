from django.contrib import admin
from django.urls import path

from billing import views

urlpatterns = [
    path("usage/", views.usage, name="usage"),
    # Before the admin's own URLs in config/urls.py; admin_view adds the admin's staff login.
    path("admin/usage/", admin.site.admin_view(views.admin_usage), name="admin_usage"),
    path("admin/usage/groups.csv", admin.site.admin_view(views.admin_usage_by_team_csv),
         name="admin_usage_by_team_csv"),
    path("admin/usage/cache/", admin.site.admin_view(views.admin_cache), name="admin_cache"),
    path("admin/usage/cache.csv", admin.site.admin_view(views.admin_cache_csv), name="admin_cache_csv"),
]
