"""Writes about accounts."""

from accounts.models import User


def user_settings_update(*, user: User, default_model: str, system_prompt: str, time_zone: str) -> None:
    """New conversations take the defaults when they are created; existing ones keep their own."""
    user.default_model = default_model
    user.system_prompt = system_prompt.strip()
    user.time_zone = time_zone
    user.save(update_fields=["default_model", "system_prompt", "time_zone"])
