"""Writes for digests: subscriptions and alerts (validated against the visibility
policy), the dispatcher, one delivery attempt, resend, test sends and unsubscribe.

Exactly-once: the dispatcher creates a :class:`Delivery` per (subscription, period key)
under a unique constraint, and only the transaction that created the row enqueues the send;
a send starts by atomically claiming the row (pending/retrying -> sending), so a task run
twice, or a dispatcher run twice or concurrently, never sends twice. A delivery whose
worker died while sending is marked failed (it may or may not have gone out) rather than
sent again; an admin can resend it.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.dashboards import formatting
from apps.digests import render, schedule
from apps.digests.content import (
    absolute,
    digest_content,
    digest_scope,
    digest_viewer,
    one_line,
)
from apps.digests.models import (
    AlertKpi,
    Delivery,
    DigestAlert,
    DigestSubscription,
    Frequency,
    Section,
)
from apps.digests.selectors import forecast_attainment, manages_all, sees_scope
from apps.kpis.registry import kpi_get
from apps.kpis.selectors import kpi_value, period_parse
from apps.org.models import Team, User
from apps.org.policy import scope_for
from apps.quotas import fiscal

logger = logging.getLogger(__name__)

SEND_TASK = "digests.delivery_send"


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def max_attempts() -> int:
    return _setting("DIGESTS_MAX_ATTEMPTS", 4)


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt after ``attempts`` failed ones: the backoff base
    doubled each time (60, 120, 240 ... by default), at most an hour."""
    base = _setting("DIGESTS_RETRY_BACKOFF_SECONDS", 60)
    return min(base * 2 ** max(attempts - 1, 0), 3600)


# --- Permissions ---------------------------------------------------------------------------


def can_manage(user: User, subscription: DigestSubscription) -> bool:
    """Change, delete, preview, test and resend: its owner, its recipient, and those who
    manage every subscription (executives, RevOps admins, superusers)."""
    if not user.is_authenticated or not user.is_active:
        return False
    return (
        manages_all(user)
        or subscription.owner_id == user.pk
        or subscription.recipient_id == user.pk
    )


# --- Subscriptions -------------------------------------------------------------------------

_FIELDS = (
    "recipient",
    "recipient_email",
    "recipient_name",
    "team",
    "frequency",
    "weekday",
    "day_of_month",
    "hour",
    "time_zone",
    "sections",
    "send_digest",
    "is_active",
)


def subscription_validate(*, actor: User, subscription: DigestSubscription) -> None:
    """Every rule a subscription must satisfy, checked before anything is written (the
    settings page, the admin and the services all go through it). Normalises sections
    and the schedule fields the frequency does not use."""
    sub = subscription
    errors: dict[str, str] = {}
    if sub.recipient_id is None and not sub.recipient_email:
        errors["recipient"] = "Choose a user or enter an external address."
    if sub.recipient_id is not None and sub.recipient_email:
        errors["recipient_email"] = "Choose a user or an external address, not both."
    recipient = sub.recipient
    if recipient is not None:
        if recipient.pk != actor.pk and not manages_all(actor):
            errors["recipient"] = "You may only subscribe yourself (or an external address)."
        elif not recipient.email:
            errors["recipient"] = f"{recipient} has no e-mail address."
        elif not recipient.is_active:
            errors["recipient"] = f"{recipient} is inactive."
    if sub.recipient_email and not sub.recipient_name:
        errors["recipient_name"] = "Give the external recipient's name."
    if sub.frequency not in Frequency.values:
        errors["frequency"] = "Choose daily, weekly or monthly."
    if sub.frequency == Frequency.WEEKLY and sub.weekday is None:
        errors["weekday"] = "A weekly digest needs a weekday."
    if sub.frequency == Frequency.MONTHLY and not 1 <= (sub.day_of_month or 0) <= 31:
        errors["day_of_month"] = "A monthly digest needs a day of the month, 1 to 31."
    if not 0 <= sub.hour <= 23:
        errors["hour"] = "The hour is 0 to 23."
    try:
        schedule.zone(sub.time_zone)
    except schedule.ScheduleError as exc:
        errors["time_zone"] = str(exc)
    sections = list(sub.sections or [])
    unknown = [s for s in sections if s not in Section.values]
    if unknown:
        errors["sections"] = f"Unknown section(s): {', '.join(map(str, unknown))}."
    elif sub.send_digest and not sections:
        errors["sections"] = "Choose at least one section (or switch the digest off)."
    elif Section.CUSTOMERS in sections and sub.team_id is not None:
        errors["sections"] = (
            "Retention, CLV and NPS are company-wide figures; choose the whole company as "
            "the scope or leave that section out."
        )
    elif Section.MANAGER in sections and sub.recipient_id is None:
        errors["sections"] = (
            "Overdue reviews and forecast calls go to managers, not to external addresses."
        )
    if not errors:
        # The reader is the recipient user, or the owner for an external address: the
        # scope may never be wider than what they see.
        viewer = digest_viewer(sub)
        visible = scope_for(viewer)
        if sub.team_id is None and not visible.everything:
            errors["team"] = f"{viewer} may not see the whole company; choose a team they see."
        elif sub.team_id is not None and not visible.sees_team(sub.team_id):
            errors["team"] = f"{viewer} may not see this team."
    if errors:
        raise ApplicationError(" ".join(errors.values()), extra={"fields": errors})
    sub.sections = [s for s in Section.values if s in sections]
    if sub.frequency != Frequency.WEEKLY:
        sub.weekday = None
    if sub.frequency != Frequency.MONTHLY:
        sub.day_of_month = None


@transaction.atomic
def subscription_create(
    *,
    actor: User,
    recipient: User | None = None,
    recipient_email: str = "",
    recipient_name: str = "",
    team: Team | None = None,
    frequency: str = Frequency.WEEKLY,
    weekday: int | None = 0,
    day_of_month: int | None = None,
    hour: int = 7,
    time_zone: str | None = None,
    sections: list[str] | None = None,
    send_digest: bool = True,
    is_active: bool = True,
) -> DigestSubscription:
    """A new subscription owned by ``actor``. Raises ApplicationError (``extra['fields']``
    maps field names to messages) when any rule fails; nothing is written then."""
    if not actor.is_authenticated or not actor.is_active:
        raise ApplicationError("Log in to manage digests.")
    sub = DigestSubscription(
        owner=actor,
        recipient=recipient,
        recipient_email=(recipient_email or "").strip().lower(),
        recipient_name=(recipient_name or "").strip(),
        team=team,
        frequency=frequency,
        weekday=weekday,
        day_of_month=day_of_month,
        hour=hour,
        time_zone=time_zone or settings.TIME_ZONE,
        sections=list(sections or []),
        send_digest=send_digest,
        is_active=is_active,
    )
    subscription_validate(actor=actor, subscription=sub)
    sub.save()
    return sub


@transaction.atomic
def subscription_update(
    *, actor: User, subscription: DigestSubscription, **changes: Any
) -> DigestSubscription:
    """Change any of the subscription's fields (the schedule included: the dispatcher
    reads it at its next run)."""
    if not can_manage(actor, subscription):
        raise ApplicationError("You may not change this subscription.")
    unknown = sorted(set(changes) - set(_FIELDS))
    if unknown:
        raise ApplicationError(f"Unknown field(s): {', '.join(unknown)}.")
    sub = DigestSubscription.objects.select_for_update().get(pk=subscription.pk)
    for name, value in changes.items():
        if name == "recipient_email":
            value = (value or "").strip().lower()
        setattr(sub, name, value)
    subscription_validate(actor=actor, subscription=sub)
    sub.save()
    return sub


@transaction.atomic
def subscription_delete(*, actor: User, subscription: DigestSubscription) -> None:
    if not can_manage(actor, subscription):
        raise ApplicationError("You may not delete this subscription.")
    subscription.delete()


@transaction.atomic
def subscription_unsubscribe(*, token: str) -> DigestSubscription | None:
    """Switch off the subscription a signed unsubscribe token names (digests and alerts);
    None for a bad token or one whose address no longer matches."""
    found = render.unsubscribe_read(token)
    if found is None:
        return None
    pk, address = found
    sub = (
        DigestSubscription.objects.select_for_update(of=("self",))
        .select_related("recipient")
        .filter(pk=pk)
        .first()
    )
    if sub is None or sub.address.lower() != address.lower():
        return None
    if sub.is_active:
        sub.is_active = False
        sub.save(update_fields=["is_active", "updated_at"])
    return sub


# --- Alerts --------------------------------------------------------------------------------

_ALERT_PAGES = {
    "pipeline_coverage": "dashboards:pipeline",
    "open_pipeline": "dashboards:pipeline",
    "attainment": "dashboards:attainment",
    "win_rate": "dashboards:overview",
    "bookings": "dashboards:overview",
    "nrr": "dashboards:customers",
    "grr": "dashboards:customers",
    "nps": "dashboards:customers",
    "forecast_attainment": "forecasting:index",
}

#: Alert figures that are not KPI registry entries: (unit, family) as the registry says
#: for KPIs. Forecast attainment is a percent of the quota, for any sales scope.
_DERIVED: dict[str, tuple[str, str]] = {AlertKpi.FORECAST_ATTAINMENT: ("percent", "forecast")}


def _alert_unit(kpi: str) -> str:
    return _DERIVED[kpi][0] if kpi in _DERIVED else kpi_get(kpi).unit


def _alert_family(kpi: str) -> str:
    return _DERIVED[kpi][1] if kpi in _DERIVED else kpi_get(kpi).family


@transaction.atomic
def alert_create(
    *,
    actor: User,
    subscription: DigestSubscription,
    kpi: str,
    operator: str,
    threshold: Decimal,
    period_kind: str = DigestAlert.PeriodKind.QUARTER,
) -> DigestAlert:
    """A threshold alert on the subscription's scope. Thresholds of percent KPIs are in
    percent (90 = 90 %), coverage in multiples (3 = 3x)."""
    if not can_manage(actor, subscription):
        raise ApplicationError("You may not change this subscription.")
    if kpi not in AlertKpi.values:
        raise ApplicationError(f"Alerts watch one of {', '.join(AlertKpi.values)}.")
    if operator not in DigestAlert.Operator.values:
        raise ApplicationError("The operator is 'below' or 'above'.")
    if period_kind not in DigestAlert.PeriodKind.values:
        raise ApplicationError("The period is the current fiscal month, quarter or year.")
    if kpi == AlertKpi.FORECAST_ATTAINMENT and period_kind != DigestAlert.PeriodKind.QUARTER:
        # apps.forecasting stores forecasts for the current and next fiscal quarter only.
        raise ApplicationError(
            "Forecasts are stored per fiscal quarter: forecast attainment alerts watch the "
            "current fiscal quarter."
        )
    if _alert_family(kpi) == "customers" and subscription.team_id is not None:
        raise ApplicationError(f"{kpi_get(kpi).label} is company-wide; the scope is a team.")
    return DigestAlert.objects.create(
        subscription=subscription,
        kpi=kpi,
        operator=operator,
        threshold=Decimal(threshold),
        period_kind=period_kind,
    )


@transaction.atomic
def alert_delete(*, actor: User, alert: DigestAlert) -> None:
    if not can_manage(actor, alert.subscription):
        raise ApplicationError("You may not change this subscription.")
    alert.delete()


def _comparable(kpi: str, value: Decimal | int) -> Decimal:
    """A KPI value on the threshold's scale (percent KPIs as percent)."""
    number = Decimal(value)
    return number * 100 if _alert_unit(kpi) == "percent" else number


def _threshold_text(alert: DigestAlert) -> str:
    unit = _alert_unit(alert.kpi)
    value = alert.threshold
    if unit == "percent":
        return formatting.percent(value / 100)
    return formatting.kpi_display(value, unit, settings.BASE_CURRENCY)


def _alert_period(alert: DigestAlert, now: datetime) -> str:
    today = timezone.localdate(now)
    kind = cast(fiscal.PeriodKind, alert.period_kind)  # a choice of the same three kinds
    return fiscal.period_containing(today, kind, settings.FISCAL_YEAR_START_MONTH).name


def _money(value: Decimal | None) -> str:
    return formatting.money(value, settings.BASE_CURRENCY)


def _forecast_details(found: Any) -> list[str]:
    """The lines under a forecast-attainment alert: which forecast, its range, the quota."""
    basis = found.basis
    if basis.p10 is not None and basis.p90 is not None:
        spread = f"range P10\u2013P90 {_money(basis.p10)} \u2013 {_money(basis.p90)}"
    else:
        spread = "no P10\u2013P90 range for this method"
    lines = [
        f"Forecast: {_money(basis.value)} ({basis.text}; {spread})",
        f"Quota: {_money(found.quota)}",
    ]
    if found.computed_at is not None:
        when = timezone.localtime(found.computed_at)
        lines.append(f"Forecast computed {when:%d %b %Y %H:%M}.")
    return lines


def _alert_evaluate(
    alert: DigestAlert, now: datetime
) -> tuple[Decimal | int | None, str, Any, list[str]]:
    """(value, period name, scope, detail lines for the mail) of an alert, read as the
    subscription's reader; ApplicationError when the reader may not see the scope."""
    sub = alert.subscription
    viewer = digest_viewer(sub)
    scope = digest_scope(sub, viewer)
    period = _alert_period(alert, now)
    if alert.kpi == AlertKpi.FORECAST_ATTAINMENT:
        found = forecast_attainment(viewer=viewer, scope=scope, period=period_parse(period))
        if found is None:
            return None, period, scope, []
        return found.value, period, scope, _forecast_details(found)
    result = kpi_value(name=alert.kpi, period=period, user=viewer, scope=scope)
    return result.value, period, scope, []


@dataclass
class DispatchResult:
    digests: list[int] = field(default_factory=list)  # deliveries created
    alerts: list[int] = field(default_factory=list)
    rearmed: int = 0
    requeued: int = 0
    interrupted: int = 0
    purged: int = 0
    errors: list[str] = field(default_factory=list)


def _enqueue(delivery_id: int) -> None:
    from apps.digests.tasks import delivery_send_task

    # robust: the delivery row is committed; if the broker is away the dispatcher's
    # recovery queues it again.
    transaction.on_commit(lambda: delivery_send_task.delay(delivery_id), robust=True)


def _alerts_check(now: datetime, result: DispatchResult) -> None:
    alerts = DigestAlert.objects.filter(
        is_active=True, subscription__is_active=True
    ).select_related("subscription__recipient", "subscription__owner", "subscription__team")
    for alert in alerts:
        try:
            value, period, scope, details = _alert_evaluate(alert, now)
        except ApplicationError as exc:
            result.errors.append(f"alert {alert.pk}: {exc.message}")
            continue
        holds: bool | None = None
        if value is not None:
            number = _comparable(alert.kpi, value)
            holds = (
                number < alert.threshold
                if alert.operator == DigestAlert.Operator.BELOW
                else number > alert.threshold
            )
        with transaction.atomic():
            locked = DigestAlert.objects.select_for_update().get(pk=alert.pk)
            locked.last_checked_at = now
            locked.last_value = None if value is None else Decimal(value)
            if holds is True and locked.state == DigestAlert.State.ARMED:
                locked.state = DigestAlert.State.TRIGGERED
                locked.crossings += 1
                locked.save()
                sub = alert.subscription
                unit = _alert_unit(alert.kpi)
                payload = render.alert_payload(
                    subscription=sub,
                    alert=locked,
                    value_text=formatting.kpi_display(value, unit, settings.BASE_CURRENCY),
                    threshold_text=_threshold_text(locked),
                    period_name=period,
                    # the subject names the scope: one line, so no name adds a header
                    scope_label=one_line(scope.label),
                    details=details,
                    url=absolute(
                        reverse(_ALERT_PAGES[alert.kpi]), {"period": period, "team": scope.team_id}
                    ),
                )
                delivery, created = Delivery.objects.get_or_create(
                    subscription=sub,
                    period_key=f"alert:{locked.pk}:{locked.crossings}",
                    defaults={
                        "alert": locked,
                        "kind": Delivery.Kind.ALERT,
                        "scheduled_for": now,
                        "to_email": sub.address,
                        "payload": payload,
                    },
                )
                if created:
                    result.alerts.append(delivery.pk)
                    _enqueue(delivery.pk)
                continue
            if holds is False and locked.state == DigestAlert.State.TRIGGERED:
                locked.state = DigestAlert.State.ARMED
                result.rearmed += 1
            locked.save()


def _recover(now: datetime, result: DispatchResult) -> None:
    """Deliveries a dead worker left behind: one stuck in 'sending' is marked failed (it
    may have gone out, so it is never sent again on its own); one left pending or retrying
    long past its next attempt is queued again (the claim keeps that safe)."""
    stale = now - timedelta(seconds=_setting("DIGESTS_SENDING_TIMEOUT_SECONDS", 900))
    result.interrupted = Delivery.objects.filter(
        status=Delivery.Status.SENDING, last_attempt_at__lt=stale
    ).update(
        status=Delivery.Status.FAILED,
        error="Interrupted while sending (the worker stopped); it may or may not have "
        "gone out. Resend it if needed.",
    )
    forgotten = Delivery.objects.filter(
        Q(status=Delivery.Status.PENDING, created_at__lt=stale, last_attempt_at__isnull=True)
        | Q(
            status__in=[Delivery.Status.PENDING, Delivery.Status.RETRYING],
            last_attempt_at__lt=stale - timedelta(seconds=3600),
        )
    ).values_list("pk", flat=True)
    for pk in forgotten:
        result.requeued += 1
        _enqueue(pk)
    # A sent mail's rendering (charts included) is kept for a while for resends, then
    # dropped so the log stays small; the row itself stays.
    keep = timedelta(days=_setting("DIGESTS_KEEP_MAIL_DAYS", 30))
    result.purged = Delivery.objects.filter(
        status=Delivery.Status.SENT, sent_at__lt=now - keep, payload__isnull=False
    ).update(payload=None)


def digests_dispatch(*, now: datetime | None = None) -> DispatchResult:
    """Find due digests and crossed thresholds and queue their mails (one delivery row per
    subscription and period, created at most once whatever runs concurrently)."""
    now = now or timezone.now()
    result = DispatchResult()
    catch_up = timedelta(hours=_setting("DIGESTS_CATCH_UP_HOURS", 12))
    subs = DigestSubscription.objects.filter(is_active=True, send_digest=True).select_related(
        "recipient"
    )
    for sub in subs:
        try:
            found = schedule.due(
                frequency=sub.frequency,
                hour=sub.hour,
                time_zone=sub.time_zone,
                now=now,
                created_at=sub.created_at,
                catch_up=catch_up,
                weekday=sub.weekday,
                day_of_month=sub.day_of_month,
            )
        except schedule.ScheduleError as exc:
            result.errors.append(f"subscription {sub.pk}: {exc}")
            continue
        if found is None or not sub.address:
            continue
        key, occurrence = found
        with transaction.atomic():
            delivery, created = Delivery.objects.get_or_create(
                subscription=sub,
                period_key=key,
                defaults={
                    "kind": Delivery.Kind.DIGEST,
                    "scheduled_for": occurrence,
                    "to_email": sub.address,
                },
            )
            if created:
                result.digests.append(delivery.pk)
                _enqueue(delivery.pk)
    _alerts_check(now, result)
    _recover(now, result)
    return result


# --- Sending -------------------------------------------------------------------------------


def _as_of(delivery: Delivery) -> Any:
    sub = delivery.subscription
    if delivery.kind == Delivery.Kind.DIGEST:
        return delivery.scheduled_for.astimezone(schedule.zone(sub.time_zone)).date()
    return timezone.localdate()


def _render(delivery: Delivery) -> dict[str, Any]:
    content = digest_content(
        subscription=delivery.subscription,
        as_of=_as_of(delivery),
        occurrence=delivery.scheduled_for,
    )
    payload = render.digest_payload(content)
    if delivery.kind == Delivery.Kind.TEST:
        payload["subject"] = f"[Test] {payload['subject']}"
    return payload


_TRANSIENT = (smtplib.SMTPException, OSError, TimeoutError)


def delivery_attempt(*, delivery_id: int) -> tuple[str, int]:
    """Try to send one delivery: ('sent' | 'retry' | 'failed' | 'skipped', attempts).

    Claims the row first (pending or retrying -> sending, attempts + 1), so a duplicate
    task finds nothing to do. The mail is rendered once and kept; SMTP and other transient
    errors leave it 'retrying' until DIGESTS_MAX_ATTEMPTS, then 'failed'. A digest its
    reader may no longer see (ApplicationError) fails at once and is never sent."""
    now = timezone.now()
    claimed = Delivery.objects.filter(
        pk=delivery_id, status__in=[Delivery.Status.PENDING, Delivery.Status.RETRYING]
    ).update(status=Delivery.Status.SENDING, attempts=F("attempts") + 1, last_attempt_at=now)
    if not claimed:
        return "skipped", 0
    delivery = Delivery.objects.select_related(
        "subscription__recipient", "subscription__owner", "subscription__team"
    ).get(pk=delivery_id)
    sub = delivery.subscription

    def finish(status: str, error: str = "", **extra: Any) -> None:
        Delivery.objects.filter(pk=delivery_id).update(status=status, error=error, **extra)

    try:
        if not sub.is_active and delivery.kind != Delivery.Kind.TEST:
            raise ApplicationError("The subscription was switched off before sending.")
        payload = delivery.payload
        if payload is None:
            payload = _render(delivery)
            Delivery.objects.filter(pk=delivery_id).update(payload=payload)
        render.message_build(payload, to=delivery.to_email).send()
    except ApplicationError as exc:
        finish(Delivery.Status.FAILED, exc.message)
        return "failed", delivery.attempts
    except Exception as exc:
        kind = "SMTP error" if isinstance(exc, _TRANSIENT) else "Error"
        error = f"Attempt {delivery.attempts}: {kind}: {exc.__class__.__name__}: {exc}"
        if delivery.attempts >= max_attempts():
            finish(Delivery.Status.FAILED, error)
            logger.warning("Digest delivery %s failed for good: %s", delivery_id, error)
            return "failed", delivery.attempts
        finish(Delivery.Status.RETRYING, error)
        return "retry", delivery.attempts
    finish(Delivery.Status.SENT, sent_at=timezone.now())
    return "sent", delivery.attempts


@transaction.atomic
def delivery_resend(*, actor: User, delivery: Delivery) -> Delivery:
    """Send a failed delivery again (the same message; attempts start over)."""
    if not can_manage(actor, delivery.subscription):
        raise ApplicationError("You may not resend this mail.")
    updated = Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.FAILED).update(
        status=Delivery.Status.PENDING, attempts=0, error="", requested_by=actor
    )
    if not updated:
        raise ApplicationError("Only a failed delivery can be resent.")
    _enqueue(delivery.pk)
    delivery.refresh_from_db()
    return delivery


@transaction.atomic
def digest_test_send(*, actor: User, subscription: DigestSubscription) -> Delivery:
    """Send the subscription's digest as of now to ``actor`` (subject marked [Test])."""
    if not can_manage(actor, subscription):
        raise ApplicationError("You may not use this subscription.")
    if not actor.email:
        raise ApplicationError("Your account has no e-mail address to send the test to.")
    if not sees_scope(actor, subscription):
        raise ApplicationError("You may not see this digest's scope.")
    now = timezone.now()
    delivery = Delivery.objects.create(
        subscription=subscription,
        kind=Delivery.Kind.TEST,
        period_key=f"test:{now:%Y%m%dT%H%M%S}:{uuid.uuid4().hex[:8]}",
        scheduled_for=now,
        to_email=actor.email,
        requested_by=actor,
    )
    _enqueue(delivery.pk)
    return delivery
