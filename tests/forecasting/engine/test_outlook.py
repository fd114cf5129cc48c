"""The outlook on a synthetic seasonal bookings series: it recovers the seasonality, and
scenarios move it exactly as documented."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.forecasting.engine import api
from apps.kpis.selectors import KpiScope
from apps.kpis.services import add_months, month_start, rollups_mark_dirty, rollups_update

MONTHS = 48


def seasonal(month_number: int, t: int) -> Decimal:
    """10,000 + 4,000 sin(2 pi (m - 1) / 12) + 50 t: peak in April, trough in October."""
    value = 10_000 + 4_000 * math.sin(2 * math.pi * (month_number - 1) / 12) + 50 * t
    return Decimal(f"{value:.2f}")


@pytest.fixture
def seasonal_book(world):
    first = add_months(month_start(timezone.localdate()), -MONTHS)
    for t in range(MONTHS):
        month = add_months(first, t)
        close = month + timedelta(days=14)
        world.deal(
            owner=world.rep_a,
            amount=str(seasonal(month.month, t)),
            stage="won",
            created=close - timedelta(days=10),
            close=close,
        )
        if t >= MONTHS - 12:  # one lost deal a month over the last year: win rate 50 %
            world.deal(
                owner=world.rep_b,
                amount="100",
                stage="lost",
                created=close - timedelta(days=10),
                close=close,
            )
    # Only the deal rollups of these months are needed (a full rebuild also does MRR etc.).
    rollups_mark_dirty(area="deals", months=[add_months(first, t) for t in range(MONTHS)])
    rollups_update()
    return world


def company() -> KpiScope:
    return KpiScope(kind="company")


def test_recovers_the_seasonality(seasonal_book):
    outlook = api.outlook_compute(scope=company(), months=36)
    assert len(outlook.history) == MONTHS
    assert len(outlook.points) == 36
    assert "seasonality" in outlook.model and "no seasonality" not in outlook.model
    assert outlook.points[0].month == month_start(timezone.localdate())
    first_year = outlook.points[:12]
    by_month = {p.month.month: float(p.baseline) for p in first_year}
    # the series goes on as planted (t = MONTHS is the current month): the projected peak
    # falls in April like the truth's, and the projected trough in a month where the truth
    # is at its lowest. That is October, unless the trend makes the first projected month
    # about as low: started in November, the truth has November at 8,935.90 and October at
    # 8,950.00, a tie no fit can be asked to break, so any month within 0.5 % of the
    # truth's minimum counts (September, the next, is 5 % above it).
    truth = {
        p.month.month: float(seasonal(p.month.month, MONTHS + i)) for i, p in enumerate(first_year)
    }
    assert max(by_month, key=by_month.get) == max(truth, key=truth.get) == 4
    lowest = min(truth.values())
    troughs = {m for m, v in truth.items() if v <= lowest * 1.005}
    assert min(by_month, key=by_month.get) in troughs
    assert troughs <= {10, 11}
    months = sorted(by_month)
    assert np.corrcoef([truth[m] for m in months], [by_month[m] for m in months])[0, 1] > 0.99
    # with no scenario the value is the baseline, inside its 80 % interval
    for p in outlook.points:
        assert p.value == p.baseline
        assert p.low <= p.value <= p.high
    # yearly totals add up the months
    assert sum(v for _, v, _ in outlook.yearly) == sum(p.value for p in outlook.points)


def test_scenarios_move_the_projection_as_documented(seasonal_book):
    base = api.outlook_compute(scope=company(), months=36)
    grown = api.outlook_compute(
        scope=company(), months=36, scenario=api.ScenarioInputs(growth_pct=10)
    )
    for m, (b, g) in enumerate(zip(base.points, grown.points, strict=True), start=1):
        assert g.baseline == b.baseline
        assert abs(g.value - b.baseline * Decimal(repr(1.1 ** (m / 12)))) <= Decimal("0.02")
    # win rate over the trailing year: 12 won / 24 closed = 50 %; +10 pts -> x 1.2
    better = api.outlook_compute(
        scope=company(), months=36, scenario=api.ScenarioInputs(win_rate_delta_pts=10)
    )
    assert abs(better.points[5].value - base.points[5].baseline * Decimal("1.2")) <= Decimal("0.02")
    assert "win rate 50.0% +10 pts" in better.model
    # three reps now (rep_a, rep_b, rep_c); +3 from next month with a 3-month ramp
    hired = api.outlook_compute(
        scope=company(), months=36, scenario=api.ScenarioInputs(headcount_delta=3)
    )
    factors = [1.0, 4 / 3, 5 / 3, 2.0, 2.0]
    for i, factor in enumerate(factors):
        expected = base.points[i].baseline * Decimal(repr(factor))
        assert abs(hired.points[i].value - expected) <= Decimal("0.02")


def test_short_or_missing_history_is_a_clear_error(seasonal_book):
    rep_c = KpiScope(
        kind="rep", rep_id=seasonal_book.rep_c.pk, owner_ids=frozenset({seasonal_book.rep_c.pk})
    )
    with pytest.raises(ApplicationError, match="at least 12 full months"):
        api.outlook_compute(scope=rep_c)
    with pytest.raises(ApplicationError, match="36 to 60 months"):
        api.outlook_compute(scope=company(), months=12)
    with pytest.raises(ApplicationError, match="Unknown scope"):
        api.outlook_compute(scope=KpiScope(kind="galaxy"))
