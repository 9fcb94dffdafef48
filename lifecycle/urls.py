from django.urls import path

from lifecycle import views

urlpatterns = [
    path(
        "conversations/<int:conversation_id>/model/successor/", views.conversation_model_switch_view,
        name="conversation_model_switch",
    ),
]
