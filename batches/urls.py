from django.urls import path

from batches import views

urlpatterns = [
    path("batches/", views.bulk_new, name="bulk_new"),
    path("batches/<int:batch_id>/", views.batch_detail, name="batch_detail"),
    path("batches/<int:batch_id>/csv/", views.batch_csv, name="batch_csv"),
    path("batches/<int:batch_id>/cancel/", views.batch_cancel_view, name="batch_cancel"),
    path("batches/replies/<int:message_id>/cancel/", views.reply_cancel_view, name="reply_cancel"),
]
