from django.urls import include, path

from chat import server_files, views

urlpatterns = [
    path("", views.home, name="home"),
    path("conversations/new/", views.conversation_create_view, name="conversation_create"),
    path("conversations/archived/", views.conversation_archived_list, name="conversation_archived_list"),
    path("conversations/import/", views.conversation_import_view, name="conversation_import"),
    path("conversations/<int:conversation_id>/", views.conversation_detail, name="conversation_detail"),
    path("conversations/<int:conversation_id>/rename/", views.conversation_rename_view, name="conversation_rename"),
    path("conversations/<int:conversation_id>/delete/", views.conversation_delete_view, name="conversation_delete"),
    path("conversations/<int:conversation_id>/pin/", views.conversation_pin_view, name="conversation_pin"),
    path("conversations/<int:conversation_id>/archive/", views.conversation_archive_view, name="conversation_archive"),
    path("conversations/<int:conversation_id>/fork/", views.conversation_fork_view, name="conversation_fork"),
    path(
        "conversations/<int:conversation_id>/settings/", views.conversation_settings_view,
        name="conversation_settings",
    ),
    path(
        "conversations/<int:conversation_id>/export.md", views.conversation_export_view, {"export_format": "md"},
        name="conversation_export_markdown",
    ),
    path(
        "conversations/<int:conversation_id>/export.json", views.conversation_export_view,
        {"export_format": "json"}, name="conversation_export_json",
    ),
    path("diagram/", views.diagram_frame, name="diagram_frame"),
    path("attachments/", include("chat.attachments.urls")),
    # A file code execution produced in a reply (chat/server_files.py).
    path(
        "messages/<int:message_id>/files/<str:file_id>/", server_files.produced_file_download,
        name="produced_file",
    ),
]
