"""Every change of a tracked field made through the CRM services leaves exactly one
history row, and the rows are enough to rebuild the deal as it stood at any moment."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.crm.models import ForecastCategory, Opportunity, OpportunityHistory
from apps.crm.services import TRACKED_FIELDS, opportunity_create, opportunity_update
from tests.factories import (
    AccountFactory,
    OpportunityFactory,
    RepFactory,
    StageFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 1, 15, 9, 0, tzinfo=dt.UTC)


def tracked_state(opp: Opportunity | OpportunityHistory) -> dict[str, Any]:
    """The tracked fields of a deal or of a history snapshot, comparable with ``==``."""
    return {
        "stage_id": opp.stage_id,
        "amount": Decimal(opp.amount),
        "currency": opp.currency,
        "close_date": opp.close_date,
        "owner_id": opp.owner_id,
        "forecast_category": opp.forecast_category,
    }


def state_at(opp: Opportunity, moment: dt.datetime) -> dict[str, Any] | None:
    """The deal at ``moment``: its latest history row with changed_at <= moment."""
    row = (
        OpportunityHistory.objects.filter(opportunity=opp, changed_at__lte=moment)
        .order_by("-changed_at", "-id")
        .first()
    )
    return None if row is None else tracked_state(row)


def test_creation_writes_one_created_row_with_the_initial_state():
    # given / when a deal is created through the service
    creator = UserFactory()
    opp = OpportunityFactory(changed_by=creator, changed_at=T0)
    # then it has exactly one "created" row describing it, by whom and when
    (row,) = OpportunityHistory.objects.filter(opportunity=opp)
    assert row.changed_fields == "created"
    assert row.changed_by == creator
    assert row.changed_at == T0
    assert row.source == OpportunityHistory.Source.APP
    assert tracked_state(row) == tracked_state(opp)


def _new_value(field: str, opp: Opportunity) -> Any:
    return {
        "stage": lambda: StageFactory(),
        "amount": lambda: opp.amount + Decimal("2500.50"),
        "currency": lambda: "EUR",
        "close_date": lambda: opp.close_date + dt.timedelta(days=30),
        "owner": lambda: RepFactory(),
        "forecast_category": lambda: ForecastCategory.COMMIT,
    }[field]()


@pytest.mark.parametrize("field", TRACKED_FIELDS)
def test_each_tracked_field_alone_writes_one_row_naming_it(field):
    # given an open deal with its "created" row
    opp = OpportunityFactory(changed_at=T0)
    editor = UserFactory()
    when = T0 + dt.timedelta(days=3)
    # when only this field changes
    _, changed = opportunity_update(
        opportunity=opp, changed_by=editor, changed_at=when, **{field: _new_value(field, opp)}
    )
    # then one more row names exactly that field and holds the new state
    assert changed == [field]
    rows = list(OpportunityHistory.objects.filter(opportunity=opp).order_by("changed_at", "id"))
    assert [r.changed_fields for r in rows] == ["created", field]
    opp.refresh_from_db()
    assert tracked_state(rows[-1]) == tracked_state(opp)
    assert rows[-1].changed_by == editor
    assert rows[-1].changed_at == when


def test_several_changes_at_once_write_one_row_naming_them_all():
    opp = OpportunityFactory(changed_at=T0)
    new_stage = StageFactory()
    _, changed = opportunity_update(
        opportunity=opp,
        stage=new_stage,
        amount=Decimal("12345.67"),
        close_date=dt.date(2025, 6, 30),
        changed_at=T0 + dt.timedelta(hours=1),
    )
    assert changed == ["stage", "amount", "close_date"]
    rows = OpportunityHistory.objects.filter(opportunity=opp).order_by("changed_at", "id")
    assert rows.count() == 2
    last = rows.last()
    assert last.changed_fields == "stage,amount,close_date"
    assert (last.stage_id, last.amount, last.close_date) == (
        new_stage.pk,
        Decimal("12345.67"),
        dt.date(2025, 6, 30),
    )


def test_untracked_change_writes_no_row_but_is_saved():
    opp = OpportunityFactory()
    _, changed = opportunity_update(opportunity=opp, name="Renamed deal", source="Partner")
    assert changed == []
    assert OpportunityHistory.objects.filter(opportunity=opp).count() == 1
    opp.refresh_from_db()
    assert (opp.name, opp.source) == ("Renamed deal", "Partner")


def test_setting_the_same_value_again_writes_no_row():
    opp = OpportunityFactory(amount=Decimal("500.00"))
    _, changed = opportunity_update(opportunity=opp, amount=Decimal("500"))
    assert changed == []
    assert OpportunityHistory.objects.filter(opportunity=opp).count() == 1


def test_winning_a_deal_moves_it_to_closed_forecast():
    opp = OpportunityFactory(forecast_category=ForecastCategory.COMMIT)
    assert opp.forecast_category == ForecastCategory.COMMIT
    # when it moves to a won stage (even with a stale category requested)
    opportunity_update(
        opportunity=opp, stage=StageFactory(won=True), forecast_category=ForecastCategory.COMMIT
    )
    # then the deal and its new snapshot are "closed"
    opp.refresh_from_db()
    assert opp.forecast_category == ForecastCategory.CLOSED
    last = OpportunityHistory.objects.filter(opportunity=opp).order_by("id").last()
    assert last.forecast_category == ForecastCategory.CLOSED
    assert last.changed_fields == "stage,forecast_category"


def test_losing_a_deal_moves_it_to_omitted_forecast():
    opp = OpportunityFactory()
    opportunity_update(opportunity=opp, stage=StageFactory(lost=True), lost_reason="Price")
    opp.refresh_from_db()
    assert opp.forecast_category == ForecastCategory.OMITTED
    assert OpportunityHistory.objects.filter(opportunity=opp).last().forecast_category == (
        ForecastCategory.OMITTED
    )


def test_a_deal_created_won_starts_closed():
    opp = OpportunityFactory(stage=StageFactory(won=True))
    assert opp.forecast_category == ForecastCategory.CLOSED
    assert OpportunityHistory.objects.get(opportunity=opp).forecast_category == "closed"


def test_state_at_any_moment_is_rebuilt_from_history():
    # given a deal that changes three times, remembering what it was after each step
    opp = OpportunityFactory(changed_at=T0, amount=Decimal("1000.00"))
    seen = {T0: tracked_state(opp)}
    steps = [
        (T0 + dt.timedelta(days=10), {"stage": StageFactory(), "amount": Decimal("1500.00")}),
        (T0 + dt.timedelta(days=20), {"close_date": dt.date(2025, 5, 31), "owner": RepFactory()}),
        (T0 + dt.timedelta(days=30), {"stage": StageFactory(won=True)}),
    ]
    for moment, changes in steps:
        opportunity_update(opportunity=opp, changed_at=moment, **changes)
        opp.refresh_from_db()
        seen[moment] = tracked_state(opp)
    # then the state rebuilt at each moment, and between moments, is what the deal was
    assert state_at(opp, T0 - dt.timedelta(seconds=1)) is None
    moments = sorted(seen)
    for i, moment in enumerate(moments):
        assert state_at(opp, moment) == seen[moment]
        just_before_next = (
            moments[i + 1] - dt.timedelta(seconds=1) if i + 1 < len(moments) else timezone.now()
        )
        assert state_at(opp, just_before_next) == seen[moment]
    # and the states really differ, so the rebuild is not trivially the final state
    assert len({tuple(sorted(s.items())) for s in seen.values()}) == 4


# --- bad input changes nothing ------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": Decimal("-1.00")}, "Amount must be zero or more."),
        ({"close_date": dt.date(2025, 1, 14)}, "Close date cannot be before the created date."),
        ({"external_id": "OTHER-1"}, "Cannot change external_id on an opportunity."),
        ({"colour": "red", "amount": Decimal("1")}, "Cannot change colour on an opportunity."),
    ],
)
def test_bad_update_raises_and_changes_nothing(changes, message):
    opp = OpportunityFactory(created_date=dt.date(2025, 1, 15), amount=Decimal("700.00"))
    before = tracked_state(Opportunity.objects.get(pk=opp.pk))
    with pytest.raises(ApplicationError) as excinfo:
        opportunity_update(opportunity=opp, **changes)
    assert excinfo.value.message == message
    stored = Opportunity.objects.get(pk=opp.pk)
    assert tracked_state(stored) == before
    assert stored.external_id == opp.external_id
    assert OpportunityHistory.objects.filter(opportunity=opp).count() == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"amount": Decimal("-10")}, "Amount must be zero or more."),
        (
            {"created_date": dt.date(2025, 3, 1), "close_date": dt.date(2025, 2, 1)},
            "Close date cannot be before the created date.",
        ),
    ],
)
def test_bad_create_raises_and_writes_nothing(overrides, message):
    kwargs = {
        "external_id": "NEW-1",
        "name": "New deal",
        "account": AccountFactory(),
        "owner": RepFactory(),
        "amount": Decimal("100"),
        "currency": "usd",
        "stage": StageFactory(),
        "created_date": dt.date(2025, 1, 1),
        "close_date": dt.date(2025, 2, 1),
    }
    with pytest.raises(ApplicationError) as excinfo:
        opportunity_create(**{**kwargs, **overrides})
    assert excinfo.value.message == message
    assert not Opportunity.objects.exists()
    assert not OpportunityHistory.objects.exists()


def test_duplicate_external_id_on_create_is_a_clear_error():
    OpportunityFactory(external_id="DUP-1")
    with pytest.raises(ApplicationError, match="DUP-1"):
        OpportunityFactory(external_id="DUP-1")
    assert Opportunity.objects.count() == 1
    assert OpportunityHistory.objects.count() == 1
