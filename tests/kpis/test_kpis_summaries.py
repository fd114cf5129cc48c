"""The customer summaries (retention, MRR month, cohort rollups) give exactly what the
account-level rows give, for every span and filter."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import pytest
from django.db import connection

from apps.kpis.models import AccountMrrRollup, CohortRollup
from apps.kpis.selectors import (
    KpiFilters,
    _retention,
    _retention_from_accounts,
    period_parse,
)
from apps.kpis.services import rollups_rebuild
from tests.kpis.test_kpis_property import seed_book

PERIODS = ["2024-07", "2024-Q3", "FY2024", "2023-Q4", "2025-01"]


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [11, 12])
def test_retention_summaries_equal_the_account_rows(world, seed):
    # Given a random book with subscriptions, rebuilt
    seed_book(world, seed)
    rollups_rebuild()
    periods = [period_parse(p) for p in PERIODS]
    for filters in (
        KpiFilters(),
        KpiFilters(region=world.eu.pk),
        KpiFilters(segment="smb"),
        KpiFilters(region=world.na.pk, segment="enterprise"),
    ):
        # When retention is read from the summaries and from the account rows
        fast = _retention(filters, periods)
        slow = _retention_from_accounts(filters, periods)
        # Then every figure is the same
        assert fast == slow, filters
    # And the book has retention to compare (not only empty periods)
    everyone = _retention(KpiFilters(), periods)
    assert any(r.totals.opening > 0 and r.mrr > 0 for r in everyone.values())


@pytest.mark.django_db
def test_a_range_of_another_length_reads_the_account_rows(world, django_assert_num_queries):
    seed_book(world, 13)
    rollups_rebuild()
    two_months = period_parse("2024-07-01..2024-08-31")
    # one query (Postgres: inside a savepoint with SET LOCAL jit = off, so four statements)
    with django_assert_num_queries(4 if connection.vendor == "postgresql" else 1):
        got = _retention(KpiFilters(), [two_months])
    assert got == _retention_from_accounts(KpiFilters(), [two_months])


@pytest.mark.django_db
def test_cohort_rollup_counts_the_paying_accounts_of_each_cohort(world):
    # Given a random book, rebuilt
    seed_book(world, 14)
    rollups_rebuild()
    # When the cohorts are recomputed by hand from the account rows
    paying = list(AccountMrrRollup.objects.filter(mrr__gt=0).values_list("account_id", "month"))
    first: dict[int, date] = {}
    for account, month in paying:
        first[account] = min(month, first.get(account, month))
    expected: dict[tuple[date, date], int] = defaultdict(int)
    for account, month in paying:
        expected[(first[account], month)] += 1
    got: dict[tuple[date, date], int] = defaultdict(int)
    for cohort, month, n in CohortRollup.objects.values_list("cohort", "month", "accounts"):
        got[(cohort, month)] += n
    # Then the rollup holds the same counts
    assert dict(got) == dict(expected)
    assert expected  # the book has paying accounts
