"""The fiscal calendar, as pure functions (no Django, no database).

Conventions (documented in docs/fiscal-calendar.md):
- A fiscal year starts on the first day of ``start_month`` and lasts twelve months.
- It is named after the calendar year in which it *ends*: with an April start, FY2025 runs
  from 1 April 2024 to 31 March 2025. With a January start, FY2025 is calendar 2025.
- Quarters are three fiscal months: Q1 holds the first three months of the fiscal year.
- Months keep their calendar name (``2024-07`` is July 2024) and belong to the fiscal
  year and quarter that contain them.
- Period bounds are inclusive: ``start`` is the first day, ``end`` the last day.

Period names: ``FY2025`` (year), ``2025-Q3`` (quarter 3 of FY2025), ``2024-07`` (month).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

PeriodKind = Literal["month", "quarter", "year"]
KINDS: tuple[PeriodKind, ...] = ("month", "quarter", "year")

_YEAR_RE = re.compile(r"^FY(\d{4})$", re.IGNORECASE)
_QUARTER_RE = re.compile(r"^(?:FY)?(\d{4})-?Q([1-4])$", re.IGNORECASE)
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


class FiscalError(ValueError):
    """A period name or argument that does not describe a fiscal period."""


@dataclass(frozen=True, order=True)
class Period:
    """One fiscal period. ``number`` is 1-12 for months (fiscal month number), 1-4 for
    quarters and 1 for years; ``fiscal_year`` is the year the fiscal year ends in."""

    start: date
    end: date
    kind: PeriodKind
    fiscal_year: int
    number: int
    name: str

    @property
    def next_start(self) -> date:
        """The first day after the period (where closing MRR is measured)."""
        return self.end + timedelta(days=1)

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


def _check_start_month(start_month: int) -> None:
    if not 1 <= start_month <= 12:
        raise FiscalError(f"fiscal year start month must be 1-12, got {start_month}")


def _add_months(day: date, months: int) -> date:
    """First day of the month ``months`` after the month of ``day``."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def fiscal_year_start(fiscal_year: int, start_month: int) -> date:
    _check_start_month(start_month)
    calendar_year = fiscal_year if start_month == 1 else fiscal_year - 1
    return date(calendar_year, start_month, 1)


def fiscal_year_of(day: date, start_month: int) -> int:
    _check_start_month(start_month)
    if start_month == 1:
        return day.year
    return day.year + 1 if day.month >= start_month else day.year


def fiscal_month_number(day: date, start_month: int) -> int:
    """1 for the first month of the fiscal year ... 12 for the last."""
    _check_start_month(start_month)
    return (day.month - start_month) % 12 + 1


def _make(kind: PeriodKind, fiscal_year: int, number: int, start_month: int) -> Period:
    fy_start = fiscal_year_start(fiscal_year, start_month)
    if kind == "year":
        if number != 1:
            raise FiscalError("a fiscal year has number 1")
        start, months, name = fy_start, 12, f"FY{fiscal_year}"
    elif kind == "quarter":
        if not 1 <= number <= 4:
            raise FiscalError(f"quarter must be 1-4, got {number}")
        start, months = _add_months(fy_start, 3 * (number - 1)), 3
        name = f"{fiscal_year}-Q{number}"
    elif kind == "month":
        if not 1 <= number <= 12:
            raise FiscalError(f"fiscal month must be 1-12, got {number}")
        start, months = _add_months(fy_start, number - 1), 1
        name = f"{start.year:04d}-{start.month:02d}"
    else:
        raise FiscalError(f"unknown period kind {kind!r}")
    end = _add_months(start, months) - timedelta(days=1)
    return Period(
        start=start, end=end, kind=kind, fiscal_year=fiscal_year, number=number, name=name
    )


def period_containing(day: date, kind: PeriodKind, start_month: int) -> Period:
    fiscal_year = fiscal_year_of(day, start_month)
    month_number = fiscal_month_number(day, start_month)
    if kind == "year":
        return _make("year", fiscal_year, 1, start_month)
    if kind == "quarter":
        return _make("quarter", fiscal_year, (month_number - 1) // 3 + 1, start_month)
    if kind == "month":
        return _make("month", fiscal_year, month_number, start_month)
    raise FiscalError(f"unknown period kind {kind!r}")


def periods_of_year(fiscal_year: int, start_month: int) -> list[Period]:
    """The year, its four quarters and its twelve months, in that order."""
    return (
        [_make("year", fiscal_year, 1, start_month)]
        + [_make("quarter", fiscal_year, q, start_month) for q in range(1, 5)]
        + [_make("month", fiscal_year, m, start_month) for m in range(1, 13)]
    )


def months_in(period: Period, start_month: int) -> list[Period]:
    """The fiscal months that make up ``period`` (itself if it is a month)."""
    if period.kind == "month":
        return [period]
    result = []
    day = period.start
    while day <= period.end:
        result.append(period_containing(day, "month", start_month))
        day = _add_months(day, 1)
    return result


def shift(period: Period, steps: int, start_month: int) -> Period:
    """The period ``steps`` periods of the same kind later (negative: earlier)."""
    months = {"month": 1, "quarter": 3, "year": 12}[period.kind] * steps
    return period_containing(_add_months(period.start, months), period.kind, start_month)


def previous(period: Period, start_month: int) -> Period:
    return shift(period, -1, start_month)


def year_ago(period: Period, start_month: int) -> Period:
    return period_containing(_add_months(period.start, -12), period.kind, start_month)


def parse_period(name: str, start_month: int) -> Period:
    """Parse ``FY2025``, ``2025-Q3`` (or ``FY2025-Q3``) and ``2024-07``."""
    text = (name or "").strip()
    if match := _YEAR_RE.match(text):
        return _make("year", int(match.group(1)), 1, start_month)
    if match := _QUARTER_RE.match(text):
        return _make("quarter", int(match.group(1)), int(match.group(2)), start_month)
    if match := _MONTH_RE.match(text):
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise FiscalError(f"{name!r}: month must be 01-12")
        return period_containing(date(year, month, 1), "month", start_month)
    raise FiscalError(f"{name!r} is not a fiscal period; use FY2025, 2025-Q3 or 2025-07")
