"""Backtest: replay past periods week by week with only what was known each week.

For each closed period (fiscal quarter by default) and each week w = 1..13 of it, every
method is computed as of the last day of that week (:func:`api.forecasts_compute` with
``as_of``, which rebuilds the pipeline from history, so nothing recorded later is seen)
and compared with the period's actual bookings (won deals with close date in the period,
as known today: the KPI definition). The ML model used for a period is the one trained
as of the period's first day (trained on demand and stored when there is none).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.forecasting.engine import api, data, methods, ml
from apps.kpis.selectors import KpiFilters, KpiPeriod, KpiScope, period_parse, period_shift
from apps.quotas import fiscal


@dataclass(frozen=True)
class BacktestRow:
    period: str
    week: int  # week of the period, 1-based
    as_of: date
    method: str
    forecast: Decimal
    actual: Decimal
    error: Decimal  # forecast - actual
    ape: float | None  # |error| / actual; None when actual is 0


@dataclass
class BacktestReport:
    scope: str
    periods: list[str]
    rows: list[BacktestRow] = field(default_factory=list)

    def mape_by_method(self) -> dict[str, float | None]:
        """Mean absolute percentage error of each method over all periods and weeks."""
        values: dict[str, list[float]] = defaultdict(list)
        for row in self.rows:
            values.setdefault(row.method, [])
            if row.ape is not None:
                values[row.method].append(row.ape)
        return {m: (sum(v) / len(v) if v else None) for m, v in values.items()}

    def mape_by_week(self) -> dict[int, dict[str, float | None]]:
        table: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in self.rows:
            table[row.week].setdefault(row.method, [])
            if row.ape is not None:
                table[row.week][row.method].append(row.ape)
        return {
            week: {m: (sum(v) / len(v) if v else None) for m, v in methods_.items()}
            for week, methods_ in sorted(table.items())
        }

    @property
    def best_method(self) -> str | None:
        scored = {m: v for m, v in self.mape_by_method().items() if v is not None}
        return min(scored, key=lambda m: (scored[m], m)) if scored else None


def closed_periods(
    count: int, *, kind: str = "quarter", before: date | None = None
) -> list[KpiPeriod]:
    """The ``count`` fiscal periods of ``kind`` that ended before ``before`` (default
    today), oldest first."""
    from django.conf import settings

    if count < 1:
        raise ApplicationError("Replay at least one period.")
    before = before or timezone.localdate()
    current = fiscal.period_containing(before, kind, settings.FISCAL_YEAR_START_MONTH)  # type: ignore[arg-type]
    now = period_parse(current.name)
    return [period_shift(now, -k) for k in range(count, 0, -1)]


def week_ends(period: KpiPeriod) -> list[date]:
    """Last day of each week of the period (the last week may be short)."""
    days, day = [], period.start + timedelta(days=6)
    while day < period.end:
        days.append(day)
        day += timedelta(days=7)
    days.append(period.end)
    return days


def backtest_run(
    *,
    scope: KpiScope,
    periods: list[KpiPeriod],
    filters: KpiFilters | None = None,
    today: date | None = None,
) -> BacktestReport:
    """Replay ``periods`` (each must have ended by ``today``) week by week."""
    filters = filters or KpiFilters()
    today = today or timezone.localdate()
    if not periods:
        raise ApplicationError("Replay at least one period.")
    for period in periods:
        if period.end >= today:
            raise ApplicationError(f"{period.name} has not ended yet; only closed periods replay.")
    report = BacktestReport(scope=scope.label, periods=[p.name for p in periods])
    with data.reusing():
        _replay(report, scope=scope, periods=periods, filters=filters, today=today)
    return report


def _replay(
    report: BacktestReport,
    *,
    scope: KpiScope,
    periods: list[KpiPeriod],
    filters: KpiFilters,
    today: date,
) -> None:
    loaded = data.load()
    if loaded.history.empty:
        raise ApplicationError("There is no deal history to replay.")
    for period in periods:
        # Actual bookings: won deals closed in the period, as known today.
        actual = methods.period_deals(
            loaded, scope=scope, period=period, as_of=today, filters=filters
        ).won_to_date
        # One model per period, trained on what was known on its first day.
        # (Too little history then: the ML method is left out for this period.)
        with contextlib.suppress(ApplicationError):
            ml.model_for(loaded, period.start)
        for week, as_of in enumerate(week_ends(period), start=1):
            for result in api.forecasts_compute(
                scope=scope, period=period, as_of=as_of, filters=filters
            ):
                error = result.expected - actual
                ape = float(abs(error) / actual) if actual else None
                report.rows.append(
                    BacktestRow(
                        period.name, week, as_of, result.method, result.expected, actual, error, ape
                    )
                )
