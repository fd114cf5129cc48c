"""Sales KPIs pinned on a small hand-built book of deals; every expected value is worked
out by hand in the test from the deals listed in the fixture."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from apps.core.errors import ApplicationError
from apps.core.models import JobRun
from apps.kpis.models import ClosedDealRollup
from apps.kpis.registry import REGISTRY
from apps.kpis.selectors import KpiFilters, KpiPermissionError, kpi_value
from apps.kpis.services import MissingRateError, rollups_rebuild
from tests.kpis.books import add_sales_book
from tests.kpis.conftest import at

D = Decimal
Q3 = "2024-Q3"


@pytest.fixture
def book(world):
    """Q3 2024 (Jul-Sep, January fiscal year):
    d1 rep_a won 1000 USD, created 06-01 closed 07-11 (40 days), Acme NA smb, product X
    d2 rep_a won 3000 USD, created 07-01 closed 08-20 (50 days), Beta EU enterprise, product Y
    d3 rep_b lost 2000 USD, created 05-01 closed 09-05, Acme
    d4 rep_c won 500 EUR at 1.10 = 550.00, created 08-01 closed 09-30 (60 days), Gamma EU
    d5 rep_a open 10000 USD propose (60%), closes 09-15
    d6 rep_b open 4000 USD qualify (25%), closes 08-31
    d7 rep_a won 2000 USD, created 04-10 closed 05-10 (Q2; Acme's first win)
    d8 rep_b won 1500 USD, closed 2023-08-15 (a year ago), Delta
    """
    add_sales_book(world, year_ago=True)
    rollups_rebuild()
    return world


def value(book, name, period=Q3, **kw):
    return kpi_value(name=name, period=period, user=book.cso, **kw).value


@pytest.mark.django_db
def test_closed_deal_kpis_for_the_company(book):
    bookings = D("1000") + D("3000") + D("550.00")
    assert value(book, "bookings") == bookings == D("4550.00")
    assert value(book, "won_deals") == 3
    assert value(book, "lost_deals") == 1
    assert value(book, "win_rate") == D("0.75")
    assert value(book, "win_rate_value") == bookings / (bookings + D("2000"))
    assert value(book, "avg_deal_size") == bookings / 3
    assert value(book, "sales_cycle_mean") == D(40 + 50 + 60) / 3
    assert value(book, "sales_cycle_median") == D("50")
    # Beta and Gamma win for the first time; Acme's first win was d7 in Q2
    assert value(book, "new_logos") == 2
    assert value(book, "new_logos", period="2024-Q2") == 1


def test_previous_year_ago_and_growth(book):
    result = kpi_value(name="bookings", period=Q3, user=book.cso)
    assert (result.previous, result.year_ago) == (D("2000.00"), D("1500.00"))
    assert result.unit == "money"
    assert result.series[-1] == ("2024-Q3", D("4550.00"))
    assert result.series[-2] == ("2024-Q2", D("2000.00"))
    assert len(result.series) == 8
    assert value(book, "bookings_growth") == (D("4550") - D("2000")) / D("2000")
    assert value(book, "bookings_growth_yoy") == (D("4550") - D("1500")) / D("1500")
    # Q1 2024 had no bookings: growth from zero is no data, not infinity
    assert value(book, "bookings_growth", period="2024-Q1") is None


@pytest.mark.django_db
def test_pipeline_kpis(book):
    assert value(book, "open_pipeline") == D("14000.00")
    assert value(book, "weighted_pipeline") == D("6000.00") + D("1000.00")
    # velocity: 2 open deals; trailing 12 months (Oct 2023 - Sep 2024) hold d1, d2, d4, d7
    # won and d3 lost: win rate 4/5, avg deal 6550/4, mean cycle (40+50+60+30)/4 = 45
    expected = 2 * D("0.8") * (D("6550") / 4) / (D(180) / 4)
    assert value(book, "pipeline_velocity") == expected


@pytest.mark.django_db
def test_team_rep_and_filter_scopes(book):
    w = book
    # East holds rep_a (East) and rep_b (East SMB, below East)
    assert value(w, "bookings", team_id=w.east.pk) == D("4000.00")
    assert value(w, "lost_deals", team_id=w.east.pk) == 1
    assert value(w, "bookings", team_id=w.east_sub.pk) == D("0.00")
    assert value(w, "bookings", rep_id=w.rep_c.pk) == D("550.00")
    assert value(w, "bookings", filters=KpiFilters(region=w.eu.pk)) == D("3550.00")
    assert value(w, "bookings", filters=KpiFilters(segment="enterprise")) == D("3000.00")
    assert value(w, "bookings", filters=KpiFilters(product=w.product_x.pk)) == D("1000.00")
    assert value(w, "bookings", filters=KpiFilters(deal_type="expansion")) == D("3000.00")
    assert value(w, "open_pipeline", rep_id=w.rep_b.pk) == D("4000.00")


@pytest.mark.django_db
def test_team_attribution_follows_the_owners_current_team(book):
    w = book
    w.rep_c.team = w.east_sub
    w.rep_c.save()
    # no rebuild needed: the team is resolved when reading
    assert value(w, "bookings", team_id=w.east.pk) == D("4550.00")
    assert value(w, "bookings", team_id=w.west.pk) == D("0.00")


@pytest.mark.django_db
def test_visibility(book):
    w = book
    assert kpi_value(
        name="bookings", period=Q3, user=w.manager_east, team_id=w.east_sub.pk
    ).value == D("0.00")
    with pytest.raises(KpiPermissionError):
        kpi_value(name="bookings", period=Q3, user=w.manager_east, team_id=w.west.pk)
    with pytest.raises(KpiPermissionError):
        kpi_value(name="bookings", period=Q3, user=w.rep_a, rep_id=w.rep_b.pk)
    with pytest.raises(KpiPermissionError):
        kpi_value(name="bookings", period=Q3, user=w.rep_a, team_id=w.east.pk)
    # with no scope asked: a rep gets their own numbers, a manager their team
    assert kpi_value(name="bookings", period=Q3, user=w.rep_a).value == D("4000.00")
    own = kpi_value(name="bookings", period=Q3, user=w.manager_east)
    assert (own.scope.kind, own.value) == ("team", D("4000.00"))


@pytest.mark.django_db
def test_unsupported_scope_or_filter_is_a_clear_error(book):
    w = book
    with pytest.raises(ApplicationError, match="not available for a rep scope"):
        kpi_value(name="nrr", period=Q3, user=w.cso, rep_id=w.rep_a.pk)
    with pytest.raises(ApplicationError, match="cannot be filtered by product"):
        kpi_value(name="nrr", period=Q3, user=w.cso, filters=KpiFilters(product=w.product_x.pk))
    with pytest.raises(ApplicationError, match="cannot be filtered by region"):
        kpi_value(name="attainment", period=Q3, user=w.cso, filters=KpiFilters(region=w.na.pk))
    with pytest.raises(ApplicationError, match="Unknown KPI"):
        kpi_value(name="bogus", period=Q3, user=w.cso)
    with pytest.raises(ApplicationError, match="not a fiscal period"):
        kpi_value(name="bookings", period="Q3-2024", user=w.cso)
    with pytest.raises(ApplicationError, match="whole months"):
        kpi_value(name="bookings", period="2024-07-05..2024-09-30", user=w.cso)


@pytest.mark.django_db
def test_explicit_month_range(book):
    result = kpi_value(name="bookings", period="2024-08-01..2024-09-30", user=book.cso)
    assert result.value == D("3550.00")
    assert result.series == (
        ("2024-08-01..2024-08-31", D("3000.00")),
        ("2024-09-01..2024-09-30", D("550.00")),
    )
    # previous range: June + July; a year ago: Aug + Sep 2023
    assert result.previous == D("1000.00")
    assert result.year_ago == D("1500.00")


@pytest.mark.django_db
def test_every_registered_kpi_answers_for_the_company(book):
    for name, kpi in REGISTRY.items():
        result = kpi_value(name=name, period=Q3, user=book.cso)
        assert result.kpi is kpi
        assert len(result.series) == 8


@pytest.mark.django_db
def test_stage_conversion_counts_skipped_stages_as_passed(world):
    w = world
    july = date(2024, 7, 1)
    # a: prospect -> qualify -> won    b: prospect -> propose (skips qualify) -> lost
    # c: prospect, still there         d: created straight in propose (skips 1 and 2)
    a = w.deal(owner=w.rep_a, amount="100", stage="prospect", created=july, close=date(2024, 12, 1))
    w.move(a, when=at(date(2024, 7, 10)), stage="qualify")
    w.move(a, when=at(date(2024, 8, 10)), stage="won", close_date=date(2024, 8, 10))
    b = w.deal(owner=w.rep_a, amount="100", stage="prospect", created=july, close=date(2024, 12, 1))
    w.move(b, when=at(date(2024, 7, 12)), stage="propose")
    w.move(b, when=at(date(2024, 10, 12)), stage="lost", close_date=date(2024, 10, 12))
    w.deal(owner=w.rep_a, amount="100", stage="prospect", created=july, close=date(2024, 12, 1))
    w.deal(owner=w.rep_b, amount="100", stage="propose", created=july, close=date(2024, 12, 1))
    rollups_rebuild()
    stages = w.stages

    def conv(stage):
        return kpi_value(
            name="stage_conversion", period=Q3, user=w.cso, stage_id=stages[stage].pk
        ).value

    # prospect: a, b, c, d entered in Q3; a, b, d reached qualify or later -> 3/4
    assert conv("prospect") == D("3") / D("4")
    # qualify: a, b (skipped), d (skipped) entered; all reached propose or won -> 3/3
    assert conv("qualify") == D("1")
    # propose: a (won, skipped), b, d entered; only a won -> 1/3
    assert conv("propose") == D("1") / D("3")
    assert kpi_value(name="stage_conversion", period="2024-Q4", user=w.cso).value is None
    with pytest.raises(ApplicationError, match="open stage"):
        kpi_value(name="stage_conversion", period=Q3, user=w.cso, stage_id=stages["won"].pk)


@pytest.mark.django_db
def test_slipped_deals_from_history(world):
    w = world
    # moved from Aug to Oct during Q3: slipped. Moved out in June (before Q3): not in Q3.
    s = w.deal(
        owner=w.rep_a,
        amount="100",
        stage="qualify",
        created=date(2024, 6, 1),
        close=date(2024, 8, 1),
    )
    w.move(s, when=at(date(2024, 8, 20)), close_date=date(2024, 10, 15))
    e = w.deal(
        owner=w.rep_a,
        amount="100",
        stage="qualify",
        created=date(2024, 5, 1),
        close=date(2024, 8, 1),
    )
    w.move(e, when=at(date(2024, 6, 20)), close_date=date(2024, 10, 15))
    # moved out and won within the quarter: not open, not slipped
    x = w.deal(
        owner=w.rep_b,
        amount="100",
        stage="qualify",
        created=date(2024, 6, 1),
        close=date(2024, 9, 1),
    )
    w.move(x, when=at(date(2024, 8, 2)), close_date=date(2024, 11, 1))
    w.move(x, when=at(date(2024, 9, 2)), stage="won", close_date=date(2024, 9, 2))
    rollups_rebuild()
    assert value(w, "slipped_deals") == 1
    assert value(w, "slipped_deals", rep_id=w.rep_b.pk) == 0
    assert value(w, "slipped_deals", period="2024-Q2") == 0


@pytest.mark.django_db
def test_quota_attainment_and_coverage(book):
    w = book
    for month in ("2024-07", "2024-08", "2024-09"):
        w.quota(month, "1000", rep=w.rep_a)
        w.quota(month, "500", rep=w.rep_b)
        w.quota(month, "300", rep=w.rep_c)
    # the East team has its own (top-down) target for August only
    w.quota("2024-08", "2500", team=w.east)
    rollups_rebuild()
    assert value(w, "quota", rep_id=w.rep_a.pk) == D("3000.00")
    assert value(w, "attainment", rep_id=w.rep_a.pk) == D("4000") / D("3000")
    # East: Jul 1500 (reps) + Aug 2500 (team row) + Sep 1500 (reps) = 5500
    assert value(w, "quota", team_id=w.east.pk) == D("5500.00")
    assert value(w, "attainment", team_id=w.east.pk) == D("4000") / D("5500")
    # East coverage: open 14000 / (5500 - 4000)
    assert value(w, "pipeline_coverage", team_id=w.east.pk) == D("14000") / D("1500")
    # company: no company-level row, so the sum of every rep: 3 x 1800 = 5400
    assert value(w, "quota") == D("5400.00")
    # rep_a has met the quota (4000 >= 3000): coverage is no data
    assert value(w, "pipeline_coverage", rep_id=w.rep_a.pk) is None
    # no quota at all for Q2: attainment is no data
    assert value(w, "attainment", period="2024-Q2") is None


@pytest.mark.django_db
def test_a_fiscal_year_starting_in_april(world, settings):
    settings.FISCAL_YEAR_START_MONTH = 4
    w = world
    # FY2025 = Apr 2024 - Mar 2025; its Q1 = Apr-Jun 2024
    w.deal(
        owner=w.rep_a, amount="700", stage="won", created=date(2024, 3, 1), close=date(2024, 3, 31)
    )
    w.deal(
        owner=w.rep_a, amount="900", stage="won", created=date(2024, 3, 1), close=date(2024, 4, 1)
    )
    w.deal(
        owner=w.rep_a, amount="100", stage="won", created=date(2024, 3, 1), close=date(2025, 3, 31)
    )
    rollups_rebuild()
    assert value(w, "bookings", period="2025-Q1") == D("900.00")
    assert value(w, "bookings", period="FY2025") == D("1000.00")
    assert value(w, "bookings", period="FY2024") == D("700.00")
    result = kpi_value(name="bookings", period="2025-Q1", user=w.cso)
    assert result.previous_period.name == "2024-Q4"
    assert result.previous == D("700.00")


@pytest.mark.django_db
def test_mixed_currencies_use_the_rate_on_or_before_the_close_date(world):
    w = world
    w.rate("EUR", date(2024, 7, 1), "1.10")
    w.rate("EUR", date(2024, 7, 10), "1.20")
    w.rate("GBP", date(2024, 7, 1), "1.25")
    # EUR on 07-09 uses 07-01's 1.10; on 07-10 the new 1.20; GBP on 07-31 carries 1.25 forward
    w.deal(
        owner=w.rep_a,
        amount="100",
        currency="EUR",
        stage="won",
        created=date(2024, 7, 1),
        close=date(2024, 7, 9),
    )
    w.deal(
        owner=w.rep_a,
        amount="100",
        currency="EUR",
        stage="won",
        created=date(2024, 7, 1),
        close=date(2024, 7, 10),
    )
    w.deal(
        owner=w.rep_a,
        amount="10.01",
        currency="GBP",
        stage="won",
        created=date(2024, 7, 1),
        close=date(2024, 7, 31),
    )
    w.deal(
        owner=w.rep_a, amount="50", stage="won", created=date(2024, 7, 1), close=date(2024, 7, 31)
    )
    rollups_rebuild()
    # 110.00 + 120.00 + round(12.5125, 2) = 12.51 + 50
    assert value(w, "bookings", period="2024-07") == D("292.51")


@pytest.mark.django_db
def test_a_missing_rate_fails_the_rebuild_and_keeps_the_old_rollups(book):
    w = book
    before = list(ClosedDealRollup.objects.order_by("id").values_list("id", "amount"))
    # a deal in a currency with no rate at all
    w.deal(
        owner=w.rep_a,
        amount="100",
        currency="JPY",
        stage="won",
        created=date(2024, 7, 1),
        close=date(2024, 7, 5),
    )
    with pytest.raises(
        MissingRateError, match=r"No JPY->USD exchange rate on or before 2024-07-05"
    ):
        rollups_rebuild()
    run = JobRun.objects.filter(kind="rollups_full").order_by("-started_at").first()
    assert run.status == JobRun.Status.FAILED
    assert "JPY" in run.error and "2024-07-05" in run.error
    assert list(ClosedDealRollup.objects.order_by("id").values_list("id", "amount")) == before


@pytest.mark.django_db
def test_a_deal_before_the_first_rate_fails_too(world):
    w = world
    w.rate("EUR", date(2024, 7, 1), "1.10")
    w.deal(
        owner=w.rep_a,
        amount="100",
        currency="EUR",
        stage="won",
        created=date(2024, 6, 1),
        close=date(2024, 6, 30),
    )
    with pytest.raises(MissingRateError, match="EUR->USD exchange rate on or before 2024-06-30"):
        rollups_rebuild()
