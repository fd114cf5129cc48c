"""rows_import: the interface the REST API calls (JSON values, positions as lines)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.crm.models import Opportunity
from apps.imports.mapping import identity_mapping
from apps.imports.services import ImportReport, rows_import
from apps.quotas.models import Quota
from tests.factories import ManagerFactory, RepFactory, SuperUserFactory
from tests.imports.conftest import table_state

pytestmark = pytest.mark.django_db

DEAL = {
    "external_id": "API-1",
    "name": "From the API",
    "account": "ACC-1",
    "owner": "ada@example.com",
    "amount": 1234.5,
    "stage": "Prospecting",
    "created_date": "2025-01-01",
    "close_date": "2025-02-01",
}


def test_json_values_are_accepted(crm):
    report = rows_import(kind="opportunities", rows=[DEAL], user=crm.admin, source="api")
    assert isinstance(report, ImportReport)
    assert report.as_dict() == {
        "ok": True,
        "kind": "opportunities",
        "dry_run": False,
        "rows": 1,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "errors": [],
    }
    deal = Opportunity.objects.get(external_id="API-1")
    assert deal.amount == Decimal("1234.50") and deal.history.get().source == "api"


def test_errors_name_the_position_and_nothing_is_written(crm):
    before = table_state()
    rows = [DEAL, {**DEAL, "external_id": "API-2", "amount": -3}, {**DEAL, "external_id": None}]
    report = rows_import(kind="opportunities", rows=rows, user=crm.admin, source="api")
    assert not report.ok
    assert [(e.line, e.field) for e in report.errors] == [(2, "amount"), (3, "external_id")]
    assert report.as_dict()["errors"][0] == {
        "line": 2,
        "field": "amount",
        "message": "negative amount -3: must be zero or more.",
    }
    assert table_state() == before


def test_dry_run_counts_without_writing(crm):
    before = table_state()
    report = rows_import(kind="opportunities", rows=[DEAL], user=crm.admin, dry_run=True)
    assert report.ok and report.dry_run and report.created == 1
    assert table_state() == before


def test_rows_that_are_not_objects(crm):
    report = rows_import(kind="stages", rows=[["a"]], user=crm.admin)
    assert report.errors[0].message == "each row must be an object of field -> value."


def test_empty_list(crm):
    report = rows_import(kind="stages", rows=[], user=crm.admin)
    assert not report.ok and report.errors[0].message == "no rows to import."


@pytest.mark.parametrize("factory", [RepFactory, ManagerFactory])
def test_only_importers(crm, factory):
    with pytest.raises(ApplicationError, match="Only RevOps admins and executives"):
        rows_import(kind="opportunities", rows=[DEAL], user=factory())


def test_superusers_may_import(crm):
    assert rows_import(kind="opportunities", rows=[DEAL], user=SuperUserFactory()).ok


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "widgets"}, "Unknown import kind 'widgets'."),
        ({"source": "fax"}, "Unknown import source 'fax'"),
        ({"mapping": identity_mapping("stages")}, "The mapping is for stages, not opportunities."),
    ],
)
def test_bad_calls_raise(crm, kwargs, message):
    call = {"kind": "opportunities", "rows": [DEAL], "user": crm.admin, **kwargs}
    with pytest.raises(ApplicationError, match=message):
        rows_import(**call)


def test_a_quota_refused_by_the_service_is_a_row_error_and_undoes_everything(crm):
    # given a locked plan of Sales East for the quarter of 2025-02 (the importing RevOps
    # admin is no executive, so the service refuses its months)
    from apps.quotas.models import FiscalPeriod, QuotaPlan
    from apps.quotas.services import fiscal_periods_ensure

    fiscal_periods_ensure(first_year=2024, last_year=2026)
    quarter = FiscalPeriod.objects.get(
        kind=FiscalPeriod.Kind.QUARTER, start_date__lte="2025-02-01", end_date__gte="2025-02-28"
    )
    now = timezone.now()
    QuotaPlan.objects.create(
        team=crm.east,
        period=quarter,
        status=QuotaPlan.Status.LOCKED,
        submitted_at=now,
        approved_at=now,
        locked_at=now,
    )
    free_month = quarter.end_date + dt.timedelta(days=1)
    rows = [
        {"rep": "ada@example.com", "month": f"{free_month:%Y-%m}", "amount": "100"},
        {"rep": "bob@example.com", "month": "2025-02", "amount": "200"},
        {"team": "Sales East", "month": "2025-02", "amount": "300"},
    ]
    before = table_state()
    # when the three are imported
    report = rows_import(kind="quotas", rows=rows, user=crm.admin)
    # then each refusal is reported on its row and the free quota was rolled back too
    assert not report.ok
    refusal = (
        f"2025-02 is locked in the Sales East plan for {quarter.name}; "
        "only an executive may change it."
    )
    assert [(e.line, e.message) for e in report.errors] == [(2, refusal), (3, refusal)]
    assert not Quota.objects.exists()
    assert table_state() == before
