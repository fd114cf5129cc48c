"""The hand-built sales book shared by the KPI and dashboard tests (one definition, so
both suites pin their hand-computed figures on the same deals).

Organisation of :func:`tests.kpis.conftest.build_world`: Company > East (manager
manager_east, rep_a) > East SMB (rep_b); West (rep_c). Q3 2024 (January fiscal year),
amounts in USD unless said:

- d1 rep_a won 1000, created 06-01 closed 07-11 (40 days), Acme NA smb, product X
- d2 rep_a won 3000, created 07-01 closed 08-20 (50 days), Beta EU enterprise, product Y,
  deal type expansion: a new logo
- d3 rep_b lost 2000, created 05-01 closed 09-05, Acme
- d4 rep_c won 500 EUR at 1.10 = 550.00, created 08-01 closed 09-30 (60 days), Gamma EU
  smb: a new logo
- d5 rep_a open 10000 in Propose (60%), closes 09-15
- d6 rep_b open 4000 in Qualify (25%), closes 08-31
- d7 rep_a won 2000, created 04-10 closed 2024-05-10 (Q2; Acme's first win)
- d8 (``year_ago=True``) rep_b won 1500, created 2023-07-01 closed 2023-08-15, Delta
- quotas (``quotas=True``): every Q3 month rep_a 1000, rep_b 500, rep_c 300
"""

from __future__ import annotations

from datetime import date

from tests.kpis.conftest import World

Q3 = "2024-Q3"


def add_sales_book(w: World, *, year_ago: bool = False, quotas: bool = False) -> World:
    """Write the book above through the app's services (history rows included)."""
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
    if year_ago:
        w.deal(
            owner=w.rep_b,
            amount="1500",
            stage="won",
            created=date(2023, 7, 1),
            close=date(2023, 8, 15),
            account="Delta",
        )
    if quotas:
        for month in ("2024-07", "2024-08", "2024-09"):
            w.quota(month, "1000", rep=w.rep_a)
            w.quota(month, "500", rep=w.rep_b)
            w.quota(month, "300", rep=w.rep_c)
    return w
