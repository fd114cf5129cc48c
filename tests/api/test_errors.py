"""Bad input is a 4xx with the JSON error shape, never a server error, and changes nothing."""

from __future__ import annotations

import pytest

from apps.crm.models import Account, Opportunity
from tests.api.helpers import assert_error_shape, client_for
from tests.factories import OpportunityFactory

pytestmark = pytest.mark.django_db


def test_malformed_json_is_a_400(org):
    response = client_for(org.executive).generic(
        "POST", "/api/v1/accounts/", "{not json", content_type="application/json"
    )
    body = assert_error_shape(response, 400)
    assert "JSON" in body["message"]
    assert not Account.objects.exists()


def test_a_form_body_is_a_415(org):
    response = client_for(org.executive).post(
        "/api/v1/accounts/", {"external_id": "A", "name": "A"}, format="multipart"
    )
    assert_error_shape(response, 415)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"amount": "ten"}, "amount"),
        ({"amount": 1e300}, "amount"),
        ({"amount": "12345678901234567890"}, "amount"),
        ({"amount": "0.001"}, "amount"),
        ({"amount": -1}, "amount"),
        ({"close_date": "2025-02-30"}, "close_date"),
        ({"close_date": "yesterday"}, "close_date"),
        ({"close_date": "2024-01-01"}, "close_date"),  # before the created date
        ({"stage": 999999999}, "stage"),
        ({"stage": 2**70}, "stage"),
        ({"stage": "won"}, "stage"),
        ({"owner": [1, 2]}, "owner"),
        ({"forecast_category": "maybe"}, "forecast_category"),
        ({"name": "x" * 201}, "name"),
        ({"name": "nul\x00byte"}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_fields_are_named_and_nothing_changes(org, payload, field):
    deal = OpportunityFactory(owner=org.rep, stage=org.open_stage)
    before = list(Opportunity.objects.values())
    response = client_for(org.executive).patch(
        f"/api/v1/opportunities/{deal.pk}/", payload, format="json"
    )
    body = assert_error_shape(response, 400)
    assert field in body["extra"]["fields"], body
    assert list(Opportunity.objects.values()) == before
    assert deal.history.count() == 1


@pytest.mark.parametrize("body", [[], "text", 42, None, [{"name": "x"}]])
def test_a_body_that_is_not_an_object_is_a_400(org, body):
    response = client_for(org.executive).post("/api/v1/accounts/", body, format="json")
    assert_error_shape(response, 400)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/opportunities/999999/",
        "/api/v1/opportunities/99999999999999999999999/",
        "/api/v1/opportunities/-1/",
        "/api/v1/opportunities/abc/",
        "/api/v1/opportunities/1.5/",
        "/api/v1/opportunities/1/history/extra/",
        "/api/v1/no-such-resource/",
        "/api/v1/kpis/not%20a%0Aslug/",
    ],
)
def test_unknown_ids_and_paths_are_json_404s(org, path):
    assert_error_shape(client_for(org.executive).get(path), 404)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"ordering": "password"}, "ordering"),
        ({"ordering": "amount,,name"}, "ordering"),
        ({"owner": "me"}, "owner"),
        ({"owner": "0"}, "owner"),
        ({"owner": str(2**70)}, "owner"),
        ({"close_date_after": "2025-13-01"}, "close_date_after"),
        ({"amount_min": "lots"}, "amount_min"),
        ({"amount_min": "1e400"}, "amount_min"),
        ({"outcome": "pending"}, "outcome"),
    ],
)
def test_bad_filters_and_ordering_are_named(org, params, name):
    body = assert_error_shape(client_for(org.executive).get("/api/v1/opportunities/", params), 400)
    assert name in body["extra"]["fields"], body


@pytest.mark.parametrize("page", ["0", "-1", "abc", "999", str(2**80)])
def test_bad_page_numbers_are_404s(org, page):
    OpportunityFactory(owner=org.rep, stage=org.open_stage)
    response = client_for(org.executive).get("/api/v1/opportunities/", {"page": page})
    assert_error_shape(response, 404)


def test_pages_hold_page_size_rows_up_to_the_maximum(org):
    for _ in range(3):
        OpportunityFactory(owner=org.rep, stage=org.open_stage)
    client = client_for(org.executive)
    first = client.get("/api/v1/opportunities/", {"page_size": 2}).json()
    assert (first["count"], len(first["results"])) == (3, 2) and first["next"]
    second = client.get("/api/v1/opportunities/", {"page_size": 2, "page": 2}).json()
    assert len(second["results"]) == 1 and second["next"] is None
    ids = [r["id"] for r in first["results"] + second["results"]]
    assert len(set(ids)) == 3  # the tie-breaking order never repeats a row across pages
