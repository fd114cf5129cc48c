"""Writes for customer records (subscriptions and NPS responses): validated through
:mod:`apps.core.records`, and every change queues the KPI rollups of the months it
touches, before and after the change, once the transaction commits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from django.db import models, transaction

from apps.core import records
from apps.customers.models import NpsResponse, Subscription

CUSTOMER_MODELS: tuple[type[models.Model], ...] = (Subscription, NpsResponse)

RecordT = TypeVar("RecordT", bound=models.Model)
_RollupKey = tuple[str, tuple[Any, ...]]


def _rollup_keys(record: models.Model) -> list[_RollupKey]:
    if isinstance(record, Subscription):
        return [("subscriptions", (record.start_date, record.end_date))]
    if isinstance(record, NpsResponse):
        return [("nps", (record.responded_on,))]
    return []


def _queue_rollups(keys: list[_RollupKey]) -> None:
    from apps.kpis.services import rollups_nps_changed, rollups_subscription_changed

    def queue() -> None:
        for area, values in dict.fromkeys(keys):
            if area == "subscriptions":
                rollups_subscription_changed(start_date=values[0], end_date=values[1])
            else:
                rollups_nps_changed(responded_on=values[0])

    if keys:
        # robust: the record is committed by then; a failure to queue its rollup update is
        # logged (the nightly rebuild settles it), never answered as an error.
        transaction.on_commit(queue, robust=True)


@transaction.atomic
def customer_record_create(*, model: type[RecordT], data: Mapping[str, Any]) -> RecordT:
    """Create a subscription or an NPS response."""
    records.record_model_check(model, CUSTOMER_MODELS)
    record = records.record_create(model=model, data=data)
    _queue_rollups(_rollup_keys(record))
    return record


@transaction.atomic
def customer_record_update(*, record: RecordT, changes: Mapping[str, Any]) -> RecordT:
    """Change a subscription or an NPS response; the months before and after are queued."""
    records.record_model_check(type(record), CUSTOMER_MODELS)
    before = _rollup_keys(record)
    records.record_update(record=record, changes=changes)
    _queue_rollups(before + _rollup_keys(record))
    return record


@transaction.atomic
def customer_record_delete(*, record: models.Model) -> None:
    """Delete a subscription or an NPS response."""
    records.record_model_check(type(record), CUSTOMER_MODELS)
    keys = _rollup_keys(record)
    records.record_delete(record=record)
    _queue_rollups(keys)
