"""A small hand-built book of deals and quotas for the dashboard tests (the KPI tests'
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

from apps.kpis.services import rollups_rebuild
from tests.kpis.conftest import World, build_world

Q3 = "2024-Q3"
_more = count(1)


def add_book(w: World) -> None:
    w.rate("EUR", date(2024, 1, 1), "1.05")
    w.rate("EUR", date(2024, 8, 1), "1.10")
    w.deal(
        owner=w.rep_a,
        amount="1000",
        stage="won",
        created=date(2024, 6, 1),
        close=date(2024, 7, 11),
        product=w.product_x,
    )
    w.deal(
        owner=w.rep_a,
        amount="3000",
        stage="won",
        created=date(2024, 7, 1),
        close=date(2024, 8, 20),
        account="Beta",
        region=w.eu,
        segment="enterprise",
        product=w.product_y,
        deal_type="expansion",
    )
    w.deal(
        owner=w.rep_b, amount="2000", stage="lost", created=date(2024, 5, 1), close=date(2024, 9, 5)
    )
    w.deal(
        owner=w.rep_c,
        amount="500",
        currency="EUR",
        stage="won",
        created=date(2024, 8, 1),
        close=date(2024, 9, 30),
        account="Gamma",
        region=w.eu,
    )
    w.deal(
        owner=w.rep_a,
        amount="10000",
        stage="propose",
        created=date(2024, 6, 1),
        close=date(2024, 9, 15),
    )
    w.deal(
        owner=w.rep_b,
        amount="4000",
        stage="qualify",
        created=date(2024, 6, 1),
        close=date(2024, 8, 31),
    )
    w.deal(
        owner=w.rep_a,
        amount="2000",
        stage="won",
        created=date(2024, 4, 10),
        close=date(2024, 5, 10),
    )
    for month in ("2024-07", "2024-08", "2024-09"):
        w.quota(month, "1000", rep=w.rep_a)
        w.quota(month, "500", rep=w.rep_b)
        w.quota(month, "300", rep=w.rep_c)


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


@pytest.fixture
def world(db) -> World:
    return build_world()


@pytest.fixture
def book(world) -> World:
    add_book(world)
    rollups_rebuild()
    return world
