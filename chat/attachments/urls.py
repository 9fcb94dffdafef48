from django.urls import path

from chat.attachments import views

urlpatterns = [
    path("", views.attachment_upload_view, name="attachment_upload"),
    path("<int:attachment_id>/", views.attachment_file, name="attachment_file"),
    path("<int:attachment_id>/thumbnail/", views.attachment_thumbnail, name="attachment_thumbnail"),
    path("<int:attachment_id>/view/", views.attachment_pdf_view, name="attachment_pdf_view"),
    path("<int:attachment_id>/passage/", views.attachment_passage, name="attachment_passage"),
]
