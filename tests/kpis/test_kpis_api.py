"""KPI API: registry listing, values with previous/year-ago/series, visibility, and a
clear 400 for every bad parameter."""

from __future__ import annotations

from datetime import date

import pytest
from rest_framework.test import APIClient

from apps.kpis.registry import REGISTRY
from apps.kpis.services import rollups_rebuild


@pytest.fixture
def api_world(world):
    w = world
    w.rate("EUR", date(2024, 1, 1), "1.10")
    w.deal(
        owner=w.rep_a,
        amount="1000",
        stage="won",
        created=date(2024, 6, 1),
        close=date(2024, 7, 11),
        product=w.product_x,
    )
    w.deal(
        owner=w.rep_c,
        amount="500",
        currency="EUR",
        stage="won",
        created=date(2024, 8, 1),
        close=date(2024, 9, 30),
        account="Gamma",
        region=w.eu,
        segment="enterprise",
    )
    w.deal(
        owner=w.rep_b, amount="300", stage="won", created=date(2024, 3, 1), close=date(2024, 4, 2)
    )
    w.deal(
        owner=w.rep_b, amount="200", stage="lost", created=date(2024, 3, 1), close=date(2024, 8, 2)
    )
    w.deal(
        owner=w.rep_a, amount="700", stage="won", created=date(2023, 7, 1), close=date(2023, 7, 20)
    )
    rollups_rebuild()
    return w


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_list_returns_the_registry(api_world):
    response = client_for(api_world.rep_a).get("/api/v1/kpis/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(REGISTRY)
    names = {k["name"] for k in body["results"]}
    assert {"bookings", "win_rate", "nrr", "clv", "nps", "slipped_deals"} <= names
    nrr = next(k for k in body["results"] if k["name"] == "nrr")
    assert nrr["scopes"] == ["company"] and nrr["filters"] == ["region", "segment"]
    assert nrr["unit"] == "percent" and nrr["direction"] == "up"


@pytest.mark.django_db
def test_detail_for_the_company(api_world):
    response = client_for(api_world.cso).get("/api/v1/kpis/bookings/", {"period": "2024-Q3"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["value"] == "1550.00"  # 1000 + 500 EUR at 1.10
    assert body["previous"] == "300.00" and body["previous_period"] == "2024-Q2"
    assert body["year_ago"] == "700.00" and body["year_ago_period"] == "2023-Q3"
    assert body["unit"] == "money" and body["base_currency"] == "USD"
    assert body["scope"]["kind"] == "company"
    assert body["series"][-1] == {"period": "2024-Q3", "value": "1550.00"}
    assert len(body["series"]) == 8


@pytest.mark.django_db
def test_detail_with_filters_and_fiscal_names(api_world):
    w = api_world
    client = client_for(w.cso)
    eu = client.get("/api/v1/kpis/bookings/", {"period": "2024-Q3", "region": "eu"}).json()
    assert eu["value"] == "550.00" and eu["filters"] == {"region": w.eu.pk}
    assert (
        client.get("/api/v1/kpis/bookings/", {"period": "FY2024", "product": "px"}).json()["value"]
        == "1000.00"
    )
    assert client.get("/api/v1/kpis/bookings/", {"period": "2024-07"}).json()["value"] == "1000.00"
    assert (
        client.get(
            "/api/v1/kpis/bookings/", {"period": "2024-07-01..2024-09-30", "segment": "enterprise"}
        ).json()["value"]
        == "550.00"
    )
    rate = client.get("/api/v1/kpis/win_rate/", {"period": "2024-Q3", "team": w.east.pk}).json()
    assert rate["value"] == "0.500000" and rate["unit"] == "percent"
    assert client.get("/api/v1/kpis/won_deals/", {"period": "2024-Q3"}).json()["value"] == 2
    assert client.get("/api/v1/kpis/nrr/", {"period": "2024-Q3"}).json()["value"] is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"period": "2024-Q5"}, "not a fiscal period"),
        ({"period": "2024-13"}, "month must be 01-12"),
        ({"period": "2024-07-03..2024-08-31"}, "whole months"),
        ({"period": "2024-09-01..2024-07-31"}, "ends before it starts"),
        ({"period": "yesterday..today"}, "not a date range"),
        ({"team": "east"}, "team must be a numeric id"),
        ({"team": "999999"}, "no team with id"),
        ({"region": "MARS"}, "Unknown region"),
        ({"segment": "huge"}, "segment must be one of"),
        ({"deal_type": "upsell"}, "deal_type must be one of"),
        ({"product": "nope"}, "Unknown product"),
        ({"colour": "red"}, "Unknown parameter"),
        ({"stage": "1"}, "Only stage conversion takes a stage"),
    ],
)
def test_bad_parameters_are_400_with_a_reason(api_world, params, reason):
    response = client_for(api_world.cso).get("/api/v1/kpis/bookings/", params)
    assert response.status_code == 400, response.content
    assert reason in response.json()["message"]


@pytest.mark.django_db
def test_unsupported_scope_or_filter_is_400(api_world):
    w = api_world
    client = client_for(w.cso)
    response = client.get("/api/v1/kpis/nrr/", {"rep": w.rep_a.pk})
    assert (
        response.status_code == 400
        and "not available for a rep scope" in response.json()["message"]
    )
    response = client.get("/api/v1/kpis/attainment/", {"region": "NA"})
    assert (
        response.status_code == 400 and "cannot be filtered by region" in response.json()["message"]
    )


@pytest.mark.django_db
def test_unknown_kpi_is_404(api_world):
    response = client_for(api_world.cso).get("/api/v1/kpis/happiness/")
    assert response.status_code == 404
    assert "Unknown KPI" in response.json()["message"]


@pytest.mark.django_db
def test_visibility_is_applied(api_world):
    w = api_world
    rep = client_for(w.rep_a)
    own = rep.get("/api/v1/kpis/bookings/", {"period": "2024-Q3"}).json()
    assert own["scope"] == {"kind": "rep", "team": None, "rep": w.rep_a.pk, "label": "rep_a"}
    assert own["value"] == "1000.00"
    assert (
        rep.get("/api/v1/kpis/bookings/", {"period": "2024-Q3", "rep": w.rep_b.pk}).status_code
        == 403
    )
    assert (
        rep.get("/api/v1/kpis/bookings/", {"period": "2024-Q3", "team": w.east.pk}).status_code
        == 403
    )
    manager = client_for(w.manager_east)
    assert (
        manager.get("/api/v1/kpis/bookings/", {"period": "2024-Q3", "rep": w.rep_b.pk}).status_code
        == 200
    )
    denied = manager.get("/api/v1/kpis/bookings/", {"period": "2024-Q3", "team": w.west.pk})
    assert denied.status_code == 403 and "team" in denied.json()["message"]


@pytest.mark.django_db
def test_anonymous_gets_403_json(api_world):
    response = APIClient().get("/api/v1/kpis/bookings/")
    assert response.status_code == 403
    assert "message" in response.json()
