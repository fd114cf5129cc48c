"""Recurring revenue and NPS KPIs pinned on hand-built subscriptions and survey answers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from apps.kpis.selectors import KpiFilters, kpi_value
from apps.kpis.services import MissingRateError, rollups_rebuild

D = Decimal
Q3 = "2024-Q3"  # opening MRR on 2024-07-01, closing MRR on 2024-10-01


@pytest.fixture
def subs(world):
    """A: 100 all year + 50 from 08-15 (expansion to 150)
    B: 200 until 09-01, then 120 from 09-01 (contraction)
    C: 50 from 02-01, ends 10-01 - the closing day itself, so closing is 0 (churn)
    D: 80 from 10-01 - starts on the closing day: in closing MRR, not a retained account
    E: 30 until 07-01 (ends on the opening day: opening 0), back with 40 from 09-01
       (reactivation: returning accounts do not count towards retention)
    F: 100 EUR (enterprise) at 1.10 until 09-14, 1.20 from 09-15: opening 110, closing 120
    """
    w = world
    w.rate("EUR", date(2024, 1, 1), "1.10")
    w.rate("EUR", date(2024, 9, 15), "1.20")
    w.subscription("A", "100", date(2024, 1, 1))
    w.subscription("A", "50", date(2024, 8, 15))
    w.subscription("B", "200", date(2024, 1, 1), date(2024, 9, 1))
    w.subscription("B", "120", date(2024, 9, 1))
    w.subscription("C", "50", date(2024, 2, 1), date(2024, 10, 1))
    w.subscription("D", "80", date(2024, 10, 1))
    w.subscription("E", "30", date(2024, 1, 1), date(2024, 7, 1))
    w.subscription("E", "40", date(2024, 9, 1))
    w.subscription("F", "100", date(2024, 1, 1), currency="EUR", segment="enterprise", region=w.eu)
    rollups_rebuild()
    return w


def value(w, name, period=Q3, **kw):
    return kpi_value(name=name, period=period, user=w.cso, **kw).value


@pytest.mark.django_db
def test_mrr_and_arr_are_closing_mrr(subs):
    # A 150 + B 120 + C 0 + D 80 + E 40 + F 120
    assert value(subs, "mrr") == D("510.00")
    assert value(subs, "arr") == D("6120.00")
    # the previous quarter closes on 07-01: A 100, B 200, C 50, F 110 (E ended that day)
    assert kpi_value(name="mrr", period=Q3, user=subs.cso).previous == D("460.00")


@pytest.mark.django_db
def test_grr_nrr_and_logo_churn(subs):
    # retained accounts (opening > 0): A 100->150, B 200->120, C 50->0, F 110->120
    opening = D("460")
    assert value(subs, "grr") == (D("100") + D("120") + D("0") + D("110")) / opening
    assert value(subs, "nrr") == (D("150") + D("120") + D("0") + D("120")) / opening
    assert value(subs, "logo_churn") == D("1") / D("4")


@pytest.mark.django_db
def test_retention_filters_by_account_segment_and_region(subs):
    w = subs
    assert value(w, "nrr", filters=KpiFilters(segment="enterprise")) == D("120") / D("110")
    assert value(w, "grr", filters=KpiFilters(region=w.eu.pk)) == D("1")
    assert value(w, "mrr", filters=KpiFilters(region=w.na.pk)) == D("390.00")


@pytest.mark.django_db
def test_a_monthly_period_uses_its_own_boundaries(subs):
    # September: opening 09-01 (A 150, B 120, C 50, E 40, F 110), closing 10-01
    # (A 150, B 120, C 0, E 40, F 120)
    assert value(subs, "nrr", period="2024-09") == D("430") / D("470")
    assert value(subs, "logo_churn", period="2024-09") == D("1") / D("5")
    # August: on 09-01 B's 200 has ended and its 120 has started; A expanded 100 -> 150
    assert value(subs, "nrr", period="2024-08") == (D("150") + D("120") + D("50") + D("110")) / D(
        "460"
    )


@pytest.mark.django_db
def test_no_customers_is_no_data(world):
    rollups_rebuild()
    for name in ("grr", "nrr", "logo_churn", "clv"):
        assert value(world, name) is None
    assert value(world, "mrr") == D("0.00")


@pytest.mark.django_db
def test_clv(subs):
    # ARPA at closing: 510 / 5 active accounts (A, B, D, E, F) = 102
    # monthly churn, Oct 2023 - Sep 2024: no customers before Jan (no data); Jan-May 0;
    # June 1/5 (E ends 07-01); Jul, Aug 0; Sep 1/5 (C ends 10-01): mean over 9 months
    churn = (D("0.2") + D("0.2")) / 9
    assert value(subs, "clv") == D("102") * D("0.80") / churn


@pytest.mark.django_db
def test_clv_is_no_data_without_churn(world):
    world.subscription("A", "100", date(2024, 1, 1))
    rollups_rebuild()
    assert value(world, "clv") is None


@pytest.mark.django_db
def test_subscription_in_a_currency_without_rate_fails(world):
    world.subscription("A", "100", date(2024, 1, 1), currency="CHF")
    with pytest.raises(MissingRateError, match="CHF"):
        rollups_rebuild()


@pytest.mark.django_db
def test_nps_counts_categories_within_the_period(world):
    w = world
    for score in (10, 9, 9, 8, 0):
        w.nps("Acme", score, date(2024, 8, 1))
    w.nps("Beta", 6, date(2024, 9, 30), region=w.eu)
    # just outside the quarter on both sides
    w.nps("Acme", 0, date(2024, 6, 30))
    w.nps("Acme", 0, date(2024, 10, 1))
    rollups_rebuild()
    # 3 promoters, 1 passive, 2 detractors of 6: 50% - 33.3% = 16.67
    assert value(w, "nps") == D(100) / D(6)
    assert value(w, "nps", filters=KpiFilters(region=w.na.pk)) == D("40")
    assert value(w, "nps", filters=KpiFilters(region=w.eu.pk)) == D("-100")
    assert value(w, "nps", period="2024-Q1") is None
    result = kpi_value(name="nps", period=Q3, user=w.cso)
    assert result.previous == D("-100")
    assert -100 <= result.value <= 100
