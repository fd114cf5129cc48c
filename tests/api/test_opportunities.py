"""Deals through the API: visibility per role, who may change what, and history."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from apps.crm.models import Opportunity, OpportunityHistory
from tests.api.helpers import assert_error_shape, client_for
from tests.factories import AccountFactory, OpportunityFactory, ProductFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/opportunities/"


def deal_for(org, owner, **kwargs):
    return OpportunityFactory(owner=owner, stage=org.open_stage, **kwargs)


def new_deal_payload(org, owner, **overrides):
    payload = {
        "external_id": "CRM-1001",
        "name": "Acme renewal",
        "account": AccountFactory().pk,
        "owner": owner.pk,
        "product": ProductFactory().pk,
        "amount": "12500.00",
        "currency": "eur",
        "stage": org.open_stage.pk,
        "deal_type": "renewal",
        "created_date": "2025-02-01",
        "close_date": "2025-06-30",
    }
    return payload | overrides


def test_a_rep_cannot_read_another_reps_deal_by_id(org):
    # given a deal of a peer in the same team
    theirs = deal_for(org, org.peer)
    # when the rep asks for it by id, then it does not exist for them
    hidden = assert_error_shape(client_for(org.rep).get(f"{URL}{theirs.pk}/"), 404)
    # exactly as if it did not exist at all (no hint that the id is taken)
    missing = assert_error_shape(client_for(org.rep).get(f"{URL}{theirs.pk + 1000}/"), 404)
    assert hidden == missing
    # and its history is hidden the same way
    assert_error_shape(client_for(org.rep).get(f"{URL}{theirs.pk}/history/"), 404)


def test_each_role_lists_exactly_the_deals_in_its_scope(org):
    # given one deal per person
    deals = {u.username: deal_for(org, u) for u in (org.rep, org.peer, org.sub_rep, org.outsider)}
    expected = {
        org.rep: {deals[org.rep.username].pk},
        org.manager: {deals[u.username].pk for u in (org.rep, org.peer, org.sub_rep)},
        org.executive: {d.pk for d in deals.values()},
        org.revops: {d.pk for d in deals.values()},
        org.outsider: {deals[org.outsider.username].pk},
    }
    for user, ids in expected.items():
        # when each lists the deals, then they see their scope and nothing else
        response = client_for(user).get(URL)
        assert response.status_code == 200
        assert {row["id"] for row in response.json()["results"]} == ids, user.username


def test_an_executive_creates_a_deal_with_its_first_history_row(org):
    # given a CRM editor and a valid payload
    payload = new_deal_payload(org, org.rep)
    # when they create the deal
    response = client_for(org.revops).post(URL, payload, format="json")
    # then it exists as sent (currency upper-cased, category derived) with an API history row
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["amount"] == "12500.00" and body["currency"] == "EUR"
    assert body["forecast_category"] == "pipeline" and body["outcome"] == "open"
    deal = Opportunity.objects.get(pk=body["id"])
    (row,) = deal.history.all()
    assert (row.changed_fields, row.source, row.changed_by) == ("created", "api", org.revops)


@pytest.mark.parametrize("role", ["rep", "manager"])
def test_reps_and_managers_cannot_create_deals(org, role):
    payload = new_deal_payload(org, org.rep)
    response = client_for(getattr(org, role)).post(URL, payload, format="json")
    assert_error_shape(response, 403)
    assert not Opportunity.objects.filter(external_id="CRM-1001").exists()


def test_a_rep_moves_their_own_deal_and_history_records_it(org):
    # given the rep's open deal
    deal = deal_for(org, org.rep, amount=Decimal("1000.00"))
    # when they move it to won with a new amount
    response = client_for(org.rep).patch(
        f"{URL}{deal.pk}/",
        {"stage": org.won_stage.pk, "amount": "1500.00", "close_date": "2025-03-15"},
        format="json",
    )
    # then the deal is won, closed in the forecast, and the change is one history row
    assert response.status_code == 200, response.json()
    assert response.json()["forecast_category"] == "closed"
    deal.refresh_from_db()
    assert (deal.stage, deal.amount, deal.close_date) == (
        org.won_stage,
        Decimal("1500.00"),
        date(2025, 3, 15),
    )
    last = deal.history.order_by("-changed_at", "-id").first()
    assert last.changed_fields == "stage,amount,close_date,forecast_category"
    assert (last.source, last.changed_by) == ("api", org.rep)


def test_a_rep_cannot_rename_or_reassign_their_deal(org):
    deal = deal_for(org, org.rep, name="Original")
    response = client_for(org.rep).patch(
        f"{URL}{deal.pk}/", {"name": "Renamed", "stage": org.won_stage.pk}, format="json"
    )
    body = assert_error_shape(response, 403)
    assert "name" in body["message"] and "stage" in body["message"]  # what, and what is allowed
    deal.refresh_from_db()
    assert (deal.name, deal.stage) == ("Original", org.open_stage)
    assert deal.history.count() == 1


def test_a_rep_may_send_the_whole_deal_back_with_only_allowed_changes(org):
    # given the rep read their deal
    deal = deal_for(org, org.rep)
    current = client_for(org.rep).get(f"{URL}{deal.pk}/").json()
    # when they PUT it back with a new close date only
    current["close_date"] = "2025-04-30"
    response = client_for(org.rep).put(f"{URL}{deal.pk}/", current, format="json")
    # then that is accepted and only the close date changed
    assert response.status_code == 200, response.json()
    assert deal.history.order_by("-id").first().changed_fields == "close_date"


def test_a_manager_edits_subtree_deals_and_reassigns_only_inside_the_subtree(org):
    deal = deal_for(org, org.sub_rep)
    client = client_for(org.manager)
    # when the manager reassigns to a rep of their subtree, it works
    response = client.patch(f"{URL}{deal.pk}/", {"owner": org.rep.pk}, format="json")
    assert response.status_code == 200, response.json()
    # but a rep outside their subtree is "not found" as an owner, and nothing changes
    body = assert_error_shape(
        client.patch(f"{URL}{deal.pk}/", {"owner": org.outsider.pk}, format="json"), 400
    )
    assert "owner" in body["extra"]["fields"]
    deal.refresh_from_db()
    assert deal.owner == org.rep
    # and a deal outside the subtree does not exist for them
    outside = deal_for(org, org.outsider)
    assert_error_shape(client.patch(f"{URL}{outside.pk}/", {"amount": "1"}, format="json"), 404)


def test_deals_cannot_be_deleted_through_the_api(org):
    deal = deal_for(org, org.rep)
    response = client_for(org.executive).delete(f"{URL}{deal.pk}/")
    assert_error_shape(response, 405)
    assert Opportunity.objects.filter(pk=deal.pk).exists()


def test_the_history_endpoint_lists_snapshots_oldest_first_and_filters_by_time(org):
    # given a deal changed twice through the API
    deal = deal_for(org, org.rep)
    client = client_for(org.executive)
    client.patch(f"{URL}{deal.pk}/", {"amount": "20000.00"}, format="json")
    client.patch(f"{URL}{deal.pk}/", {"stage": org.lost_stage.pk}, format="json")
    # when its history is read
    response = client.get(f"{URL}{deal.pk}/history/")
    # then there are three snapshots in order, each with the state after the change
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["changed_fields"] for r in rows] == [
        "created",
        "amount",
        "stage,forecast_category",
    ]
    assert rows[1]["amount"] == "20000.00" and rows[2]["forecast_category"] == "omitted"
    # and a time filter after the last change leaves nothing
    later = OpportunityHistory.objects.filter(opportunity=deal).order_by("-changed_at").first()
    after = later.changed_at.isoformat().replace("+00:00", "Z")
    filtered = client.get(f"{URL}{deal.pk}/history/", {"changed_after": after})
    assert [r["changed_fields"] for r in filtered.json()["results"]] == ["stage,forecast_category"]


def test_filters_and_ordering_apply_to_the_list(org):
    small = deal_for(org, org.rep, amount=Decimal("100.00"), close_date=date(2025, 2, 1))
    big = deal_for(org, org.peer, amount=Decimal("90000.00"), close_date=date(2025, 5, 1))
    deal_for(org, org.outsider, amount=Decimal("50000.00"), close_date=date(2025, 4, 1))
    client = client_for(org.executive)
    response = client.get(URL, {"team": org.east.pk, "ordering": "amount"})
    assert [r["id"] for r in response.json()["results"]] == [small.pk, big.pk]
    response = client.get(URL, {"amount_min": "60000", "close_date_before": "2025-12-31"})
    assert [r["id"] for r in response.json()["results"]] == [big.pk]
