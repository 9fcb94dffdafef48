from django.urls import path

from memory import views

urlpatterns = [
    path("accounts/settings/memory/", views.memory_list, name="memory_list"),
    path("accounts/settings/memory/switch/", views.memory_switch, name="memory_switch"),
    path("accounts/settings/memory/<int:file_id>/", views.memory_file_edit, name="memory_file_edit"),
    path("accounts/settings/memory/<int:file_id>/delete/", views.memory_file_delete, name="memory_file_delete"),
]
