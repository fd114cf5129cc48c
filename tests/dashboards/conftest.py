"""Fixtures of the dashboard tests: the shared hand-built sales book of
:mod:`tests.kpis.books` without its year-ago deal and with Q3 quotas (the KPI tests'
organisation: Company > East (manager mgr, rep_a) > East SMB (rep_b); West (rep_c)).

Q3 2024 (January fiscal year), amounts in USD unless said:
- d1 rep_a won 1000, closes 07-11, Acme (NA, smb), product X; Acme won d7 in May already
- d2 rep_a won 3000, closes 08-20, Beta (EU, enterprise), product Y, expansion: new logo
- d3 rep_b lost 2000, closes 09-05, Acme
- d4 rep_c won 500 EUR at 1.10 = 550.00, closes 09-30, Gamma (EU, smb): new logo
- d5 rep_a open 10000 in Propose, closes 09-15
- d6 rep_b open 4000 in Qualify, closes 08-31
- d7 rep_a won 2000, closes 2024-05-10 (Q2)
Quotas: every Q3 month rep_a 1000, rep_b 500, rep_c 300.
"""

from __future__ import annotations

from datetime import date
from itertools import count

import pytest
from django.core.cache import cache

from apps.kpis.services import rollups_rebuild
from tests.kpis.books import Q3, add_sales_book
from tests.kpis.conftest import World, build_world

__all__ = ["Q3", "add_book", "add_noise"]

_more = count(1)


def add_book(w: World) -> None:
    """The shared sales book without the year-ago deal, with Q3 quotas."""
    add_sales_book(w, quotas=True)


def add_noise(w: World, n: int) -> None:
    """``n`` more won and open deals for rep_b in Q3 on new accounts (a bigger data size)."""
    for i in range(n):
        k = next(_more)
        w.deal(
            owner=w.rep_b,
            amount=str(100 + i),
            stage="won" if i % 2 else "qualify",
            created=date(2024, 6, 1),
            close=date(2024, 7 + i % 3, 10),
            account=f"Noise {k}",
        )


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Cached waterfalls are keyed by ids a rolled-back test database hands out again."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def world(db) -> World:
    return build_world()


@pytest.fixture
def book(world) -> World:
    add_book(world)
    rollups_rebuild()
    return world
