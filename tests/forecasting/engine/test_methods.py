"""Each method on a hand-built book with hand-computed answers, the as-of rule, scopes,
currency conversion and bad input.

The book (USD unless said; stage probabilities prospect 10 %, qualify 25 %, propose 60 %),
forecast for 2024-Q3 (1 Jul - 30 Sep 2024) as of 2024-08-15:

| deal | owner | as of 2024-08-15 | later (after as_of: must not be seen) |
|------|-------|------------------|----------------------------------------|
| d1 | rep_a | propose 10,000, close 15 Sep, created 1 Jun | |
| d2 | rep_a | qualify 4,000, close 30 Aug, created 1 Jul | |
| d3 | rep_c | prospect 1,000 EUR (1.10), close 1 Sep, created 5 Jul | |
| d4 | rep_a | won 3,000 on 20 Jul (propose since 1 May, close 30 Jun) | |
| d5 | rep_a | does not exist | created 20 Aug: propose 50,000 closing 10 Sep |
| d6 | rep_a | propose 2,000, close 20 Sep, created 10 Jul | 25 Aug: qualify, 20,000 |
| d7 | rep_c | prospect 900, close 15 Oct (outside Q3), created 15 Jul | 1 Sep: close 25 Sep |
| d8 | rep_a | qualify 5,000, close 31 Aug, created 1 Aug | won on 20 Aug |
| d9 | rep_c | won 1,500 on 10 Jun (qualify since 10 Apr, close 15 Jun) | |
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from apps.core.errors import ApplicationError
from apps.forecasting.engine import api
from apps.kpis.selectors import KpiFilters, KpiScope, period_parse
from apps.kpis.services import rollups_rebuild
from tests.kpis.conftest import at

AS_OF = date(2024, 8, 15)


def by_method(results):
    return {r.method: r for r in results}


def company() -> KpiScope:
    return KpiScope(kind="company")


def rep(user) -> KpiScope:
    return KpiScope(kind="rep", rep_id=user.pk, owner_ids=frozenset({user.pk}), label=user.username)


Q3 = "2024-Q3"


def test_weighted_by_hand(book):
    # given the book; when forecasting Q3 as of 15 Aug
    results = by_method(
        api.forecasts_compute(scope=company(), period=period_parse(Q3), as_of=AS_OF)
    )
    weighted = results["weighted"]
    # then: won to date is d4 only; open deals are d1, d2, d3, d6 (as it stood), d8 (open then)
    # 10,000 x 0.60 + 4,000 x 0.25 + 1,100 x 0.10 + 2,000 x 0.60 + 5,000 x 0.25 = 9,560
    assert weighted.won_to_date == Decimal("3000.00")
    assert weighted.open_deals == 5
    assert weighted.expected == Decimal("12560.00")
    assert weighted.detail["by_stage"]["Propose"] == {
        "deals": 2,
        "amount": "12000.00",
        "weighted": "7200.00",
        "probability": "60.00",
    }
    assert (weighted.p10, weighted.p50, weighted.p90) == (None, None, None)


def test_historical_by_hand(book):
    # given: the only past snapshot with open deals is Q2 at the same point (16 May):
    #   d4 propose, age 15 (bucket 0-30), not won in Q2; d9 qualify, age 36 (31-90), won.
    # stage rates (k = 10): propose (0 + 10 x 0.60) / 11 = 6/11; qualify (1 + 2.5) / 11
    # cells: qualify/31-90 = (1 + 10 x 3.5/11) / 11 = 46/121; other cells: the stage rate
    results = by_method(
        api.forecasts_compute(scope=company(), period=period_parse(Q3), as_of=AS_OF)
    )
    historical = results["historical"]
    # d1 propose, 75 days -> 6/11 x 10,000 = 5,454.55; d2 qualify, 45 days -> 46/121 x 4,000
    # = 1,520.66; d3 prospect (never seen) -> its default 0.10 x 1,100 = 110.00; d6 propose
    # 36 days -> 6/11 x 2,000 = 1,090.91; d8 qualify, 14 days -> 3.5/11 x 5,000 = 1,590.91
    assert historical.expected == Decimal("3000.00") + Decimal("9767.03")
    assert historical.detail["samples"] == 2
    assert historical.detail["snapshots"] == [
        {"period": "2024-Q2", "as_of": "2024-05-16", "deals": 2}
    ]


def test_monte_carlo_without_model_uses_stage_probabilities_and_run_rate(book):
    results = by_method(
        api.forecasts_compute(scope=company(), period=period_parse(Q3), as_of=AS_OF)
    )
    # too little history for a model: no ML method, and Monte Carlo says why
    assert "ml" not in results
    mc = results["monte_carlo"]
    assert mc.detail["probabilities"] == "stage"
    assert "Not enough history" in mc.detail["ml"]["unavailable"]
    # run-rate: d9 was created and won in Q2, within the year before as_of: 1,500 / 365 a
    # day x 46 days left (16 Aug - 30 Sep) = 189.04; 46 / 365 expected new deals
    assert mc.detail["run_rate"]["created_and_won_deals"] == 1
    assert mc.detail["run_rate"]["days_left"] == 46
    assert mc.detail["run_rate"]["expected"] == "189.04"
    # mean ~ won + sum(p x amount) + run-rate = 3,000 + 9,560 + 189.04 (sd of the mean ~ 80)
    assert abs(mc.expected - Decimal("12749.04")) < Decimal("250")
    assert mc.p10 <= mc.p50 <= mc.p90
    assert mc.p10 >= mc.won_to_date
    # fixed seed: the same inputs give the same range
    again = by_method(api.forecasts_compute(scope=company(), period=period_parse(Q3), as_of=AS_OF))
    assert (again["monte_carlo"].p10, again["monte_carlo"].p90) == (mc.p10, mc.p90)


def test_future_changes_are_not_seen(book):
    # given the planted changes after 15 Aug (d5 created, d6 re-staged and re-priced, d7
    # pulled into Q3, d8 won): the forecast as of 15 Aug equals the one as of 18 Aug
    # (before any of them) and differs from one as of 31 Aug (after them)
    period = period_parse(Q3)
    before = by_method(api.forecasts_compute(scope=company(), period=period, as_of=AS_OF))
    same = by_method(api.forecasts_compute(scope=company(), period=period, as_of=date(2024, 8, 18)))
    after = by_method(api.forecasts_compute(scope=company(), period=period, as_of=date(2024, 9, 2)))
    assert before["weighted"].expected == same["weighted"].expected == Decimal("12560.00")
    # as of 2 Sep: won d4 + d8 = 8,000; open d1 6,000 + d2 1,000 + d3 110 + d5 30,000 +
    # d6 (qualify 20,000) 5,000 + d7 (now in Q3, 900 x 0.10) 90 = 42,200
    assert after["weighted"].won_to_date == Decimal("8000.00")
    assert after["weighted"].expected == Decimal("50200.00")


def test_deal_created_after_as_of_is_absent_from_scores(book):
    scores = api.deal_scores(scope=rep(book.rep_a), period=period_parse(Q3), as_of=AS_OF)
    ids = [s.opportunity_id for s in scores]
    assert book.deals["d5"].pk not in ids
    assert sorted(ids) == sorted(book.deals[k].pk for k in ("d1", "d2", "d6", "d8"))
    # no model yet: stage probabilities, highest first, and the factor says why
    assert [s.probability for s in scores] == [0.6, 0.6, 0.25, 0.25]
    assert all(s.probability == s.stage_probability for s in scores)
    assert scores[0].top_factors[0][0].startswith("Stage probability (Not enough history")


def test_scopes_and_filters(book):
    period = period_parse(Q3)
    a = by_method(api.forecasts_compute(scope=rep(book.rep_a), period=period, as_of=AS_OF))
    # rep_a: won 3,000; open 6,000 + 1,000 + 1,200 + 1,250
    assert a["weighted"].expected == Decimal("12450.00")
    west = KpiScope(
        kind="team", team_id=book.west.pk, owner_ids=frozenset({book.rep_c.pk}), label="West"
    )
    w = by_method(api.forecasts_compute(scope=west, period=period, as_of=AS_OF))
    # rep_c: d3 (EUR 1,000 at 1.10) x 0.10; d7 closes outside Q3 as of then
    assert w["weighted"].expected == Decimal("110.00")
    assert w["weighted"].open_deals == 1
    filtered = by_method(
        api.forecasts_compute(
            scope=company(), period=period, as_of=AS_OF, filters=KpiFilters(deal_type="expansion")
        )
    )
    assert filtered["weighted"].expected == Decimal("0.00")


def test_won_to_date_matches_kpi_bookings(book):
    # given the rollups rebuilt; when the period is over, won to date is the KPI's bookings
    from apps.kpis.selectors import kpi_value

    rollups_rebuild()
    period = period_parse(Q3)
    kpi = kpi_value(name="bookings", period=period, user=book.cso)
    results = by_method(
        api.forecasts_compute(scope=company(), period=period, as_of=date(2024, 10, 31))
    )
    assert results["weighted"].won_to_date == kpi.value == Decimal("8000.00")


def test_missing_rate_is_an_error(book):
    book.deal(
        owner=book.rep_c,
        amount="100",
        currency="GBP",
        stage="prospect",
        created=date(2024, 7, 1),
        close=date(2024, 9, 1),
    )
    with pytest.raises(ApplicationError, match="No GBP->USD exchange rate"):
        api.forecasts_compute(scope=company(), period=period_parse(Q3), as_of=AS_OF)


def test_bad_input(world):
    period = period_parse(Q3)
    with pytest.raises(ApplicationError, match="no deal history"):
        api.forecasts_compute(scope=company(), period=period, as_of=AS_OF)
    with pytest.raises(ApplicationError, match="Unknown scope"):
        api.forecasts_compute(scope=KpiScope(kind="galaxy"), period=period, as_of=AS_OF)
    with pytest.raises(ApplicationError, match="Unknown scope"):
        api.deal_scores(scope="company", period=period, as_of=AS_OF)  # type: ignore[arg-type]
    with pytest.raises(ApplicationError, match="no owners"):
        api.forecasts_compute(scope=KpiScope(kind="team", team_id=1), period=period, as_of=AS_OF)


def test_query_count_is_fixed_once_history_is_loaded(book, django_assert_num_queries):
    period = period_parse(Q3)
    api.forecasts_compute(scope=company(), period=period, as_of=AS_OF)  # loads the history
    # then: the fingerprint check (history, deals, stages, rates, accounts) and the model
    # lookup, whatever the number of deals
    with django_assert_num_queries(6):
        api.forecasts_compute(scope=rep(book.rep_a), period=period, as_of=AS_OF)
    # inside a batch the fingerprint is checked once
    with api.reusing_data():
        api.forecasts_compute(scope=company(), period=period, as_of=AS_OF)
        with django_assert_num_queries(1):
            api.forecasts_compute(scope=rep(book.rep_c), period=period, as_of=AS_OF)


def test_a_new_change_is_seen_by_the_next_call(book):
    # given a forecast for today's view of Q3 after it ended
    period = period_parse(Q3)
    before = by_method(
        api.forecasts_compute(scope=company(), period=period, as_of=date(2024, 10, 31))
    )
    # when a deal is won (history row) the cached history is refreshed
    book.move(
        book.deals["d1"], when=at(date(2024, 9, 10)), stage="won", close_date=date(2024, 9, 10)
    )
    after = by_method(
        api.forecasts_compute(scope=company(), period=period, as_of=date(2024, 10, 31))
    )
    assert after["weighted"].won_to_date == before["weighted"].won_to_date + Decimal("10000.00")
