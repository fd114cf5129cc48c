"""Writes the API makes to reference and customer records (accounts, products, stages,
subscriptions, NPS responses), which have no workflow of their own: validate the whole
record against the model (fields, unique keys, check constraints), save it in one
transaction and queue the KPI rollups it affects. Deals and quotas go through their own
domain services (:mod:`apps.crm.services`, :mod:`apps.quotas.services`) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, TypeVar

from django.db import models, transaction
from django.db.models import ProtectedError

from apps.core.errors import ApplicationError
from apps.customers.models import NpsResponse, Subscription

RecordT = TypeVar("RecordT", bound=models.Model)


def _rollup_keys(record: models.Model) -> list[tuple[str, tuple[Any, ...]]]:
    """What a record contributes to the KPI rollups, to queue before and after a change."""
    if isinstance(record, Subscription):
        return [("subscriptions", (record.start_date, record.end_date))]
    if isinstance(record, NpsResponse):
        return [("nps", (record.responded_on,))]
    # Accounts, products and stages feed deal rollups through their deals; the nightly
    # rebuild settles a change of segment, region or stage outcome.
    return []


def _queue_rollups(keys: list[tuple[str, tuple[Any, ...]]]) -> None:
    from apps.kpis.services import rollups_nps_changed, rollups_subscription_changed

    def queue() -> None:
        for area, values in dict.fromkeys(keys):
            if area == "subscriptions":
                start: date = values[0]
                rollups_subscription_changed(start_date=start, end_date=values[1])
            elif area == "nps":
                rollups_nps_changed(responded_on=values[0])

    if keys:
        transaction.on_commit(queue)


def _save_valid(record: RecordT) -> RecordT:
    # Model validation covers unique keys and check constraints too, so a bad record is a
    # field error (400) and never reaches the database as an IntegrityError.
    record.full_clean()
    record.save()
    return record


@transaction.atomic
def record_create(*, model: type[RecordT], data: Mapping[str, Any]) -> RecordT:
    """Create one record of ``model`` from validated field values."""
    record = _save_valid(model(**data))
    _queue_rollups(_rollup_keys(record))
    return record


@transaction.atomic
def record_update(*, record: RecordT, changes: Mapping[str, Any]) -> RecordT:
    """Apply ``changes`` (field name -> value) to ``record``; all or nothing."""
    before = _rollup_keys(record)
    locked = type(record)._default_manager.select_for_update().get(pk=record.pk)
    for name, value in changes.items():
        setattr(locked, name, value)
    _save_valid(locked)
    _queue_rollups(before + _rollup_keys(locked))
    record.__dict__.update(locked.__dict__)
    return record


@transaction.atomic
def record_delete(*, record: models.Model) -> None:
    """Delete ``record`` unless other records still refer to it (then nothing changes)."""
    keys = _rollup_keys(record)
    try:
        record.delete()
    except ProtectedError as exc:
        users: dict[str, int] = {}
        for item in exc.protected_objects:
            label = str(item._meta.verbose_name_plural)
            users[label] = users.get(label, 0) + 1
        summary = ", ".join(f"{count} {label}" for label, count in sorted(users.items()))
        raise ApplicationError(
            f"Cannot delete {record._meta.verbose_name} {record}: {summary} still refer to it.",
            extra={"referenced_by": users},
        ) from None
    _queue_rollups(keys)
