"""Bulk upserts: POST /api/v1/<resource>/bulk/ runs the import (all or nothing)."""

from __future__ import annotations

import pytest

from apps.crm.models import Account, Opportunity, OpportunityHistory
from tests.api.helpers import assert_error_shape, client_for
from tests.factories import AccountFactory, OpportunityFactory

pytestmark = pytest.mark.django_db


def test_accounts_are_created_then_updated_by_external_id(org):
    client = client_for(org.revops)
    rows = [
        {"external_id": "A-1", "name": "Alpha", "segment": "smb"},
        {"external_id": "A-2", "name": "Beta", "segment": "enterprise"},
    ]
    response = client.post("/api/v1/accounts/bulk/", rows, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"created": 2, "updated": 0, "unchanged": 0}
    # the same rows again, one changed
    rows[1]["name"] = "Beta Ltd"
    response = client.post("/api/v1/accounts/bulk/", rows, format="json")
    assert response.json() == {"created": 0, "updated": 1, "unchanged": 1}
    assert Account.objects.get(external_id="A-2").name == "Beta Ltd"


def test_one_bad_row_writes_nothing_and_every_bad_row_is_listed(org):
    rows = [
        {"external_id": "A-1", "name": "Alpha"},
        {"external_id": "A-2"},
        {"external_id": "A-3", "name": "Gamma", "segment": "huge"},
    ]
    response = client_for(org.revops).post("/api/v1/accounts/bulk/", rows, format="json")
    body = assert_error_shape(response, 400)
    assert "nothing was saved" in body["message"]
    problems = {(e["line"], e["field"]) for e in body["extra"]["errors"]}
    assert problems == {(2, "name"), (3, "segment")}
    assert not Account.objects.exists()


def test_bulk_deal_changes_write_api_history(org):
    deal = OpportunityFactory(owner=org.rep, stage=org.open_stage, external_id="D-1")
    row = {
        "external_id": "D-1",
        "name": deal.name,
        "account": deal.account.external_id,
        "owner": org.rep.email,
        "amount": "777.00",
        "currency": "USD",
        "stage": org.won_stage.name,
        "created_date": deal.created_date.isoformat(),
        "close_date": deal.close_date.isoformat(),
    }
    response = client_for(org.executive).post("/api/v1/opportunities/bulk/", [row], format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["updated"] == 1
    deal.refresh_from_db()
    assert deal.stage == org.won_stage and deal.forecast_category == "closed"
    last = OpportunityHistory.objects.filter(opportunity=deal).order_by("-id").first()
    assert last.source == "api" and "stage" in last.changed_fields


@pytest.mark.parametrize("role", ["rep", "manager"])
def test_only_importers_may_bulk_load(org, role):
    response = client_for(getattr(org, role)).post(
        "/api/v1/accounts/bulk/", [{"external_id": "A", "name": "A"}], format="json"
    )
    assert_error_shape(response, 403)
    assert not Account.objects.exists()


@pytest.mark.parametrize("body", [{"external_id": "A"}, [], ["A"], [[1]], "rows"])
def test_the_body_must_be_a_non_empty_list_of_objects(org, body):
    response = client_for(org.revops).post("/api/v1/accounts/bulk/", body, format="json")
    assert_error_shape(response, 400)


def test_too_many_rows_are_refused_before_any_work(org, monkeypatch):
    from apps.api import views

    monkeypatch.setattr(views, "BULK_MAX_ROWS", 2)
    AccountFactory()
    rows = [{"external_id": f"A-{i}", "name": "x"} for i in range(3)]
    body = assert_error_shape(
        client_for(org.revops).post("/api/v1/accounts/bulk/", rows, format="json"), 400
    )
    assert "At most 2 rows" in body["extra"]["fields"]["non_field_errors"][0]
    assert Account.objects.count() == 1
    assert Opportunity.objects.count() == 0
