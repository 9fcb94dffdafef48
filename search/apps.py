from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate, pre_migrate


class SearchConfig(AppConfig):
    name = "search"

    def ready(self):
        from search import indexes

        # Sent for chat, whose tables the triggers are on: Django sends post_migrate only for apps with a models
        # module, which search has not (sender=self never fired).
        chat = apps.get_app_config("chat")
        pre_migrate.connect(indexes.sqlite_first_shape_dropped, sender=chat)
        post_migrate.connect(indexes.sqlite_triggers_restored, sender=chat)
