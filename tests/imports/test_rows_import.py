"""rows_import: the interface the REST API calls (JSON values, positions as lines)."""

from __future__ import annotations

from decimal import Decimal

import pytest

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


def test_a_quota_refused_by_the_service_is_a_row_error_and_undoes_everything(crm, monkeypatch):
    # given a quota service that refuses one rep (as a locked plan does)
    from apps.quotas import services

    real = services.quota_set

    def refusing(**kwargs):
        if kwargs.get("rep") == crm.bob:
            raise ApplicationError("The 2025-02 plan for Sales East is locked.")
        return real(**kwargs)

    monkeypatch.setattr(services, "quota_set", refusing)
    rows = [
        {"rep": "ada@example.com", "month": "2025-01", "amount": "100"},
        {"rep": "bob@example.com", "month": "2025-02", "amount": "200"},
    ]
    # when both are imported
    report = rows_import(kind="quotas", rows=rows, user=crm.admin)
    # then the refusal is reported on its row and the other quota was rolled back too
    assert not report.ok
    assert [(e.line, e.message) for e in report.errors] == [
        (2, "The 2025-02 plan for Sales East is locked.")
    ]
    assert not Quota.objects.exists()
