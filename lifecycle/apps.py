from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "lifecycle"
    verbose_name = "Model lifecycle"

    def ready(self):
        from lifecycle import receivers  # noqa: F401 (connects the signal handlers)
