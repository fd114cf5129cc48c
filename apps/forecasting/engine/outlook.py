"""The 3-5 year outlook: monthly bookings projected with a seasonal exponential-smoothing
model (statsmodels ETS), with what-if scenarios applied on top.

Monthly bookings come from the KPI engine's closed-deal rollup (the one definition of
bookings, :mod:`apps.kpis`), so the outlook's history matches the dashboards.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from django.conf import settings
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.forecasting.engine import calc
from apps.kpis.models import ClosedDealRollup
from apps.kpis.selectors import KpiFilters, KpiScope, _Loader
from apps.kpis.services import add_months, month_start
from apps.org.models import Role, User
from apps.quotas import fiscal

if TYPE_CHECKING:  # the engine's API imports this module lazily
    from apps.forecasting.engine.api import Outlook

MIN_MONTHS = 12
SEASONAL_MONTHS = 24
MAX_HISTORY_MONTHS = 120
INTERVAL = 0.80


def monthly_bookings(scope: KpiScope, last: date) -> list[tuple[date, Decimal]]:
    """Bookings of each month up to ``last`` (a month start), from the scope's first month
    with any closed deal (at most MAX_HISTORY_MONTHS)."""
    first_row = ClosedDealRollup.objects.order_by("month").values_list("month", flat=True).first()
    if first_row is None:
        return []
    first = max(first_row, add_months(last, -MAX_HISTORY_MONTHS + 1))
    closed = _Loader(scope, KpiFilters(), first, last).closed()
    series, month, started = [], first, False
    while month <= last:
        totals = closed.get(month)
        amount = totals.won_amount if totals else Decimal("0.00")
        started = started or amount > 0
        if started:
            series.append((month, amount))
        month = add_months(month, 1)
    return series


def trailing_win_rate(scope: KpiScope, last: date) -> float | None:
    closed = _Loader(scope, KpiFilters(), add_months(last, -11), last).closed()
    won = sum(t.won for t in closed.values())
    lost = sum(t.lost for t in closed.values())
    return won / (won + lost) if won + lost else None


def current_reps(scope: KpiScope) -> int:
    reps = User.objects.filter(role=Role.REP, is_active=True)
    if scope.owner_ids is not None:
        reps = reps.filter(pk__in=scope.owner_ids)
    return reps.count()


#: Fitted projections by (history, first month, horizon): a what-if on the page changes
#: only the scenario factors, so it reuses the fit (a fit takes seconds).
_fits: OrderedDict[tuple, tuple[pd.DataFrame, str]] = OrderedDict()
_fits_lock = threading.Lock()
FITS_KEPT = 32


def _fit(values: np.ndarray, first: date, months: int) -> tuple[pd.DataFrame, str]:
    key = (tuple(values.tolist()), first, months)
    with _fits_lock:
        if key in _fits:
            _fits.move_to_end(key)
            return _fits[key]
    fitted = _fit_model(values, first, months)
    with _fits_lock:
        _fits[key] = fitted
        while len(_fits) > FITS_KEPT:
            _fits.popitem(last=False)
    return fitted


def _fit_model(values: np.ndarray, first: date, months: int) -> tuple[pd.DataFrame, str]:
    """Fit ETS with a damped and with a plain additive trend and keep the one with the
    lower AIC (the usual automatic ETS choice). One fit alone can stop in a poor local
    optimum of its likelihood: on a clean seasonal series with a steady trend the damped
    fit was seen to put the peak a month late, where the plain trend fits it exactly."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    n = len(values)
    series = pd.Series(values, index=pd.date_range(start=first, periods=n, freq="MS"))
    seasonal = n >= SEASONAL_MONTHS
    best = None
    for damped in (True, False):
        model = ETSModel(
            series,
            error="add",
            trend="add",
            damped_trend=damped,
            seasonal="add" if seasonal else None,
            seasonal_periods=12 if seasonal else None,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = model.fit(disp=False, maxiter=2000)
        aic = float(fitted.aic) if np.isfinite(fitted.aic) else float("inf")
        # The damped fit comes first and wins ties (the safer long-range projection).
        if best is None or aic < best[0]:
            best = (aic, damped, fitted)
    assert best is not None
    _, damped, fitted = best
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = fitted.get_prediction(start=n, end=n + months - 1).summary_frame(alpha=1 - INTERVAL)
    trend_code, trend_text = ("Ad", "damped additive trend") if damped else ("A", "additive trend")
    description = (
        f"ETS(A,{trend_code},A): additive errors, {trend_text}, additive yearly seasonality"
        if seasonal
        else f"ETS(A,{trend_code},N): additive errors, {trend_text}, no seasonality "
        f"(only {n} months of history; {SEASONAL_MONTHS} are needed for seasonality)"
    )
    return frame, (
        f"{description} (lower AIC than the "
        f"{'plain' if damped else 'damped'} trend); fitted on {n} months; "
        f"{int(INTERVAL * 100)}% interval"
    )


def outlook(*, scope: KpiScope, months: int, scenario) -> Outlook:
    from apps.forecasting.engine.api import Outlook, OutlookPoint

    if not 36 <= months <= 60:
        raise ApplicationError("The outlook covers 36 to 60 months.")
    if scenario.growth_pct <= -100:
        raise ApplicationError("Growth must be above -100%.")
    this_month = month_start(timezone.localdate())
    last = add_months(this_month, -1)
    history = monthly_bookings(scope, last)
    if len(history) < MIN_MONTHS:
        raise ApplicationError(
            f"The outlook needs at least {MIN_MONTHS} full months of bookings history for "
            f"this scope; there are {len(history)}."
        )
    values = np.asarray([float(v) for _, v in history])
    frame, description = _fit(values, history[0][0], months)
    mean = np.maximum(frame["mean"].to_numpy(), 0.0)
    low = np.maximum(frame["pi_lower"].to_numpy(), 0.0)
    high = np.maximum(frame["pi_upper"].to_numpy(), 0.0)
    win_rate = trailing_win_rate(scope, last) if scenario.win_rate_delta_pts else None
    reps = current_reps(scope) if scenario.headcount_delta else 0
    try:
        factors = calc.scenario_factors(
            months,
            growth_pct=scenario.growth_pct,
            win_rate=win_rate,
            win_rate_delta_pts=scenario.win_rate_delta_pts,
            reps=reps,
            headcount_delta=scenario.headcount_delta,
        )
    except ValueError as exc:
        raise ApplicationError(f"Cannot apply the scenario: {exc}.") from None
    start_month = settings.FISCAL_YEAR_START_MONTH
    points: list[OutlookPoint] = []
    yearly: dict[str, tuple[Decimal, Decimal]] = {}
    for i in range(months):
        month = add_months(this_month, i)
        baseline = calc.money(mean[i])
        point = OutlookPoint(
            month=month,
            value=calc.money(mean[i] * factors[i]),
            low=calc.money(low[i] * factors[i]),
            high=calc.money(high[i] * factors[i]),
            baseline=baseline,
        )
        points.append(point)
        name = fiscal.period_containing(month, "year", start_month).name
        projected, base = yearly.get(name, (Decimal("0.00"), Decimal("0.00")))
        yearly[name] = (projected + point.value, base + baseline)
    detail = []
    if scenario.win_rate_delta_pts:
        detail.append(f"win rate {win_rate:.1%} {scenario.win_rate_delta_pts:+g} pts")
    if scenario.headcount_delta:
        detail.append(f"{reps} reps {scenario.headcount_delta:+d}")
    if scenario.growth_pct:
        detail.append(f"growth {scenario.growth_pct:+g}%/year")
    model = description + (f"; scenario: {', '.join(detail)}" if detail else "")
    return Outlook(
        history=history,
        points=points,
        model=model,
        yearly=[(name, p, b) for name, (p, b) in yearly.items()],
    )
