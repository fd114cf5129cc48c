"""The as-of rebuild of deals from history and the ML features derived from it."""

from __future__ import annotations

import math
from datetime import date

import pytest

from apps.forecasting.engine import data, methods, ml
from tests.kpis.conftest import at

AS_OF = date(2024, 8, 15)


@pytest.fixture
def pushed(world):
    # created 1 Jul in qualify closing 1 Aug; pushed to 20 Aug on 10 Jul; propose on 20 Jul;
    # pushed again to 10 Sep on 20 Aug (after as_of) and pulled in to 5 Sep on 25 Aug
    deal = world.deal(
        owner=world.rep_a,
        amount="1000",
        stage="qualify",
        created=date(2024, 7, 1),
        close=date(2024, 8, 1),
    )
    world.move(deal, when=at(date(2024, 7, 10)), close_date=date(2024, 8, 20))
    world.move(deal, when=at(date(2024, 7, 20)), stage="propose")
    world.move(deal, when=at(date(2024, 8, 20)), close_date=date(2024, 9, 10))
    world.move(deal, when=at(date(2024, 8, 25)), close_date=date(2024, 9, 5))
    return world, deal


def test_state_as_of_uses_the_latest_row_before_the_end_of_the_day(pushed):
    world, deal = pushed
    loaded = data.load()
    state = methods.state_with_attributes(loaded, AS_OF).loc[deal.pk]
    assert state["stage"] == world.stages["propose"].pk
    assert data.day_from_number(state["close"]) == date(2024, 8, 20)
    assert state["pushes"] == 1
    # a change at noon on a day is known at the end of that day, not before
    assert data.day_from_number(
        methods.state_with_attributes(loaded, date(2024, 7, 9)).loc[deal.pk]["close"]
    ) == date(2024, 8, 1)
    assert data.day_from_number(
        methods.state_with_attributes(loaded, date(2024, 7, 10)).loc[deal.pk]["close"]
    ) == date(2024, 8, 20)
    # later: two pushes (the pull-in is not a push), as of 31 Aug
    assert methods.state_with_attributes(loaded, date(2024, 8, 31)).loc[deal.pk]["pushes"] == 2
    # before creation the deal does not exist
    assert deal.pk not in methods.state_with_attributes(loaded, date(2024, 6, 30)).index


def test_features_are_measured_as_of_the_day(pushed):
    _world, deal = pushed
    loaded = data.load()
    state = methods.state_with_attributes(loaded, AS_OF).loc[[deal.pk]]
    x = ml.features(
        loaded,
        state,
        day=data.day_number(AS_OF),
        period_end=data.day_number(date(2024, 9, 30)),
        cut=data.cutoff_micros(AS_OF),
    ).iloc[0]
    assert x["pushes"] == 1
    assert x["stage"] == "Propose"
    # in propose since 20 Jul 12:00 until the end of 15 Aug: 26.5 days
    assert x["log_days_in_stage"] == pytest.approx(math.log1p(26.5))
    assert x["log_age"] == pytest.approx(math.log1p(45))
    assert x["days_left"] == 46
    assert x["days_to_close"] == 5
    assert x["log_amount"] == pytest.approx(math.log1p(1000))
    # no deal of the owner had closed in the year before: the company rate (none: 0)
    assert x["owner_win_rate"] == 0.0
