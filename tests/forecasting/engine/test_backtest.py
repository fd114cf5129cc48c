"""Backtest: replays a closed quarter week by week with only what was known each week
(planted later changes are not seen), scores each method, and the command prints it."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.core.errors import ApplicationError
from apps.forecasting.engine.backtest import backtest_run, closed_periods, week_ends
from apps.kpis.selectors import KpiScope, period_parse

TODAY = date(2024, 11, 5)


def test_week_ends_of_a_quarter():
    weeks = week_ends(period_parse("2024-Q3"))
    assert weeks[0] == date(2024, 7, 7)
    assert weeks[6] == date(2024, 8, 18)
    assert weeks[-1] == date(2024, 9, 30)
    assert len(weeks) == 14  # 13 full weeks and the last two days


def test_closed_periods_before_a_date():
    assert [p.name for p in closed_periods(2, before=TODAY)] == ["2024-Q2", "2024-Q3"]
    with pytest.raises(ApplicationError):
        closed_periods(0, before=TODAY)


def test_backtest_sees_nothing_from_after_each_week(book):
    # when replaying Q3 2024 (from 5 Nov 2024)
    report = backtest_run(
        scope=KpiScope(kind="company"), periods=[period_parse("2024-Q3")], today=TODAY
    )
    rows = {(r.week, r.method): r for r in report.rows}
    week7 = rows[(7, "weighted")]  # as of 18 Aug: before d5, d6's change, d7's move, d8's win
    # then week 7 forecasts what was known on 18 Aug: 3,000 won + 9,560 weighted
    assert week7.as_of == date(2024, 8, 18)
    assert week7.forecast == Decimal("12560.00")
    # actual bookings of Q3 as known on 5 Nov: d4 3,000 + d8 5,000
    assert week7.actual == Decimal("8000.00")
    assert week7.error == Decimal("4560.00")
    assert week7.ape == pytest.approx(0.57)
    # week 1 (7 Jul): only d1, d2, d3 existed; nothing won yet
    # 10,000 x 0.6 + 4,000 x 0.25 + 1,100 x 0.1 = 7,110
    assert rows[(1, "weighted")].forecast == Decimal("7110.00")
    # the last week (30 Sep) sees everything up to then: won 8,000; open d1 6,000 + d2
    # 1,000 + d3 110 + d5 30,000 + d6 5,000 + d7 90
    assert rows[(14, "weighted")].forecast == Decimal("50200.00")
    assert set(report.mape_by_method()) == {"weighted", "historical", "monte_carlo"}
    assert report.best_method in {"weighted", "historical", "monte_carlo"}
    assert report.mape_by_week()[7]["weighted"] == pytest.approx(0.57)


def test_backtest_refuses_open_periods(book):
    with pytest.raises(ApplicationError, match="has not ended"):
        backtest_run(scope=KpiScope(kind="company"), periods=[period_parse("2024-Q4")], today=TODAY)


def test_command_prints_table_and_best_method(book):
    out = StringIO()
    call_command("backtest_forecasts", "--periods", "1", "--before", "2024-10-15", stdout=out)
    text = out.getvalue()
    assert "Backtest for Company: 2024-Q3" in text
    assert re.search(r"2024-Q3 +7 2024-08-18 +12560\.00 ", text)
    assert re.search(r"Most accurate: [a-z_]+ \(MAPE [0-9.]+%\)", text)
    assert "Most accurate:" in text


def test_command_bad_scope(book):
    with pytest.raises(CommandError, match="company, team:<id> or rep:<id>"):
        call_command("backtest_forecasts", "--scope", "planet:3")
    with pytest.raises(CommandError, match="no team with id 99999"):
        call_command("backtest_forecasts", "--scope", "team:99999")
