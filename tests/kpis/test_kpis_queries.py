"""Selectors cost a fixed number of queries whatever the data size."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.kpis.registry import REGISTRY
from apps.kpis.selectors import KpiFilters, kpi_value
from apps.kpis.services import rollups_rebuild
from tests.kpis.test_kpis_property import seed_book

#: Upper bound for one KPI with its previous, year-ago and series values: the rollup query,
#: plus scope (team name, team tree, members) and quota lookups; on Postgres the hand-written
#: report queries add a savepoint, a SET LOCAL and a release around themselves.
MAX_QUERIES = 7


def _counts(w) -> dict[tuple[str, str], int]:
    counts = {}
    for name, kpi in REGISTRY.items():
        asks = [("company", {})]
        if "team" in kpi.scopes:
            asks.append(("team", {"team_id": w.east.pk}))
        for label, kw in asks:
            filters = KpiFilters(region=w.eu.pk) if "region" in kpi.filters else KpiFilters()
            with CaptureQueriesContext(connection) as ctx:
                kpi_value(name=name, period="2024-Q3", user=w.cso, filters=filters, **kw)
            counts[(name, label)] = len(ctx.captured_queries)
    return counts


@pytest.mark.django_db
def test_same_query_count_at_two_data_sizes(world):
    w = world
    # given a small book
    seed_book(w, 3)
    rollups_rebuild()
    small = _counts(w)
    # when the book grows five-fold
    seed_book(w, 4, scale=5, rates=False)
    rollups_rebuild()
    large = _counts(w)
    # then every KPI costs exactly the same number of queries, and few of them
    assert small == large
    assert max(small.values()) <= MAX_QUERIES, small
    # sales KPIs for the company are one rollup query (quota KPIs: plus one for the quota)
    assert small[("bookings", "company")] == 1
    assert small[("attainment", "company")] == 3


@pytest.mark.django_db
def test_bookings_is_one_query_for_the_company(world, django_assert_num_queries):
    seed_book(world, 5)
    rollups_rebuild()
    with django_assert_num_queries(1):
        kpi_value(name="bookings", period="FY2024", user=world.cso)
