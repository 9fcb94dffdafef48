from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The site's user, custom from the first migration so per-user settings can live here."""

    default_model = models.CharField(max_length=100, blank=True, help_text="Model for new conversations.")
    system_prompt = models.TextField(blank=True, help_text="Default system prompt for new conversations.")

    def __str__(self):
        return self.username
