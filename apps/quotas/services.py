"""Writes for fiscal periods and quotas."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.org.models import Team, User
from apps.quotas import fiscal
from apps.quotas.models import FiscalPeriod, Quota


@transaction.atomic
def fiscal_periods_ensure(*, first_year: int, last_year: int) -> int:
    """Create the fiscal years, quarters and months from ``first_year`` to ``last_year``
    (fiscal years, inclusive) for the configured FISCAL_YEAR_START_MONTH. Idempotent;
    returns the number of periods created. Refuses to mix calendars: if periods built with
    another start month exist, that is an error to resolve by hand, never a silent mix."""
    if first_year > last_year:
        raise ApplicationError("first_year must not be after last_year")
    start_month = settings.FISCAL_YEAR_START_MONTH
    other = FiscalPeriod.objects.exclude(fiscal_start_month=start_month)
    if other.exists():
        raise ApplicationError(
            "Fiscal periods exist for another fiscal year start month "
            f"({other.first().fiscal_start_month}); FISCAL_YEAR_START_MONTH is now {start_month}."
        )
    existing = set(FiscalPeriod.objects.values_list("name", flat=True))
    new = [
        FiscalPeriod(
            name=p.name,
            kind=p.kind,
            fiscal_year=p.fiscal_year,
            number=p.number,
            start_date=p.start,
            end_date=p.end,
            fiscal_start_month=start_month,
        )
        for year in range(first_year, last_year + 1)
        for p in fiscal.periods_of_year(year, start_month)
        if p.name not in existing
    ]
    FiscalPeriod.objects.bulk_create(new)
    return len(new)


def fiscal_periods_ensure_around(*, day: date, years_back: int = 4, years_ahead: int = 2) -> int:
    fy = fiscal.fiscal_year_of(day, settings.FISCAL_YEAR_START_MONTH)
    return fiscal_periods_ensure(first_year=fy - years_back, last_year=fy + years_ahead)


@transaction.atomic
def quota_set(
    *,
    period: FiscalPeriod,
    amount: Decimal,
    set_by: User | None,
    rep: User | None = None,
    team: Team | None = None,
    currency: str | None = None,
    note: str = "",
) -> Quota:
    """Create or replace the quota of one rep or one team for one fiscal month."""
    if (rep is None) == (team is None):
        raise ApplicationError("A quota is for exactly one rep or one team.")
    if period.kind != FiscalPeriod.Kind.MONTH:
        raise ApplicationError(
            f"Quotas are set per fiscal month; {period.name} is a {period.kind}."
        )
    if amount is None or Decimal(amount) < 0:
        raise ApplicationError("A quota must be a non-negative amount.")
    quota, _ = Quota.objects.update_or_create(
        period=period,
        rep=rep,
        team=team,
        defaults={
            "amount": Decimal(amount),
            "currency": (currency or settings.BASE_CURRENCY).upper(),
            "set_by": set_by,
            "set_at": timezone.now(),
            "note": note,
        },
    )
    return quota
