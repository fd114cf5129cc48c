from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q, QuerySet

from apps.audit.models import AuditEvent


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))


def audit_events(
    *,
    q: str = "",
    action: str = "",
    actor: str = "",
    start: date | None = None,
    end: date | None = None,
) -> QuerySet[AuditEvent]:
    """Events matching every given filter, newest first. ``start``/``end`` are inclusive
    days in TIME_ZONE; ``q`` matches the summary, path, user or target id."""
    events = AuditEvent.objects.all()
    if q:
        events = events.filter(
            Q(summary__icontains=q)
            | Q(path__icontains=q)
            | Q(actor_username__icontains=q)
            | Q(target_id=q)
        )
    if action:
        events = events.filter(action=action)
    if actor:
        events = events.filter(actor_username__iexact=actor)
    if start:
        events = events.filter(at__gte=_day_start(start))
    if end:
        events = events.filter(at__lt=_day_start(end + timedelta(days=1)))
    return events.order_by("-at", "-id")
