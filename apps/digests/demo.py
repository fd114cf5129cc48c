"""Demo digests: default subscriptions for the demo company's executives and managers.

Called by ``seed_demo`` after the organisation exists. Idempotent: a user who already has
a subscription of their own is left alone, so running the seed again adds nothing.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction

from apps.digests import services
from apps.digests.models import AlertKpi, DigestAlert, DigestSubscription
from apps.digests.selectors import subscription_defaults
from apps.org.models import Role, User

#: Alerts the CSO gets by default: pipeline coverage below 3x and attainment below 90 %,
#: both for the current fiscal quarter.
CSO_ALERTS = (
    (AlertKpi.PIPELINE_COVERAGE, DigestAlert.Operator.BELOW, Decimal("3")),
    (AlertKpi.ATTAINMENT, DigestAlert.Operator.BELOW, Decimal("90")),
)


@transaction.atomic
def digests_demo_seed(*, as_of: date) -> dict[str, int]:
    """Give every active executive and manager with an e-mail address their role's default
    digest (weekly, Monday 07:00 in TIME_ZONE) and the CSO the default alerts.

    ``as_of`` is the demo's "today": subscriptions count as created at its start, so the
    first digest goes out at the first occurrence after it. Returns counts."""
    created_at = datetime.combine(as_of, time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))
    people = User.objects.filter(is_active=True, role__in=[Role.EXECUTIVE, Role.MANAGER]).exclude(
        email=""
    )
    subscriptions = alerts = skipped = 0
    for user in people.order_by("id"):
        if DigestSubscription.objects.filter(recipient=user).exists():
            skipped += 1
            continue
        defaults = subscription_defaults(user=user)
        if defaults is None:
            skipped += 1
            continue
        sub = services.subscription_create(actor=user, recipient=user, **defaults)
        DigestSubscription.objects.filter(pk=sub.pk).update(created_at=created_at)
        subscriptions += 1
        if user.title == "CSO":
            for kpi, operator, threshold in CSO_ALERTS:
                services.alert_create(
                    actor=user, subscription=sub, kpi=kpi, operator=operator, threshold=threshold
                )
                alerts += 1
    return {"digest_subscriptions": subscriptions, "digest_alerts": alerts, "skipped": skipped}
