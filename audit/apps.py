from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"

    def ready(self):
        from audit import receivers  # noqa: F401  (connects the sign-in and admin receivers)
