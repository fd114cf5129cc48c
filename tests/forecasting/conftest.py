"""A hand-built book for the forecasting tests, on the KPI tests' organisation:
Company (cso) > East (manager mgr; rep_a) > East SMB (rep_b); Company > West (rep_c).

P is the fiscal quarter containing today (calls are made while a period is open), S its
first day. Amounts in USD (the base currency):

| owner | won in P | open Commit | open Best case | open Pipeline |
|-------|----------|-------------|----------------|---------------|
| rep_a | 1000     | 5000        | 2000           | 9000          |
| rep_b | 300      | 700         | 400            |               |
| rep_c | 200      | 1500        |                |               |

plus rep_a: an open Commit deal of 8000 closing next quarter (outside P) and a deal won
the quarter before (4000, outside P).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from apps.crm.models import Opportunity
from apps.kpis.selectors import KpiPeriod, period_parse, period_shift
from apps.kpis.services import rollups_rebuild
from apps.quotas import fiscal
from tests.kpis.conftest import World, at, build_world


def current_period() -> KpiPeriod:
    today = timezone.localdate()
    quarter = fiscal.period_containing(today, "quarter", settings.FISCAL_YEAR_START_MONTH)
    return period_parse(quarter.name)


@dataclass
class Book:
    w: World
    period: KpiPeriod
    deals: dict[str, Opportunity]

    def __getattr__(self, name):
        return getattr(self.w, name)


def _deal(w: World, *, owner, amount, stage, close: date, category: str | None = None):
    created = close - timedelta(days=60)
    deal = w.deal(owner=owner, amount=amount, stage=stage, created=created, close=close)
    if category is not None:
        deal = w.move(deal, when=at(created, 13), forecast_category=category)
    return deal


def build_book(w: World) -> Book:
    p = current_period()
    s = p.start
    nxt = period_shift(p, 1)
    prev = period_shift(p, -1)
    deals = {
        "a_won": _deal(w, owner=w.rep_a, amount="1000", stage="won", close=s + timedelta(days=1)),
        "a_commit": _deal(
            w, owner=w.rep_a, amount="5000", stage="propose", close=p.end, category="commit"
        ),
        "a_best": _deal(
            w, owner=w.rep_a, amount="2000", stage="qualify", close=p.end, category="best_case"
        ),
        "a_pipe": _deal(w, owner=w.rep_a, amount="9000", stage="prospect", close=p.end),
        "b_won": _deal(w, owner=w.rep_b, amount="300", stage="won", close=s + timedelta(days=2)),
        "b_commit": _deal(
            w, owner=w.rep_b, amount="700", stage="propose", close=p.end, category="commit"
        ),
        "b_best": _deal(
            w, owner=w.rep_b, amount="400", stage="qualify", close=p.end, category="best_case"
        ),
        "c_won": _deal(w, owner=w.rep_c, amount="200", stage="won", close=s + timedelta(days=3)),
        "c_commit": _deal(
            w, owner=w.rep_c, amount="1500", stage="propose", close=p.end, category="commit"
        ),
        "a_next": _deal(
            w, owner=w.rep_a, amount="8000", stage="propose", close=nxt.end, category="commit"
        ),
        "a_before": _deal(w, owner=w.rep_a, amount="4000", stage="won", close=prev.end),
    }
    rollups_rebuild()
    return Book(w, p, deals)


@pytest.fixture(autouse=True)
def _own_outlook_cache(monkeypatch):
    """Outlooks are cached (Redis when REDIS_URL is set, shared by test runs and
    processes): each test gets keys of its own."""
    from apps.forecasting import views

    monkeypatch.setattr(
        views, "OUTLOOK_CACHE_PREFIX", f"forecasting:test-outlook:{uuid.uuid4().hex}:"
    )


@pytest.fixture
def world(db) -> World:
    return build_world()


@pytest.fixture
def book(world) -> Book:
    return build_book(world)


@pytest.fixture
def fake_engine(monkeypatch):
    """Replace the forecast engine's API by :class:`tests.forecasting.fake_engine.FakeEngine`."""
    from apps.forecasting import services
    from tests.forecasting.fake_engine import FakeEngine

    fake = FakeEngine()
    monkeypatch.setattr(services, "engine_api", lambda: fake)
    return fake
