"""Selectors cost a fixed number of queries whatever the data size."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.errors import ApplicationError
from apps.kpis.registry import REGISTRY
from apps.kpis.selectors import KpiFilters, kpi_value, scope_resolve
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


@pytest.mark.django_db
def test_a_resolved_scope_is_not_resolved_again(world, django_assert_num_queries):
    # Given a team scope resolved once, as a page does for all its figures
    seed_book(world, 5)
    rollups_rebuild()
    scope = scope_resolve(user=world.cso, team_id=world.east.pk)
    by_ids = kpi_value(name="bookings", period="FY2024", user=world.cso, team_id=world.east.pk)
    # When a KPI is asked with that scope, then only the rollup query runs
    with django_assert_num_queries(1):
        given = kpi_value(name="bookings", period="FY2024", user=world.cso, scope=scope)
    # And the answer is the one asked by team id
    assert given.value == by_ids.value and given.series == by_ids.series
    assert given.scope == by_ids.scope


@pytest.mark.django_db
def test_a_scope_and_a_team_together_are_refused(world):
    scope = scope_resolve(user=world.cso, team_id=world.east.pk)
    with pytest.raises(ApplicationError, match="not both"):
        kpi_value(name="bookings", period="FY2024", user=world.cso, scope=scope, rep_id=1)
