from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self):
        from chat.replies import supervision  # noqa: F401 (deleting a streaming reply stops it)
