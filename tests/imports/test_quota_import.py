"""Quota imports write through quotas_set_bulk: the rules of quota_set for every row, in a
fixed number of queries whatever the number of rows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.imports.services import rows_import
from apps.quotas.models import Quota, QuotaChange
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def quota_rows(crm, reps, months: int, amount: str) -> list[dict[str, str]]:
    months_ = [f"2025-{m:02d}" for m in range(1, months + 1)]
    rows = [{"rep": rep.email, "month": m, "amount": amount} for rep in reps for m in months_]
    return rows + [{"team": crm.east.name, "month": m, "amount": amount} for m in months_]


def test_a_quota_import_costs_the_same_queries_for_9_or_56_rows(crm):
    # given six reps of Sales East, one with a quota for 2025-01
    reps = [
        UserFactory(username=f"rep{n}", email=f"rep{n}@example.com", team=crm.east)
        for n in range(6)
    ]
    assert rows_import(kind="quotas", rows=quota_rows(crm, reps[:1], 1, "1"), user=crm.admin).ok

    def queries(reps_: list, months: int, amount: str) -> tuple[int, int, int]:
        rows = quota_rows(crm, reps_, months, amount)
        with CaptureQueriesContext(connection) as captured:
            report = rows_import(kind="quotas", rows=rows, user=crm.admin)
        assert report.ok, report.errors
        return len(captured), report.created, report.updated

    # when 9 rows (2 reps and their team, 3 months) and then 56 rows (6 reps and the
    # team, 8 months) are imported, each creating some quotas and changing others
    # (SQLite splits an INSERT above 999 values, so the larger file stays below that)
    small = queries(reps[:2], 3, "100")
    large = queries(reps, 8, "250.50")
    # then both cost the same number of queries
    assert small[1:] == (7, 2) and large[1:] == (47, 9)
    assert small[0] == large[0]
    # and every quota and its change history is there
    assert Quota.objects.filter(rep__in=reps).count() == 48
    assert set(Quota.objects.filter(rep__in=reps).values_list("amount", flat=True)) == {
        Decimal("250.50")
    }
    assert list(
        QuotaChange.objects.filter(rep=reps[0], month__name="2025-01")
        .order_by("id")
        .values_list("old_value", "new_value")
    ) == [("", "1.00"), ("1.00", "100.00"), ("100.00", "250.50")]
