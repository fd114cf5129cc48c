"""Writes for the CRM read model. Every change to a deal's tracked fields goes through
here so that its history is complete: the history is what rebuilds past pipelines."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.db import models, transaction
from django.utils import timezone

from apps.core import records
from apps.core.errors import ApplicationError
from apps.crm.models import (
    Account,
    ForecastCategory,
    Opportunity,
    OpportunityHistory,
    Product,
    Stage,
)

RecordT = TypeVar("RecordT", bound=models.Model)

#: Fields whose every change is kept in :class:`OpportunityHistory`.
TRACKED_FIELDS: tuple[str, ...] = (
    "stage",
    "amount",
    "currency",
    "close_date",
    "owner",
    "forecast_category",
)

EDITABLE_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "account",
        "owner",
        "product",
        "amount",
        "currency",
        "stage",
        "forecast_category",
        "deal_type",
        "source",
        "created_date",
        "close_date",
        "lost_reason",
    }
)


def _category_for_stage(stage: Stage, requested: str | None) -> str:
    """Closed deals leave the forecast: won is 'closed', lost is 'omitted'."""
    if stage.outcome == Stage.Outcome.WON:
        return ForecastCategory.CLOSED
    if stage.outcome == Stage.Outcome.LOST:
        return ForecastCategory.OMITTED
    if requested in (ForecastCategory.CLOSED, None):
        return ForecastCategory.PIPELINE
    return requested


def _validate(opp: Opportunity) -> None:
    if opp.amount is None or Decimal(opp.amount) < 0:
        raise ApplicationError("Amount must be zero or more.", extra={"field": "amount"})
    if opp.close_date < opp.created_date:
        raise ApplicationError(
            "Close date cannot be before the created date.", extra={"field": "close_date"}
        )
    opp.full_clean(validate_unique=False, validate_constraints=False)


def _snapshot(
    opp: Opportunity, *, changed_fields: str, at: datetime, by: Any, source: str
) -> OpportunityHistory:
    return OpportunityHistory(
        opportunity=opp,
        changed_at=at,
        changed_by=by,
        source=source,
        changed_fields=changed_fields,
        stage_id=opp.stage_id,
        amount=opp.amount,
        currency=opp.currency,
        close_date=opp.close_date,
        owner_id=opp.owner_id,
        forecast_category=opp.forecast_category,
    )


@transaction.atomic
def opportunity_create(
    *,
    external_id: str,
    name: str,
    account: Any,
    owner: Any,
    amount: Decimal,
    currency: str,
    stage: Stage,
    created_date: date,
    close_date: date,
    product: Any = None,
    forecast_category: str | None = None,
    deal_type: str = "new",
    source: str = "",
    lost_reason: str = "",
    changed_by: Any = None,
    changed_at: datetime | None = None,
    history_source: str = OpportunityHistory.Source.APP,
) -> Opportunity:
    """Create a deal and its first history row."""
    if Opportunity.objects.filter(external_id=external_id).exists():
        raise ApplicationError(
            f"An opportunity with external id {external_id!r} already exists.",
            extra={"field": "external_id"},
        )
    opp = Opportunity(
        external_id=external_id,
        name=name,
        account=account,
        owner=owner,
        product=product,
        amount=Decimal(amount),
        currency=currency.upper(),
        stage=stage,
        forecast_category=_category_for_stage(stage, forecast_category),
        deal_type=deal_type,
        source=source,
        created_date=created_date,
        close_date=close_date,
        lost_reason=lost_reason,
    )
    _validate(opp)
    opp.save()
    _snapshot(
        opp,
        changed_fields="created",
        at=changed_at or timezone.now(),
        by=changed_by,
        source=history_source,
    ).save()
    _queue_updates(opp.pk)
    return opp


@transaction.atomic
def opportunity_update(
    *,
    opportunity: Opportunity,
    changed_by: Any = None,
    changed_at: datetime | None = None,
    history_source: str = OpportunityHistory.Source.APP,
    **changes: Any,
) -> tuple[Opportunity, list[str]]:
    """Apply ``changes`` to a deal; write one history row if a tracked field changed.

    Returns the deal and the names of the tracked fields that changed. The row is locked
    for the duration so two concurrent edits cannot lose each other's history.
    """
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ApplicationError(f"Cannot change {', '.join(sorted(unknown))} on an opportunity.")
    opp = Opportunity.objects.select_for_update().get(pk=opportunity.pk)
    before = {f: getattr(opp, f"{f}_id" if f in ("stage", "owner") else f) for f in TRACKED_FIELDS}
    for field_name, value in changes.items():
        setattr(opp, field_name, value)
    if "currency" in changes:
        opp.currency = opp.currency.upper()
    if "amount" in changes:
        opp.amount = Decimal(opp.amount)
    opp.forecast_category = _category_for_stage(opp.stage, opp.forecast_category)
    _validate(opp)
    after = {f: getattr(opp, f"{f}_id" if f in ("stage", "owner") else f) for f in TRACKED_FIELDS}
    changed = [f for f in TRACKED_FIELDS if before[f] != after[f]]
    opp.save()
    if changed:
        _snapshot(
            opp,
            changed_fields=",".join(changed),
            at=changed_at or timezone.now(),
            by=changed_by,
            source=history_source,
        ).save()
    opportunity.__dict__.update(opp.__dict__)
    _queue_updates(opp.pk, fields=sorted(changes))
    return opp, changed


def _queue_updates(opportunity_id: int, *, fields: list[str] | None = None) -> None:
    """After commit: the KPI rollups, then the stored forecasts of the deal's owners."""
    from apps.forecasting.services import forecast_deal_changed
    from apps.kpis.services import rollups_deal_changed

    if fields is None:
        transaction.on_commit(lambda: rollups_deal_changed(opportunity_id=opportunity_id))
    else:
        transaction.on_commit(
            lambda: rollups_deal_changed(opportunity_id=opportunity_id, fields=fields)
        )
    transaction.on_commit(lambda: forecast_deal_changed(opportunity_id=opportunity_id))


# --- Reference records -------------------------------------------------------------------
#: Accounts, products and stages have no workflow: they are validated and saved through
#: :mod:`apps.core.records`. They feed the deal rollups only through their deals, and the
#: nightly rebuild settles a change of segment, region or stage outcome.
REFERENCE_MODELS: tuple[type[models.Model], ...] = (Account, Product, Stage)


@transaction.atomic
def reference_record_create(*, model: type[RecordT], data: Mapping[str, Any]) -> RecordT:
    """Create an account, product or stage."""
    records.record_model_check(model, REFERENCE_MODELS)
    return records.record_create(model=model, data=data)


@transaction.atomic
def reference_record_update(*, record: RecordT, changes: Mapping[str, Any]) -> RecordT:
    """Change an account, product or stage."""
    records.record_model_check(type(record), REFERENCE_MODELS)
    return records.record_update(record=record, changes=changes)


@transaction.atomic
def reference_record_delete(*, record: models.Model) -> None:
    """Delete an account, product or stage that no deal refers to."""
    records.record_model_check(type(record), REFERENCE_MODELS)
    records.record_delete(record=record)
