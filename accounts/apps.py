from django.apps import AppConfig
from django.core import checks


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        from accounts import lockout  # noqa: F401  (connects its user_logged_in receiver)
        from accounts.registration import registration_mode_check

        checks.register(registration_mode_check)
