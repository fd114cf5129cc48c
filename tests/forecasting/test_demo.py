"""The demo's forecast calls and snapshots: counts, the roll-up arithmetic between levels,
determinism for a seed, and scoring of the closed quarter."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from apps.forecasting import calc
from apps.forecasting.demo import forecast_demo_seed
from apps.forecasting.models import ForecastCall, ForecastSnapshot
from apps.kpis.selectors import period_shift
from apps.org.models import Role, User


@pytest.mark.django_db
def test_demo_calls_roll_up_and_are_scored(book, fake_engine, monkeypatch):
    from apps.forecasting import services

    monkeypatch.setattr(services, "backtest_module", lambda: None)
    west_boss = User.objects.create_user("west", password="pw", role=Role.MANAGER, team=book.west)
    book.west.manager = west_boss
    book.west.save()
    today = timezone.localdate()
    prev = period_shift(book.period, -1)
    prev_weeks = calc.week_of_period(prev.end, prev.start)
    cur_weeks = calc.week_of_period(today, book.period.start)

    result = forecast_demo_seed(as_of=today, seed=3)

    # Company (the CSO), East (mgr) and West each week; East SMB has no manager
    assert result["calls"] == 3 * (prev_weeks + cur_weeks) == ForecastCall.objects.count()
    assert result["periods"] == [prev.name, book.period.name]
    last = {
        c.team_id: c for c in ForecastCall.objects.filter(period_name=prev.name, week=prev_weeks)
    }
    company = last[book.company.pk]
    assert company.submitted_by == book.cso
    # The company's roll-up is the regions' calls of the same week (the CSO owns no deals)
    assert company.rollup_commit == last[book.east.pk].commit + last[book.west.pk].commit
    assert company.rollup_best_case == last[book.east.pk].best_case + last[book.west.pk].best_case
    assert all(c.best_case >= c.commit for c in ForecastCall.objects.all())
    # West (rep_c) booked nothing last quarter: its roll-up is 0 every week
    assert last[book.west.pk].rollup_commit == Decimal("0.00")
    # Snapshots: 2 per call + company, East, West x 2 fake methods x each week
    assert result["snapshots"] == 2 * result["calls"] + 3 * 2 * (prev_weeks + cur_weeks)
    scored = ForecastSnapshot.objects.filter(period_name=prev.name, scored_at__isnull=False)
    assert result["scored"] == scored.count() == 2 * 3 * prev_weeks + 3 * 2 * prev_weeks
    east = scored.get(scope_key=f"team:{book.east.pk}", source="weighted", week=1)
    assert east.actual == Decimal("4000.00")  # rep_a's deal won last quarter

    # Same seed, same calls (and nothing doubled)
    commits = list(
        ForecastCall.objects.order_by("team_id", "period_start", "week").values_list(
            "commit", flat=True
        )
    )
    again = forecast_demo_seed(as_of=today, seed=3)
    assert again["calls"] == result["calls"] == ForecastCall.objects.count()
    assert commits == list(
        ForecastCall.objects.order_by("team_id", "period_start", "week").values_list(
            "commit", flat=True
        )
    )
