"""The pure fiscal calendar (no database): years named after the calendar year they end
in, quarters of three fiscal months, inclusive bounds."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from apps.quotas import fiscal
from apps.quotas.fiscal import FiscalError, Period

APRIL, FEBRUARY, JANUARY = 4, 2, 1


def bounds(period: Period) -> tuple[date, date]:
    return period.start, period.end


# --- an April start -----------------------------------------------------------------------
def test_april_fy2025_runs_from_april_2024_to_march_2025():
    year = fiscal.parse_period("FY2025", APRIL)
    assert bounds(year) == (date(2024, 4, 1), date(2025, 3, 31))
    assert (year.kind, year.fiscal_year, year.number, year.name) == ("year", 2025, 1, "FY2025")


def test_april_q1_is_april_to_june_of_the_previous_calendar_year():
    q1 = fiscal.parse_period("2025-Q1", APRIL)
    assert bounds(q1) == (date(2024, 4, 1), date(2024, 6, 30))
    assert bounds(fiscal.parse_period("2025-Q4", APRIL)) == (date(2025, 1, 1), date(2025, 3, 31))


def test_april_march_2024_belongs_to_fy2024_q4():
    day = date(2024, 3, 15)
    assert fiscal.fiscal_year_of(day, APRIL) == 2024
    quarter = fiscal.period_containing(day, "quarter", APRIL)
    assert quarter.name == "2024-Q4"
    assert bounds(quarter) == (date(2024, 1, 1), date(2024, 3, 31))
    month = fiscal.period_containing(day, "month", APRIL)
    assert (month.name, month.fiscal_year, month.number) == ("2024-03", 2024, 12)


def test_april_first_day_of_the_year_is_month_one():
    month = fiscal.period_containing(date(2024, 4, 1), "month", APRIL)
    assert (month.name, month.fiscal_year, month.number) == ("2024-04", 2025, 1)
    assert fiscal.period_containing(date(2024, 3, 31), "year", APRIL).name == "FY2024"


# --- February and January starts ----------------------------------------------------------
def test_february_start_year_quarters_and_leap_day():
    year = fiscal.parse_period("FY2024", FEBRUARY)
    assert bounds(year) == (date(2023, 2, 1), date(2024, 1, 31))
    q1 = fiscal.parse_period("2025-Q1", FEBRUARY)
    # FY2025 starts 1 Feb 2024: its Q1 holds the leap day
    assert bounds(q1) == (date(2024, 2, 1), date(2024, 4, 30))
    assert fiscal.period_containing(date(2024, 2, 29), "month", FEBRUARY).end == date(2024, 2, 29)
    # January belongs to the fiscal year that ends with it
    jan = fiscal.period_containing(date(2025, 1, 10), "quarter", FEBRUARY)
    assert (jan.name, bounds(jan)) == ("2025-Q4", (date(2024, 11, 1), date(2025, 1, 31)))


def test_january_start_is_the_calendar_year():
    assert bounds(fiscal.parse_period("FY2025", JANUARY)) == (date(2025, 1, 1), date(2025, 12, 31))
    assert bounds(fiscal.parse_period("2025-Q3", JANUARY)) == (date(2025, 7, 1), date(2025, 9, 30))
    december = fiscal.period_containing(date(2025, 12, 31), "month", JANUARY)
    assert (december.fiscal_year, december.number) == (2025, 12)


# --- parsing ------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["2025-Q3", "FY2025-Q3", "2025Q3", " fy2025-q3 "])
def test_quarter_spellings_parse_to_the_same_period(text):
    assert fiscal.parse_period(text, APRIL) == fiscal.parse_period("2025-Q3", APRIL)


def test_month_name_is_the_calendar_month():
    month = fiscal.parse_period("2024-07", APRIL)
    assert bounds(month) == (date(2024, 7, 1), date(2024, 7, 31))
    assert (month.fiscal_year, month.number) == (2025, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2025-13", "month must be 01-12"),
        ("2025-00", "month must be 01-12"),
        ("2025-Q5", "is not a fiscal period"),
        ("Q3", "is not a fiscal period"),
        ("", "is not a fiscal period"),
        ("FY25", "is not a fiscal period"),
        ("last quarter", "is not a fiscal period"),
    ],
)
def test_parse_period_rejects_bad_names_with_a_clear_message(text, message):
    with pytest.raises(FiscalError, match=message):
        fiscal.parse_period(text, APRIL)


@pytest.mark.parametrize("start_month", [0, 13])
def test_start_month_outside_1_to_12_is_refused(start_month):
    with pytest.raises(FiscalError, match="start month must be 1-12"):
        fiscal.parse_period("FY2025", start_month)


# --- moving between periods ---------------------------------------------------------------
def test_previous_crosses_fiscal_year_boundaries():
    assert fiscal.previous(fiscal.parse_period("2025-Q1", APRIL), APRIL).name == "2024-Q4"
    assert fiscal.previous(fiscal.parse_period("2024-04", APRIL), APRIL).name == "2024-03"
    assert fiscal.previous(fiscal.parse_period("2025-01", JANUARY), JANUARY).name == "2024-12"
    assert fiscal.previous(fiscal.parse_period("FY2025", APRIL), APRIL).name == "FY2024"


def test_year_ago_keeps_the_kind_and_position():
    assert fiscal.year_ago(fiscal.parse_period("2025-Q2", APRIL), APRIL).name == "2024-Q2"
    ago = fiscal.year_ago(fiscal.parse_period("2024-02", FEBRUARY), FEBRUARY)
    assert (ago.name, ago.end) == ("2023-02", date(2023, 2, 28))
    assert fiscal.year_ago(fiscal.parse_period("FY2025", APRIL), APRIL).name == "FY2024"


@pytest.mark.parametrize(
    ("name", "steps", "expected"),
    [
        ("2025-Q4", 1, "2026-Q1"),
        ("2025-Q1", -5, "2023-Q4"),
        ("2025-03", 1, "2025-04"),
        ("2024-11", 3, "2025-02"),
        ("FY2025", 2, "FY2027"),
        ("2025-Q2", 0, "2025-Q2"),
    ],
)
def test_shift_moves_by_whole_periods_across_years(name, steps, expected):
    assert fiscal.shift(fiscal.parse_period(name, APRIL), steps, APRIL).name == expected


def test_months_in_a_quarter_year_and_month():
    quarter = fiscal.parse_period("2025-Q4", APRIL)
    assert [m.name for m in fiscal.months_in(quarter, APRIL)] == ["2025-01", "2025-02", "2025-03"]
    year = fiscal.months_in(fiscal.parse_period("FY2025", APRIL), APRIL)
    assert [m.number for m in year] == list(range(1, 13))
    assert (year[0].name, year[-1].name) == ("2024-04", "2025-03")
    month = fiscal.parse_period("2024-09", APRIL)
    assert fiscal.months_in(month, APRIL) == [month]


def test_periods_tile_the_year_without_gaps_or_overlaps():
    for start_month in range(1, 13):
        periods = fiscal.periods_of_year(2025, start_month)
        year, quarters, months = periods[0], periods[1:5], periods[5:]
        for parts in (quarters, months):
            assert parts[0].start == year.start
            assert parts[-1].end == year.end
            for left, right in itertools.pairwise(parts):
                assert right.start == left.next_start
