"""Every dashboard page costs a fixed, pinned number of queries (the same at two data
sizes), for the executive (company scope) and for a manager (team scope)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.kpis.services import rollups_rebuild
from tests.dashboards.conftest import Q3, add_noise

# Pinned counts per page and viewer (cold: the page computed, not read from the cache;
# a cached page costs HIT_QUERIES whatever it shows). Postgres
# runs the hand-written report queries in their own atomic block (a savepoint pair and a
# SET LOCAL around each), so its counts are pinned apart.
EXPECTED = {
    "sqlite": {
        ("overview", "cso"): 36,
        ("pipeline", "cso"): 24,
        ("attainment", "cso"): 26,
        ("team", "cso"): 23,
        ("customers", "cso"): 26,
        ("overview", "manager_east"): 29,
        ("pipeline", "manager_east"): 30,
        ("attainment", "manager_east"): 27,
        ("team", "manager_east"): 25,
        ("customers", "manager_east"): 15,
    },
}


HIT_QUERIES = {"sqlite": {"cso": 8, "manager_east": 15}}


@pytest.mark.django_db
@pytest.mark.parametrize("viewer", ["cso", "manager_east"])
@pytest.mark.parametrize("page", ["overview", "pipeline", "attainment", "team", "customers"])
def test_page_query_count_is_pinned_at_two_sizes(
    client, book, page, viewer, django_assert_num_queries
):
    # Given a signed-in viewer whose session and content types are warm
    client.force_login(getattr(book, viewer))
    url = reverse(f"dashboards:{page}")
    params = {"period": Q3, "since": "2024-07-01"}
    client.get(url, params)
    expected = EXPECTED.get(connection.vendor, {}).get((page, viewer))
    counts = []
    for size in ("small", "large"):
        if size == "large":
            add_noise(book, 60)
            rollups_rebuild()
        cache.clear()
        # When the page is rendered
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url, params).status_code == 200
        counts.append(len(captured))
        if expected is not None:
            # Then it costs the pinned number of queries
            with django_assert_num_queries(expected):
                cache.clear()
                assert client.get(url, params).status_code == 200
    # And the same number at both sizes
    assert counts[0] == counts[1]
    # And a page read from the cache costs the session, scope, filter bar and freshness
    # lookups only
    hit = HIT_QUERIES.get(connection.vendor, {}).get(viewer)
    with CaptureQueriesContext(connection) as again:
        assert client.get(url, params).status_code == 200
    if hit is not None:
        assert len(again) == hit
