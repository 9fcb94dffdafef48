from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SearchConfig(AppConfig):
    name = "search"

    def ready(self):
        from search import indexes

        post_migrate.connect(indexes.sqlite_triggers_restored, sender=self)
