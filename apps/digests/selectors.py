"""Reads for digests: which subscriptions and deliveries a user may see and manage, the
defaults for a new subscription, and the preview of a digest (rendered, not sent).

Visibility follows apps.org.policy: executives, RevOps admins and superusers see and manage
every subscription; anyone else the subscriptions they own or receive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from apps.core.errors import ApplicationError
from apps.digests import render
from apps.digests.content import digest_content
from apps.digests.forecast import ForecastBasis, forecast_basis
from apps.digests.models import Delivery, DigestSubscription, Frequency, Section
from apps.kpis import calc as kpi_calc
from apps.kpis.selectors import KpiPeriod, KpiScope, kpi_value
from apps.org.models import Role, Team, User
from apps.org.policy import scope_for


def manages_all(user: User) -> bool:
    """Executives, RevOps admins and superusers manage everybody's subscriptions."""
    return bool(
        user.is_authenticated
        and user.is_active
        and (user.is_superuser or user.role in (Role.EXECUTIVE, Role.REVOPS_ADMIN))
    )


def subscriptions_visible(*, user: User) -> QuerySet[DigestSubscription]:
    qs = DigestSubscription.objects.select_related("recipient", "owner", "team").order_by("id")
    if not user.is_authenticated or not user.is_active:
        return qs.none()
    if manages_all(user):
        return qs
    return qs.filter(Q(owner=user) | Q(recipient=user))


def subscription_get(*, user: User, pk: int) -> DigestSubscription | None:
    return subscriptions_visible(user=user).filter(pk=pk).first()


def deliveries_visible(*, user: User) -> QuerySet[Delivery]:
    visible = subscriptions_visible(user=user).values("pk")
    return Delivery.objects.filter(subscription_id__in=visible).select_related(
        "subscription", "subscription__recipient", "subscription__team"
    )


def scope_choices(*, user: User) -> list[tuple[str, str]]:
    """Scopes ``user`` may give a subscription: '' (company) for those who see everything,
    then the visible teams, indented by depth."""
    scope = scope_for(user)
    teams = list(Team.objects.order_by("name").values_list("id", "name", "parent_id"))
    visible = {t[0] for t in teams if scope.sees_team(t[0])}
    by_parent: dict[int | None, list[tuple[int, str]]] = {}
    for pk, name, parent in teams:
        if pk in visible:
            key = parent if parent in visible else None
            by_parent.setdefault(key, []).append((pk, name))
    out: list[tuple[str, str]] = []
    if scope.everything:
        out.append(("", "Whole company"))

    def walk(parent: int | None, depth: int) -> None:
        for pk, name in by_parent.get(parent, []):
            out.append((str(pk), "\u2003" * depth + name))
            walk(pk, depth + 1)

    walk(None, 0)
    return out


def subscription_defaults(*, user: User) -> dict[str, Any] | None:
    """Sensible defaults for ``user``'s own digest, by role (None: nothing to offer, e.g.
    a rep, who sees neither a team nor the company).

    - Executives: the whole company, every section (the manager section lists the
      reviews they owe too).
    - RevOps admins: the whole company, without the manager section.
    - Managers: the first team they run, every section except the company-wide customer
      figures.
    All weekly on Monday at 07:00 in TIME_ZONE."""
    base = {
        "frequency": Frequency.WEEKLY,
        "weekday": 0,
        "day_of_month": None,
        "hour": 7,
        "time_zone": settings.TIME_ZONE,
    }
    everything = list(Section.values)
    if user.is_superuser or user.role == Role.EXECUTIVE:
        return {**base, "team": None, "sections": everything}
    if user.role == Role.REVOPS_ADMIN:
        return {**base, "team": None, "sections": [s for s in everything if s != Section.MANAGER]}
    if user.role == Role.MANAGER:
        team = Team.objects.filter(manager=user).order_by("id").first()
        if team is None:
            return None
        return {
            **base,
            "team": team,
            "sections": [s for s in everything if s != Section.CUSTOMERS],
        }
    return None


def sees_scope(user: User, subscription: DigestSubscription) -> bool:
    """Whether ``user`` may see the subscription's scope (to preview or test it)."""
    visible = scope_for(user)
    if subscription.team_id is None:
        return visible.everything
    return visible.sees_team(subscription.team_id)


def digest_preview(*, user: User, subscription: DigestSubscription, as_of: date) -> dict[str, Any]:
    """The digest as it would be sent on ``as_of``: the rendered payload (charts
    included) and the content it came from. Nothing is written or sent. Raises
    ApplicationError when ``user`` may not see the subscription's scope."""
    if not sees_scope(user, subscription):
        raise ApplicationError("You may not see this digest's scope.")
    content = digest_content(subscription=subscription, as_of=as_of)
    return {"content": content, "payload": render.digest_payload(content)}


@dataclass(frozen=True)
class ForecastAttainment:
    """Forecast attainment of a scope and period: ``value`` = forecast / quota as a
    fraction (0.93 is 93 %), with the forecast's basis and the quota it was divided by."""

    value: Decimal
    basis: ForecastBasis
    quota: Decimal
    computed_at: datetime | None


def forecast_attainment(
    *, viewer: User, scope: KpiScope, period: KpiPeriod
) -> ForecastAttainment | None:
    """The forecast for ``period`` / the quota for ``period``, for a scope already
    resolved (visibility-checked) for ``viewer``.

    The forecast is the stored Monte Carlo P50 when there is one, else the stored weighted
    pipeline's expected value (:func:`apps.digests.forecast.forecast_basis`), from
    ``apps.forecasting.selectors.forecast_latest``; the quota is the KPI engine's
    ``quota`` KPI for the same scope and period. None ("no data") when no forecast is
    stored, or the quota is missing or zero."""
    from apps.forecasting.selectors import forecast_latest

    summary = forecast_latest(scope=scope, period=period)
    basis = forecast_basis(summary.methods) if summary is not None else None
    if summary is None or basis is None:
        return None
    found = kpi_value(name="quota", period=period, user=viewer, scope=scope).value
    quota = None if found is None else Decimal(found)
    value = kpi_calc.attainment(basis.value, quota)
    if value is None or quota is None:
        return None
    return ForecastAttainment(
        value=value, basis=basis, quota=quota, computed_at=summary.computed_at
    )
