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
# a cached page costs HIT_QUERIES whatever it shows), the same on SQLite and Postgres.
PINNED = {
    ("overview", "cso"): 29,
    ("pipeline", "cso"): 19,
    ("attainment", "cso"): 19,
    ("team", "cso"): 16,
    ("customers", "cso"): 21,
    ("overview", "manager_east"): 17,
    ("pipeline", "manager_east"): 19,
    ("attainment", "manager_east"): 15,
    ("team", "manager_east"): 13,
    ("customers", "manager_east"): 4,
}
# On Postgres the pipeline page's waterfall rebuild runs without JIT
# (apps.core.db.without_jit): a savepoint, SET LOCAL and its release, 3 statements more.
EXPECTED = {
    "sqlite": PINNED,
    "postgresql": {
        key: count + (3 if key[0] == "pipeline" else 0) for key, count in PINNED.items()
    },
}

# A hit: the session and the user (as any signed-in page), the frame's one query (which
# has the team table for the scope check) and, for a manager, the visibility policy's
# one.
HIT = {"cso": 3, "manager_east": 4}
HIT_QUERIES = {"sqlite": HIT, "postgresql": HIT}


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
