"""Writing the audit log. Every security-relevant action calls :func:`audit_record` once,
inside the transaction of the change it records, so a rolled-back change leaves no event
and a committed one always has its event."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest
from django.utils import timezone

from apps.audit.models import AuditEvent

Action = AuditEvent.Action


def _client_ip(request: HttpRequest | None) -> str | None:
    # The address Django sees; behind a proxy, configure the proxy to pass the client's
    # address as REMOTE_ADDR (e.g. gunicorn --forwarded-allow-ips), as for django-axes.
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_event(
    *,
    action: str,
    summary: str,
    actor: Any = None,
    actor_username: str = "",
    request: HttpRequest | None = None,
    target: models.Model | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """One event, not yet saved (for :func:`audit_record_many`). ``actor`` defaults to the
    request's signed-in user."""
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = user
    username = actor_username or (actor.get_username() if actor is not None else "")
    return AuditEvent(
        at=timezone.now(),
        action=action,
        actor=actor,
        actor_username=username[:150],
        target_type=target._meta.label if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        summary=summary[:500],
        ip_address=_client_ip(request),
        path=(request.get_full_path()[:300] if request is not None else ""),
        detail=detail or {},
    )


def audit_record(
    *,
    action: str,
    summary: str,
    actor: Any = None,
    actor_username: str = "",
    request: HttpRequest | None = None,
    target: models.Model | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event. ``actor`` defaults to the request's signed-in user."""
    event = audit_event(
        action=action,
        summary=summary,
        actor=actor,
        actor_username=actor_username,
        request=request,
        target=target,
        detail=detail,
    )
    event.save(force_insert=True)
    return event


def audit_record_many(*, events: list[AuditEvent]) -> list[AuditEvent]:
    """Add many events built by :func:`audit_event` in one INSERT (a bulk write records one
    event per record it changed, at the cost of one query)."""
    return AuditEvent.objects.bulk_create(events) if events else []
