"""The one way to write the audit log."""

from audit.models import AuditEvent


def audit_record(*, actor, action: str, subject: str = "", detail: dict | None = None, request=None) -> AuditEvent:
    """Add one event. `actor` may be None (a stranger's failed sign-in); `request` gives the client address
    (REMOTE_ADDR as the deployment's proxy settings made it)."""
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=getattr(actor, "username", "") or "",
        action=action, subject=subject[:300], detail=detail or {}, address=address or None,
    )
