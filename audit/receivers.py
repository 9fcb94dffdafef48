"""Events recorded from Django's own signals: sign-ins, failed sign-ins, sign-outs, and every change made in
the admin (its LogEntry rows: users, groups, budgets, prices, tool settings, anything registered there)."""

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save
from django.dispatch import receiver

from audit.services import audit_record

ADMIN_ACTIONS = {ADDITION: "admin.added", CHANGE: "admin.changed", DELETION: "admin.deleted"}


@receiver(user_logged_in, dispatch_uid="audit_signed_in")
def signed_in(sender, request, user, **kwargs):
    audit_record(
        actor=user, action="account.signed_in", subject=user.username,
        detail={"backend": getattr(user, "backend", "")}, request=request,
    )


@receiver(user_login_failed, dispatch_uid="audit_sign_in_failed")
def sign_in_failed(sender, credentials, request=None, **kwargs):
    """`credentials` come cleansed (the password masked); the username is whatever was typed, so it is the
    subject, not the actor. A sign-in refused because django-axes locked the account out says so."""
    username = str(credentials.get("username", ""))
    audit_record(
        actor=None, action="account.sign_in_failed", subject=username,
        detail={"locked_out": bool(getattr(request, "axes_locked_out", False))}, request=request,
    )


@receiver(user_logged_out, dispatch_uid="audit_signed_out")
def signed_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(actor=user, action="account.signed_out", subject=user.username, request=request)


@receiver(post_save, sender=LogEntry, dispatch_uid="audit_admin_change")
def admin_changed(sender, instance: LogEntry, created: bool, **kwargs):
    """One admin addition, change or deletion, with the admin's own description of it ("Changed Monthly
    budget."). The admin writes several deletions at once with bulk_create, which sends no signal: those
    are recorded by audit/admin.py's delete_selected."""
    if not created:
        return
    content_type = instance.content_type
    audit_record(
        actor=instance.user, action=ADMIN_ACTIONS[instance.action_flag],
        subject=f"{content_type.name} {instance.object_repr}",
        detail={
            "model": f"{content_type.app_label}.{content_type.model}",
            "object_id": str(instance.object_id),
            "change": instance.get_change_message(),
        },
    )
