"""Reference and customer records (accounts, products, stages, subscriptions, NPS): full
CRUD for CRM editors, read-only for everyone else, and model rules enforced as 400s."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from apps.crm.models import Account, Product, Stage
from apps.customers.models import NpsResponse, Subscription
from tests.api.helpers import assert_error_shape, client_for
from tests.factories import (
    AccountFactory,
    NpsResponseFactory,
    OpportunityFactory,
    ProductFactory,
    RegionFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db


def _account_payload():
    return {"external_id": "ACME", "name": "Acme", "segment": "enterprise", "country": "de"}


def _subscription_payload():
    return {
        "external_id": "SUB-1",
        "account": AccountFactory().pk,
        "product": ProductFactory().pk,
        "mrr": "1200.50",
        "currency": "usd",
        "start_date": "2025-01-01",
        "end_date": None,
    }


def _nps_payload():
    return {
        "external_id": "NPS-1",
        "account": AccountFactory().pk,
        "score": 10,
        "comment": "Great",
        "responded_on": "2025-03-02",
    }


# (url, model, payload factory, field to change, new value, as stored)
RESOURCES = [
    ("accounts", Account, _account_payload, "name", "Acme GmbH", "Acme GmbH"),
    (
        "products",
        Product,
        lambda: {"external_id": "P-1", "name": "Platform", "family": "Core"},
        "family",
        "Add-on",
        "Add-on",
    ),
    (
        "stages",
        Stage,
        lambda: {"name": "Proposal", "order": 3, "outcome": "open", "probability": "40.00"},
        "probability",
        "55.50",
        Decimal("55.50"),
    ),
    ("subscriptions", Subscription, _subscription_payload, "mrr", "1300.00", Decimal("1300.00")),
    ("nps-responses", NpsResponse, _nps_payload, "score", 6, 6),
]


@pytest.mark.parametrize(
    ("name", "model", "payload", "field", "value", "stored"),
    RESOURCES,
    ids=[r[0] for r in RESOURCES],
)
def test_crud_round_trip_for_a_crm_editor(org, name, model, payload, field, value, stored):
    client = client_for(org.revops)
    url = f"/api/v1/{name}/"
    # create
    created = client.post(url, payload(), format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    # read (detail and list)
    assert client.get(f"{url}{pk}/").json()["id"] == pk
    assert pk in [row["id"] for row in client.get(url).json()["results"]]
    # update (PATCH one field, then PUT the whole record back unchanged)
    patched = client.patch(f"{url}{pk}/", {field: value}, format="json")
    assert patched.status_code == 200, patched.json()
    assert getattr(model.objects.get(pk=pk), field.replace("-", "_")) == stored
    whole = client.get(f"{url}{pk}/").json()
    assert client.put(f"{url}{pk}/", whole, format="json").status_code == 200
    # delete
    assert client.delete(f"{url}{pk}/").status_code == 204
    assert not model.objects.filter(pk=pk).exists()


@pytest.mark.parametrize("role", ["rep", "manager"])
@pytest.mark.parametrize(("name", "payload"), [(r[0], r[2]) for r in RESOURCES])
def test_only_crm_editors_write_records(org, role, name, payload):
    client = client_for(getattr(org, role))
    # everyone signed in reads them
    assert client.get(f"/api/v1/{name}/").status_code == 200
    # but a write is refused before anything is validated or saved
    body = payload()
    before = {model: model.objects.count() for _, model, *_ in RESOURCES}
    assert_error_shape(client.post(f"/api/v1/{name}/", body, format="json"), 403)
    assert before == {model: model.objects.count() for _, model, *_ in RESOURCES}


def test_codes_are_normalised_and_checked(org):
    client = client_for(org.executive)
    response = client.post("/api/v1/accounts/", _account_payload(), format="json")
    assert response.json()["country"] == "DE"
    body = assert_error_shape(
        client.post(
            "/api/v1/accounts/",
            _account_payload() | {"external_id": "X", "country": "D1"},
            format="json",
        ),
        400,
    )
    assert "country" in body["extra"]["fields"]


def test_a_duplicate_external_id_is_a_field_error(org):
    AccountFactory(external_id="ACME")
    body = assert_error_shape(
        client_for(org.executive).post("/api/v1/accounts/", _account_payload(), format="json"),
        400,
    )
    assert "external_id" in body["extra"]["fields"]
    assert Account.objects.filter(external_id="ACME").count() == 1


def test_stage_probability_must_match_its_outcome(org):
    body = assert_error_shape(
        client_for(org.executive).post(
            "/api/v1/stages/",
            {"name": "Closed won", "order": 50, "outcome": "won", "probability": "90"},
            format="json",
        ),
        400,
    )
    assert body["extra"]["fields"]["probability"] == ["A won stage is 100 percent."]
    assert not Stage.objects.filter(name="Closed won").exists()


def test_a_subscription_must_end_after_it_starts(org):
    payload = _subscription_payload() | {"start_date": "2025-03-01", "end_date": "2025-03-01"}
    body = assert_error_shape(
        client_for(org.executive).post("/api/v1/subscriptions/", payload, format="json"), 400
    )
    assert "end_date" in body["extra"]["fields"]


def test_deleting_a_record_still_in_use_is_refused_and_changes_nothing(org):
    account = AccountFactory(name="Busy")
    OpportunityFactory(account=account, owner=org.rep, stage=org.open_stage)
    body = assert_error_shape(
        client_for(org.executive).delete(f"/api/v1/accounts/{account.pk}/"), 400
    )
    assert "Busy" in body["message"] and "opportunities" in body["message"]
    assert Account.objects.filter(pk=account.pk).exists()


def test_record_filters(org):
    na, emea = RegionFactory(code="NA"), RegionFactory(code="EMEA")
    AccountFactory(name="North", region=na, segment="smb")
    south = AccountFactory(name="South", region=emea, segment="enterprise")
    client = client_for(org.rep)
    rows = client.get("/api/v1/accounts/", {"region": emea.pk}).json()["results"]
    assert [r["id"] for r in rows] == [south.pk]
    rows = client.get("/api/v1/accounts/", {"segment": "smb", "name": "nor"}).json()["results"]
    assert [r["name"] for r in rows] == ["North"]
    # subscriptions active on a day: start <= day < end
    ended = SubscriptionFactory(start_date="2025-01-01", end_date="2025-02-01")
    running = SubscriptionFactory(start_date="2025-01-15", end_date=None)
    on_feb_1 = client.get("/api/v1/subscriptions/", {"active_on": "2025-02-01"}).json()
    assert [r["id"] for r in on_feb_1["results"]] == [running.pk]
    on_jan_20 = client.get("/api/v1/subscriptions/", {"active_on": "2025-01-20"}).json()
    assert {r["id"] for r in on_jan_20["results"]} == {ended.pk, running.pk}
    # NPS detractors only
    NpsResponseFactory(score=3)
    NpsResponseFactory(score=9)
    rows = client.get("/api/v1/nps-responses/", {"score_max": 6}).json()["results"]
    assert [r["score"] for r in rows] == [3]


def test_customer_record_changes_queue_the_kpi_rollups_they_affect(
    org, monkeypatch, django_capture_on_commit_callbacks
):
    from apps.kpis import services as kpi_services

    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(kpi_services, "rollups_nps_changed", lambda **kw: calls.append(("nps", kw)))
    monkeypatch.setattr(
        kpi_services,
        "rollups_subscription_changed",
        lambda **kw: calls.append(("subscriptions", kw)),
    )
    client = client_for(org.revops)
    # an NPS answer created, moved to another month, then deleted
    with django_capture_on_commit_callbacks(execute=True):
        pk = client.post("/api/v1/nps-responses/", _nps_payload(), format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        client.patch(f"/api/v1/nps-responses/{pk}/", {"responded_on": "2025-05-20"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        client.delete(f"/api/v1/nps-responses/{pk}/")
    assert calls == [
        ("nps", {"responded_on": date(2025, 3, 2)}),
        ("nps", {"responded_on": date(2025, 3, 2)}),
        ("nps", {"responded_on": date(2025, 5, 20)}),
        ("nps", {"responded_on": date(2025, 5, 20)}),
    ]
    # a subscription that ends: both its old and new ranges are queued
    calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        pk = client.post("/api/v1/subscriptions/", _subscription_payload(), format="json").json()[
            "id"
        ]
        client.patch(f"/api/v1/subscriptions/{pk}/", {"end_date": "2025-07-01"}, format="json")
    assert calls == [
        ("subscriptions", {"start_date": date(2025, 1, 1), "end_date": None}),
        ("subscriptions", {"start_date": date(2025, 1, 1), "end_date": None}),
        ("subscriptions", {"start_date": date(2025, 1, 1), "end_date": date(2025, 7, 1)}),
    ]
