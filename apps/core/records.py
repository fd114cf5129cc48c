"""Validated create / update / delete of one model record, for the domain services of
records that have no workflow of their own (accounts, products, stages, subscriptions,
NPS responses). The domain services decide which models they accept and what follows a
change (e.g. KPI rollups); this module only makes the write safe:

- the whole record is validated against the model (fields, unique keys, check
  constraints), so a bad record is a field error and never an IntegrityError;
- an update locks the row, so two concurrent edits cannot interleave;
- a delete refused by ``on_delete=PROTECT`` says which records still refer to it.

Callers run these inside their own ``transaction.atomic``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from django.db import models
from django.db.models import ProtectedError

from apps.core.errors import ApplicationError

RecordT = TypeVar("RecordT", bound=models.Model)


def _save_valid(record: RecordT) -> RecordT:
    record.full_clean()
    record.save()
    return record


def record_create(*, model: type[RecordT], data: Mapping[str, Any]) -> RecordT:
    """Create one record of ``model`` from field values."""
    return _save_valid(model(**data))


def record_update(*, record: RecordT, changes: Mapping[str, Any]) -> RecordT:
    """Apply ``changes`` (field name -> value) to ``record`` under a row lock. ``record``
    is refreshed in place with what was saved."""
    locked = type(record)._default_manager.select_for_update().get(pk=record.pk)
    for name, value in changes.items():
        setattr(locked, name, value)
    _save_valid(locked)
    record.__dict__.update(locked.__dict__)
    return record


def record_delete(*, record: models.Model) -> None:
    """Delete ``record`` unless other records still refer to it (then nothing changes)."""
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


def record_model_check(model: type[models.Model], allowed: tuple[type[models.Model], ...]) -> None:
    """Guard a domain service against records it does not own."""
    if model not in allowed:
        raise ApplicationError(f"{model.__name__} records are not written by this service.")
