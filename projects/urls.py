from django.urls import path

from projects import views

urlpatterns = [
    path("projects/", views.project_list, name="project_list"),
    path("projects/new/", views.project_create_view, name="project_create"),
    path("projects/<int:project_id>/", views.project_detail, name="project_detail"),
    path("projects/<int:project_id>/edit/", views.project_update_view, name="project_update"),
    path("projects/<int:project_id>/delete/", views.project_delete_view, name="project_delete"),
    path("projects/<int:project_id>/files/", views.project_files_add_view, name="project_files_add"),
    path("projects/<int:project_id>/files/<int:attachment_id>/", views.project_file, name="project_file"),
    path(
        "projects/<int:project_id>/files/<int:attachment_id>/remove/", views.project_file_remove_view,
        name="project_file_remove",
    ),
    path("projects/<int:project_id>/members/", views.project_member_add, name="project_member_add"),
    path(
        "projects/<int:project_id>/members/<int:member_id>/remove/", views.project_member_remove,
        name="project_member_remove",
    ),
    path(
        "projects/<int:project_id>/conversations/new/", views.project_conversation_create,
        name="project_conversation_create",
    ),
    path("conversations/<int:conversation_id>/project/", views.conversation_project, name="conversation_project"),
]
