"""Lists cost a fixed number of queries whatever their length (no N+1)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.api.helpers import client_for
from tests.factories import (
    OpportunityFactory,
    PerformanceReviewFactory,
    QuotaFactory,
    ReviewRatingFactory,
)

pytestmark = pytest.mark.django_db


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content[:300]
    return len(captured.captured_queries)


def add_rows(org, count: int) -> None:
    for _ in range(count):
        OpportunityFactory(owner=org.rep, stage=org.open_stage)
        QuotaFactory(rep=org.peer)
        review = PerformanceReviewFactory(rep=org.sub_rep, reviewer=org.manager, submitted=True)
        ReviewRatingFactory(review=review)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/opportunities/",
        "/api/v1/quotas/",
        "/api/v1/reviews/",
        "/api/v1/users/",
        "/api/v1/opportunities/?format=csv",
        "/api/v1/reviews/?format=xlsx",
    ],
)
def test_a_manager_list_costs_the_same_for_two_rows_or_twelve(org, url):
    client = client_for(org.manager)
    add_rows(org, 2)
    few = queries_for(client, url)
    add_rows(org, 10)
    many = queries_for(client, url)
    assert few == many, f"{url}: {few} queries for 2 rows, {many} for 12"
    assert many <= 10
