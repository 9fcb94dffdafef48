from django.urls import path

from shares import views

urlpatterns = [
    path("conversations/<int:conversation_id>/shares/", views.conversation_shares, name="conversation_shares"),
    path(
        "conversations/<int:conversation_id>/shares/<int:share_id>/revoke/", views.share_revoke,
        name="share_revoke",
    ),
    path("shares/", views.shares_received, name="shares_received"),
    path("s/<str:token>/", views.share_detail, name="share_detail"),
    path("s/<str:token>/continue/", views.share_continue, name="share_continue"),
    path("s/<str:token>/attachments/<int:attachment_id>/", views.share_attachment, name="share_attachment"),
    path(
        "s/<str:token>/attachments/<int:attachment_id>/thumbnail/", views.share_attachment_thumbnail,
        name="share_attachment_thumbnail",
    ),
]
