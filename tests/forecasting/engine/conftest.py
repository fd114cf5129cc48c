"""Fixtures for the forecast engine tests: the KPI tests' hand-built organisation and
stages, and a clean engine cache per test (the engine memoises loaded history)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from apps.forecasting.engine import data, ml
from tests.kpis.conftest import World, at, build_world


@pytest.fixture(autouse=True)
def _fresh_engine_cache():
    data.cache_clear()
    with ml._loaded_lock:
        ml._loaded.clear()
    yield
    data.cache_clear()


@pytest.fixture
def world(db) -> World:
    return build_world()


@pytest.fixture
def book(world):
    """The hand-built book described in test_methods.py."""
    w = world
    w.rate("EUR", date(2024, 1, 1), "1.10")
    deals = {}
    deals["d1"] = w.deal(
        owner=w.rep_a,
        amount="10000",
        stage="propose",
        created=date(2024, 6, 1),
        close=date(2024, 9, 15),
    )
    deals["d2"] = w.deal(
        owner=w.rep_a,
        amount="4000",
        stage="qualify",
        created=date(2024, 7, 1),
        close=date(2024, 8, 30),
    )
    deals["d3"] = w.deal(
        owner=w.rep_c,
        amount="1000",
        currency="EUR",
        stage="prospect",
        created=date(2024, 7, 5),
        close=date(2024, 9, 1),
    )
    d4 = w.deal(
        owner=w.rep_a,
        amount="3000",
        stage="propose",
        created=date(2024, 5, 1),
        close=date(2024, 6, 30),
    )
    w.move(d4, when=at(date(2024, 7, 20)), stage="won", close_date=date(2024, 7, 20))
    deals["d4"] = d4
    deals["d5"] = w.deal(
        owner=w.rep_a,
        amount="50000",
        stage="propose",
        created=date(2024, 8, 20),
        close=date(2024, 9, 10),
    )
    d6 = w.deal(
        owner=w.rep_a,
        amount="2000",
        stage="propose",
        created=date(2024, 7, 10),
        close=date(2024, 9, 20),
    )
    w.move(d6, when=at(date(2024, 8, 25)), stage="qualify", amount=Decimal("20000"))
    deals["d6"] = d6
    d7 = w.deal(
        owner=w.rep_c,
        amount="900",
        stage="prospect",
        created=date(2024, 7, 15),
        close=date(2024, 10, 15),
    )
    w.move(d7, when=at(date(2024, 9, 1)), close_date=date(2024, 9, 25))
    deals["d7"] = d7
    d8 = w.deal(
        owner=w.rep_a,
        amount="5000",
        stage="qualify",
        created=date(2024, 8, 1),
        close=date(2024, 8, 31),
    )
    w.move(d8, when=at(date(2024, 8, 20)), stage="won", close_date=date(2024, 8, 20))
    deals["d8"] = d8
    d9 = w.deal(
        owner=w.rep_c,
        amount="1500",
        stage="qualify",
        created=date(2024, 4, 10),
        close=date(2024, 6, 15),
    )
    w.move(d9, when=at(date(2024, 6, 10)), stage="won", close_date=date(2024, 6, 10))
    deals["d9"] = d9
    w.deals = deals
    return w
