"""A row saved or deleted in this process is seen at once by this process's copy of the table."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from lifecycle.models import ModelLifecycle
from lifecycle.selectors import lifecycles_forget


@receiver(post_save, sender=ModelLifecycle)
@receiver(post_delete, sender=ModelLifecycle)
def lifecycle_changed(sender, **kwargs):
    lifecycles_forget()
