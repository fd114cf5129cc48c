"""POST /api/v1/opportunities/bulk/: deals in bulk, in a fixed number of queries, with the
history, visibility and all-or-nothing rules of the one-deal services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.crm import services as crm_services
from apps.crm.models import Opportunity, OpportunityHistory
from apps.crm.services import opportunity_create, opportunity_update
from tests.api.helpers import assert_error_shape, client_for
from tests.factories import (
    AccountFactory,
    ExchangeRateFactory,
    OpportunityFactory,
    ProductFactory,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/opportunities/bulk/"
HISTORY_COLUMNS = (
    "changed_fields",
    "source",
    "changed_by_id",
    "stage_id",
    "amount",
    "currency",
    "close_date",
    "owner_id",
    "forecast_category",
)


def row_for(deal: Opportunity, **changes) -> dict:
    """The deal as a bulk item (references by natural key), with ``changes`` applied."""
    row = {
        "external_id": deal.external_id,
        "name": deal.name,
        "account": deal.account.external_id,
        "owner": deal.owner.email,
        "product": deal.product.external_id if deal.product else "",
        "amount": str(deal.amount),
        "currency": deal.currency,
        "stage": deal.stage.name,
        "forecast_category": deal.forecast_category,
        "deal_type": deal.deal_type,
        "source": deal.source,
        "created_date": deal.created_date.isoformat(),
        "close_date": deal.close_date.isoformat(),
        "lost_reason": deal.lost_reason,
    }
    return row | changes


def new_row(org, external_id: str, **changes) -> dict:
    account = AccountFactory()
    return {
        "external_id": external_id,
        "name": f"New {external_id}",
        "account": account.external_id,
        "owner": org.rep.email,
        "amount": "1500.00",
        "currency": "USD",
        "stage": org.open_stage.name,
        "created_date": "2025-02-01",
        "close_date": "2025-06-30",
    } | changes


def history_of(deal_id: int) -> list[tuple]:
    rows = OpportunityHistory.objects.filter(opportunity_id=deal_id).order_by("id")
    return list(rows.values_list(*HISTORY_COLUMNS))


def mixed_batch(org, size: int, tag: str) -> list[dict]:
    """Half new deals, half changes to stored ones (stage, amount, close date, owner)."""
    rows = []
    for i in range(size // 2):
        deal = OpportunityFactory(owner=org.rep, stage=org.open_stage, external_id=f"{tag}-U{i}")
        rows.append(
            row_for(
                deal,
                stage=org.won_stage.name,
                amount="2500.00",
                close_date="2025-04-30",
                owner=org.peer.email,
            )
        )
    rows += [new_row(org, f"{tag}-N{i}") for i in range(size - size // 2)]
    return rows


def test_a_batch_costs_the_same_queries_for_5_deals_or_50(org, django_assert_num_queries):
    client = client_for(org.executive)
    few = mixed_batch(org, 5, "FEW")
    many = mixed_batch(org, 50, "MANY")
    with CaptureQueriesContext(connection) as captured:
        response = client.post(URL, few, format="json")
    assert response.json() == {"created": 3, "updated": 2, "unchanged": 0}
    with django_assert_num_queries(len(captured.captured_queries)):
        response = client.post(URL, many, format="json")
    assert response.json() == {"created": 25, "updated": 25, "unchanged": 0}
    assert len(captured.captured_queries) <= 25


def test_a_manager_batch_costs_the_same_queries_whatever_its_owners(org, django_assert_num_queries):
    # The deals of one rep, then of three people: the policy is asked per owner, and a
    # manager's scope must not be resolved again for each of them.
    client = client_for(org.manager)
    owners = [org.rep, org.peer, org.sub_rep]
    few = [
        row_for(OpportunityFactory(owner=org.rep, stage=org.open_stage), amount="1.00")
        for _ in range(5)
    ]
    many = [
        row_for(OpportunityFactory(owner=owners[i % 3], stage=org.open_stage), amount="1.00")
        for i in range(50)
    ]
    with CaptureQueriesContext(connection) as captured:
        assert client.post(URL, few, format="json").json()["updated"] == 5
    with django_assert_num_queries(len(captured.captured_queries)):
        assert client.post(URL, many, format="json").json()["updated"] == 50


def test_history_rows_equal_what_deal_by_deal_updates_write(org):
    # Given twin deals: one of each pair changes through the bulk call, the other
    # through opportunity_update, with the same changes.
    changes = [
        {"stage": org.won_stage},  # stage and category change
        {"amount": Decimal("777.00"), "close_date": dt.date(2025, 5, 31)},
        {"name": "Renamed"},  # not tracked: no history row
        {"owner": org.peer, "forecast_category": "commit"},
        {},  # nothing changes
    ]
    bulk_rows = []
    for i, change in enumerate(changes):
        twin = OpportunityFactory(owner=org.rep, stage=org.open_stage, external_id=f"SVC-{i}")
        deal = OpportunityFactory(
            owner=org.rep,
            stage=org.open_stage,
            external_id=f"API-{i}",
            account=twin.account,
            product=twin.product,
        )
        if change:
            opportunity_update(
                opportunity=twin, changed_by=org.executive, history_source="api", **change
            )
        as_row = {
            k: (v.name if k == "stage" else v.email if k == "owner" else str(v))
            for k, v in change.items()
        }
        bulk_rows.append(row_for(deal, **as_row))

    response = client_for(org.executive).post(URL, bulk_rows, format="json")

    assert response.json() == {"created": 0, "updated": 4, "unchanged": 1}
    for i in range(len(changes)):
        twin = Opportunity.objects.get(external_id=f"SVC-{i}")
        deal = Opportunity.objects.get(external_id=f"API-{i}")
        assert history_of(deal.pk) == history_of(twin.pk), changes[i]
        for field in ("stage_id", "amount", "close_date", "owner_id", "forecast_category"):
            assert getattr(deal, field) == getattr(twin, field), field


def test_new_deals_get_the_created_row_of_opportunity_create(org):
    row = new_row(org, "NEW-1", stage=org.won_stage.name, forecast_category="commit")
    client_for(org.executive).post(URL, [row], format="json")
    deal = Opportunity.objects.get(external_id="NEW-1")
    twin = opportunity_create(
        external_id="NEW-2",
        name=row["name"],
        account=deal.account,
        owner=org.rep,
        amount=Decimal("1500.00"),
        currency="USD",
        stage=org.won_stage,
        forecast_category="commit",
        created_date=dt.date(2025, 2, 1),
        close_date=dt.date(2025, 6, 30),
        changed_by=org.executive,
        history_source="api",
    )
    assert deal.forecast_category == twin.forecast_category == "closed"
    assert history_of(deal.pk) == history_of(twin.pk)


def test_mixed_create_and_update_by_external_id(org):
    stored = OpportunityFactory(owner=org.rep, stage=org.open_stage, external_id="D-1")
    product = ProductFactory(name="Widget")
    rows = [
        row_for(stored, amount="123.45", product="widget"),  # a product by name
        new_row(org, "D-2", owner=str(org.peer.pk)),  # an owner by id
        new_row(org, "D-3", owner=f"{org.sub_rep.first_name} {org.sub_rep.last_name}"),
    ]
    response = client_for(org.revops).post(URL, rows, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"created": 2, "updated": 1, "unchanged": 0}
    stored.refresh_from_db()
    assert stored.amount == Decimal("123.45") and stored.product == product
    assert Opportunity.objects.get(external_id="D-2").owner == org.peer
    assert Opportunity.objects.get(external_id="D-3").owner == org.sub_rep
    assert history_of(stored.pk)[-1][0] == "amount"
    assert [h[0] for h in history_of(Opportunity.objects.get(external_id="D-2").pk)] == ["created"]


def test_the_same_batch_twice_adds_nothing(org):
    rows = mixed_batch(org, 6, "IDEM")
    client = client_for(org.executive)
    assert client.post(URL, rows, format="json").json() == {
        "created": 3,
        "updated": 3,
        "unchanged": 0,
    }
    counts = (
        Opportunity.objects.count(),
        OpportunityHistory.objects.count(),
        AuditEvent.objects.count(),
    )
    updated_at = dict(Opportunity.objects.values_list("external_id", "updated_at"))

    again = client.post(URL, rows, format="json")

    assert again.json() == {"created": 0, "updated": 0, "unchanged": 6}
    assert (
        Opportunity.objects.count(),
        OpportunityHistory.objects.count(),
        AuditEvent.objects.count(),
    ) == counts
    assert dict(Opportunity.objects.values_list("external_id", "updated_at")) == updated_at


BAD_ITEMS = [
    ({"color": "red"}, "color", "unknown field"),
    ({"name": None}, "name", "missing required value"),
    ({"amount": "-5"}, "amount", ""),
    ({"amount": "lots"}, "amount", ""),
    ({"close_date": "31/02/2025"}, "close_date", ""),
    ({"close_date": "2024-01-01"}, "close_date", "before the created date"),
    ({"account": "NO-SUCH-ACCOUNT"}, "account", "unknown account"),
    ({"owner": "ghost@example.com"}, "owner", "unknown person"),
    ({"owner": "999999"}, "owner", "unknown person"),
    ({"product": "NO-SUCH-PRODUCT"}, "product", "unknown product"),
    ({"stage": "Dreaming"}, "stage", "unknown stage"),
    ({"currency": "EURO"}, "currency", "three-letter"),
    ({"currency": "JPY"}, "currency", "no exchange rate"),
    ({"forecast_category": "maybe"}, "forecast_category", "unknown forecast category"),
    ({"deal_type": "gift"}, "deal_type", ""),
    ({"name": "x" * 201}, "name", "at most 200"),
    ({"external_id": "GOOD-0"}, "external_id", "duplicate external id"),
]


@pytest.mark.parametrize(("change", "field", "words"), BAD_ITEMS)
@pytest.mark.parametrize("bad_is_new", [True, False])
def test_every_bad_item_is_listed_and_nothing_is_written(org, change, field, words, bad_is_new):
    ExchangeRateFactory(currency="EUR")
    stored = OpportunityFactory(owner=org.rep, stage=org.open_stage, external_id="STORED")
    good_new = new_row(org, "GOOD-0", currency="EUR")
    good_change = row_for(stored, amount="1.00", stage=org.won_stage.name)
    target = new_row(org, "BAD-1") if bad_is_new else row_for(stored)
    bad = target | change
    rows = [good_new, bad, good_change] if bad_is_new else [good_new, bad]
    if not bad_is_new and field == "external_id":
        rows = [good_new, row_for(stored), bad]
    before = (
        list(Opportunity.objects.values_list("external_id", "amount", "stage_id", "updated_at")),
        OpportunityHistory.objects.count(),
        AuditEvent.objects.count(),
    )

    response = client_for(org.executive).post(URL, rows, format="json")

    body = assert_error_shape(response, 400)
    assert "nothing was saved" in body["message"]
    errors = body["extra"]["errors"]
    bad_index = rows.index(bad)
    assert [(e["index"], e["field"]) for e in errors] == [(bad_index, field)], errors
    assert errors[0]["line"] == bad_index + 1
    assert words.lower() in errors[0]["message"].lower()
    after = (
        list(Opportunity.objects.values_list("external_id", "amount", "stage_id", "updated_at")),
        OpportunityHistory.objects.count(),
        AuditEvent.objects.count(),
    )
    assert after == before


@pytest.mark.parametrize("missing_from", [(0, 1), (1,)])
def test_a_missing_required_field_is_reported_once_per_item(org, missing_from):
    rows = [new_row(org, f"M-{i}") for i in range(2)]
    for index in missing_from:
        del rows[index]["stage"]
    body = assert_error_shape(client_for(org.executive).post(URL, rows, format="json"), 400)
    assert [(e["index"], e["field"]) for e in body["extra"]["errors"]] == [
        (index, "stage") for index in missing_from
    ]
    assert not Opportunity.objects.exists()


@pytest.mark.parametrize("owner", ["\u00b2", "12345678901234567890123", "[1]"])
def test_an_odd_owner_key_is_an_unknown_person(org, owner):
    body = assert_error_shape(
        client_for(org.executive).post(URL, [new_row(org, "O-1", owner=owner)], format="json"),
        400,
    )
    assert body["extra"]["errors"][0]["field"] == "owner"


def test_a_rep_cannot_touch_another_reps_deal_which_answers_as_missing(org):
    peers = OpportunityFactory(owner=org.peer, stage=org.open_stage, external_id="PEER-1")
    own = OpportunityFactory(owner=org.rep, stage=org.open_stage, external_id="OWN-1")
    client = client_for(org.rep)
    rows = [
        row_for(own, amount="5.00"),
        row_for(peers, amount="5.00", owner=org.rep.email),
        row_for(own, external_id="NOBODY-HAS-THIS", amount="5.00"),
    ]

    body = assert_error_shape(client.post(URL, rows, format="json"), 400)

    errors = body["extra"]["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "external_id"), (2, "external_id")]
    # The same sentence for someone else's deal and for a deal that does not exist.
    assert errors[0]["message"].replace("PEER-1", "X") == errors[1]["message"].replace(
        "NOBODY-HAS-THIS", "X"
    )
    peers.refresh_from_db()
    own.refresh_from_db()
    assert peers.amount == own.amount == Decimal("10000.00")


def test_a_rep_changes_the_progress_of_their_own_deals_only(org):
    own = OpportunityFactory(owner=org.rep, stage=org.open_stage, external_id="OWN-1")
    client = client_for(org.rep)
    response = client.post(
        URL, [row_for(own, amount="42.00", stage=org.won_stage.name)], format="json"
    )
    assert response.json() == {"created": 0, "updated": 1, "unchanged": 0}
    own.refresh_from_db()
    assert own.amount == Decimal("42.00") and own.stage == org.won_stage

    body = assert_error_shape(
        client.post(URL, [row_for(own, name="Mine now", deal_type="renewal")], format="json"),
        400,
    )
    assert [(e["index"], e["field"]) for e in body["extra"]["errors"]] == [
        (0, "deal_type"),
        (0, "name"),
    ]
    # A rep creates nothing either: deals come from the CRM.
    body = assert_error_shape(client.post(URL, [new_row(org, "REP-NEW")], format="json"), 400)
    assert body["extra"]["errors"][0]["field"] == "external_id"
    assert not Opportunity.objects.filter(external_id="REP-NEW").exists()


def test_a_manager_edits_deals_in_their_subtree_and_reassigns_only_inside_it(org):
    below = OpportunityFactory(owner=org.sub_rep, stage=org.open_stage, external_id="SUB-1")
    outside = OpportunityFactory(owner=org.outsider, stage=org.open_stage, external_id="OUT-1")
    client = client_for(org.manager)

    response = client.post(URL, [row_for(below, owner=org.rep.email)], format="json")
    assert response.json() == {"created": 0, "updated": 1, "unchanged": 0}

    body = assert_error_shape(
        client.post(
            URL,
            [row_for(outside, amount="1.00"), row_for(below, owner=org.outsider.email)],
            format="json",
        ),
        400,
    )
    assert [(e["index"], e["field"]) for e in body["extra"]["errors"]] == [
        (0, "external_id"),
        (1, "owner"),
    ]
    below.refresh_from_db()
    outside.refresh_from_db()
    assert below.owner == org.rep and outside.amount == Decimal("10000.00")


@pytest.mark.parametrize("size", [2, 12])
def test_rollups_and_forecasts_are_queued_once_per_batch(
    org, size, django_capture_on_commit_callbacks, monkeypatch, settings
):
    amount_only = OpportunityFactory(owner=org.sub_rep, stage=org.open_stage, external_id="AMT")
    rows = [*mixed_batch(org, size, "Q"), row_for(amount_only, amount="1.00")]
    rollups: list[tuple[set, set]] = []
    monkeypatch.setattr(
        "apps.kpis.services.rollups_deals_changed",
        lambda *, opportunity_ids, stage_ids: rollups.append(
            (set(opportunity_ids), set(stage_ids))
        ),
    )
    queued: list[list[int]] = []

    class FakeTask:
        @staticmethod
        def apply_async(*, kwargs, countdown):
            queued.append(kwargs["owner_ids"])

    monkeypatch.setattr("apps.forecasting.tasks.forecasts_recompute_owners_task", FakeTask)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with django_capture_on_commit_callbacks() as callbacks:
        client_for(org.executive).post(URL, rows, format="json")
    assert len(callbacks) == 2
    for callback in callbacks:
        callback()

    batch = set(
        Opportunity.objects.filter(external_id__in=[r["external_id"] for r in rows]).values_list(
            "pk", flat=True
        )
    )
    # Every deal of the batch, in one call; the stage-history rollups for all but the deal
    # whose amount alone changed (new deals, and stage, owner and close-date changes).
    assert rollups == [(batch, batch - {amount_only.pk})]
    # One recompute for every owner the deals ever had (the old owner of reassigned ones).
    assert queued == [sorted({org.rep.pk, org.peer.pk, org.sub_rep.pk})]


def test_other_resources_keep_the_importers_only_rule(org):
    response = client_for(org.manager).post(
        "/api/v1/accounts/bulk/", [{"external_id": "A", "name": "A"}], format="json"
    )
    assert_error_shape(response, 403)


def test_a_deleted_reference_is_a_400_not_a_500(org, monkeypatch):
    # A reference that vanishes between the check and the write (a concurrent delete):
    # the database refuses, the answer says so, and nothing is written.
    if connection.vendor != "postgresql":
        pytest.skip("the check before commit is the Postgres path (deferred foreign keys)")
    account = AccountFactory()
    real_update = crm_services._deals_update

    def delete_then_write(**kwargs):
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM crm_account WHERE id = %s", [account.pk])
        return real_update(**kwargs)

    stored = OpportunityFactory(owner=org.rep, stage=org.open_stage, external_id="S-1")
    monkeypatch.setattr(crm_services, "_deals_update", delete_then_write)
    rows = [row_for(stored, amount="9.00"), new_row(org, "S-2") | {"account": account.external_id}]
    body = assert_error_shape(client_for(org.executive).post(URL, rows, format="json"), 400)
    assert "nothing was saved" in body["message"]
    assert not Opportunity.objects.filter(external_id="S-2").exists()
