"""fiscal_periods_ensure writes the calendar's periods once, and never mixes calendars."""

from __future__ import annotations

from datetime import date

import pytest
from django.test import override_settings

from apps.core.errors import ApplicationError
from apps.quotas.models import FiscalPeriod
from apps.quotas.services import fiscal_periods_ensure

pytestmark = pytest.mark.django_db


@override_settings(FISCAL_YEAR_START_MONTH=4)
def test_ensure_creates_year_quarters_and_months_for_an_april_start():
    # when FY2025 is ensured
    created = fiscal_periods_ensure(first_year=2025, last_year=2025)
    # then there are one year, four quarters and twelve months, on the April calendar
    assert created == 17
    kinds = {k: FiscalPeriod.objects.filter(kind=k).count() for k in ("year", "quarter", "month")}
    assert kinds == {"year": 1, "quarter": 4, "month": 12}
    year = FiscalPeriod.objects.get(name="FY2025")
    assert (year.start_date, year.end_date, year.fiscal_start_month) == (
        date(2024, 4, 1),
        date(2025, 3, 31),
        4,
    )
    q1 = FiscalPeriod.objects.get(name="2025-Q1")
    assert (q1.start_date, q1.end_date, q1.number) == (date(2024, 4, 1), date(2024, 6, 30), 1)
    april = FiscalPeriod.objects.get(kind="month", start_date=date(2024, 4, 1))
    assert (april.name, april.fiscal_year, april.number) == ("2024-04", 2025, 1)


@override_settings(FISCAL_YEAR_START_MONTH=4)
def test_ensure_is_idempotent_and_extends_only_what_is_missing():
    fiscal_periods_ensure(first_year=2025, last_year=2025)
    ids_before = set(FiscalPeriod.objects.values_list("id", flat=True))
    # when the same years are ensured again, nothing is created
    assert fiscal_periods_ensure(first_year=2025, last_year=2025) == 0
    assert set(FiscalPeriod.objects.values_list("id", flat=True)) == ids_before
    # and a wider range adds only the new years
    assert fiscal_periods_ensure(first_year=2024, last_year=2026) == 34
    assert FiscalPeriod.objects.count() == 51
    assert ids_before <= set(FiscalPeriod.objects.values_list("id", flat=True))


def test_ensure_refuses_to_mix_start_months():
    with override_settings(FISCAL_YEAR_START_MONTH=4):
        fiscal_periods_ensure(first_year=2025, last_year=2025)
    with override_settings(FISCAL_YEAR_START_MONTH=1), pytest.raises(ApplicationError) as exc:
        fiscal_periods_ensure(first_year=2025, last_year=2025)
    assert "another fiscal year start month (4)" in exc.value.message
    assert "FISCAL_YEAR_START_MONTH is now 1" in exc.value.message
    assert set(FiscalPeriod.objects.values_list("fiscal_start_month", flat=True)) == {4}
    assert FiscalPeriod.objects.count() == 17


def test_ensure_refuses_a_reversed_range():
    with pytest.raises(ApplicationError, match="first_year must not be after last_year"):
        fiscal_periods_ensure(first_year=2026, last_year=2025)
    assert not FiscalPeriod.objects.exists()
