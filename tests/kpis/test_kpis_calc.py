"""The KPI arithmetic, without a database: every zero denominator is "no data"."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from apps.kpis import calc

D = Decimal


def test_zero_denominators_are_no_data_not_zero():
    # given nothing closed, no quota, no accounts, no responses
    # then every ratio is None
    assert calc.win_rate(0, 0) is None
    assert calc.win_rate_by_value(D("0"), D("0")) is None
    assert calc.average_deal_size(D("0"), 0) is None
    assert calc.mean(0, 0) is None
    assert calc.median([]) is None
    assert calc.growth(D("100"), D("0")) is None
    assert calc.growth(None, D("10")) is None
    assert calc.attainment(D("100"), None) is None
    assert calc.attainment(D("100"), D("0")) is None
    assert calc.stage_conversion(0, 0) is None
    assert calc.net_promoter_score(0, 0, 0) is None
    empty = calc.retention_totals([])
    assert calc.gross_revenue_retention(empty) is None
    assert calc.net_revenue_retention(empty) is None
    assert calc.logo_churn_rate(empty) is None


def test_ratios_are_exact_decimals():
    assert calc.win_rate(3, 1) == D("0.75")
    assert calc.win_rate_by_value(D("4550"), D("2000")) == D("4550") / D("6550")
    assert calc.average_deal_size(D("4550.00"), 3) == D("4550.00") / 3
    assert calc.growth(D("4550"), D("2000")) == D("1.275")
    assert calc.attainment(D("1550"), D("5000")) == D("0.31")


def test_median_odd_and_even():
    assert calc.median([40, 60, 50]) == D("50")
    assert calc.median([40, 50, 60, 100]) == D("55")
    assert calc.median([7]) == D("7")


def test_coverage_is_no_data_once_quota_is_met():
    # quota 10000, bookings 4000: 6000 still to close, pipeline 12000 covers it 2x
    assert calc.pipeline_coverage(D("12000"), D("10000"), D("4000")) == D("2")
    assert calc.pipeline_coverage(D("12000"), D("10000"), D("10000")) is None
    assert calc.pipeline_coverage(D("12000"), D("10000"), D("12000")) is None
    assert calc.pipeline_coverage(D("12000"), None, D("0")) is None


def test_velocity():
    # 10 open deals x 50% x 2000 / 40 days = 250 per day
    assert calc.pipeline_velocity(10, D("0.5"), D("2000"), D("40")) == D("250")
    assert calc.pipeline_velocity(10, None, D("2000"), D("40")) is None
    assert calc.pipeline_velocity(10, D("0.5"), D("2000"), None) is None


def test_retention_expansion_contraction_churn_and_new():
    # given four accounts: expanded 100->150, contracted 200->120, churned 50->0, new 0->80
    totals = calc.retention_totals(
        [(D("100"), D("150")), (D("200"), D("120")), (D("50"), D("0")), (D("0"), D("80"))]
    )
    # then the new account is left out; retained = 100 + 120 + 0
    assert totals.opening == D("350")
    assert totals.retained == D("220")
    assert totals.closing == D("270")
    assert (totals.accounts, totals.churned) == (3, 1)
    assert calc.gross_revenue_retention(totals) == D("220") / D("350")
    assert calc.net_revenue_retention(totals) == D("270") / D("350")
    assert calc.logo_churn_rate(totals) == D("1") / D("3")


def test_clv_and_its_no_data_cases():
    # ARPA 1000/4 = 250; x 0.8 / 0.02 = 10000
    assert calc.customer_lifetime_value(D("1000"), 4, D("0.8"), D("0.02")) == D("10000")
    assert calc.customer_lifetime_value(D("1000"), 4, D("0.8"), D("0")) is None
    assert calc.customer_lifetime_value(D("1000"), 4, D("0.8"), None) is None
    assert calc.customer_lifetime_value(D("0"), 0, D("0.8"), D("0.1")) is None
    assert calc.average_rate([D("0.1"), None, D("0.3")]) == D("0.2")
    assert calc.average_rate([None, None]) is None


def test_nps_bounds_and_categories():
    assert [calc.nps_category(s) for s in (0, 6, 7, 8, 9, 10)] == [
        "detractor",
        "detractor",
        "passive",
        "passive",
        "promoter",
        "promoter",
    ]
    for bad in (-1, 11, True, 8.5):
        with pytest.raises(ValueError, match="0 to 10"):
            calc.nps_category(bad)
    assert calc.net_promoter_score(5, 0, 0) == D("100")
    assert calc.net_promoter_score(0, 0, 5) == D("-100")
    assert calc.net_promoter_score(0, 4, 0) == D("0")
    # 2 promoters, 1 passive, 1 detractor: 50% - 25% = 25
    assert calc.net_promoter_score(2, 1, 1) == D("25")


def _t(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def test_slipped_deals_rules():
    start, end = date(2024, 7, 1), date(2024, 9, 30)
    window = (_t(start).replace(hour=0), datetime(2024, 10, 1, tzinfo=UTC))
    rows = [
        # 1: moved out during Q3 and still open -> slipped
        (1, _t(date(2024, 6, 1)), date(2024, 8, 1), True),
        (1, _t(date(2024, 8, 5)), date(2024, 10, 15), True),
        # 2: moved out, then back in -> not slipped
        (2, _t(date(2024, 6, 1)), date(2024, 8, 1), True),
        (2, _t(date(2024, 8, 5)), date(2024, 11, 1), True),
        (2, _t(date(2024, 9, 1)), date(2024, 9, 20), True),
        # 3: moved out before the quarter -> not slipped in Q3
        (3, _t(date(2024, 5, 1)), date(2024, 8, 1), True),
        (3, _t(date(2024, 6, 5)), date(2024, 11, 1), True),
        # 4: moved out, then lost in the quarter -> not open, not slipped
        (4, _t(date(2024, 6, 1)), date(2024, 8, 1), True),
        (4, _t(date(2024, 8, 5)), date(2024, 10, 15), True),
        (4, _t(date(2024, 9, 5)), date(2024, 10, 15), False),
        # 5: moved out during Q3, moved back after the quarter -> slipped in Q3
        (5, _t(date(2024, 6, 1)), date(2024, 9, 1), True),
        (5, _t(date(2024, 9, 29)), date(2024, 12, 1), True),
        (5, _t(date(2024, 10, 2)), date(2024, 9, 1), True),
    ]
    got = calc.slipped_deals(
        rows, period_start=start, period_end=end, window_start=window[0], window_end=window[1]
    )
    assert got == {1, 5}
