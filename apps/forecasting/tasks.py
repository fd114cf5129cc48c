"""Celery tasks for forecasting: thin wrappers around :mod:`apps.forecasting.services`.

All are idempotent: a recompute replaces the stored forecasts of the scopes it covers, a
snapshot replaces the same week's rows, scoring recomputes from the KPI engine. Writers
serialise on one advisory lock (Postgres), so running twice or at once is safe.
"""

from __future__ import annotations

from datetime import date

from celery import shared_task
from django.core.cache import cache
from django.db import InterfaceError, OperationalError

from apps.forecasting import services

TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(
    bind=True,
    name="forecasting.forecasts_recompute",
    time_limit=services.RECOMPUTE_TIME_LIMIT_SECONDS,
    soft_time_limit=services.RECOMPUTE_TIME_LIMIT_SECONDS - 5 * 60,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=30,
    max_retries=3,
)
def forecasts_recompute_task(self, as_of: str | None = None) -> int:
    """Every method for every scope, current and next quarter (nightly). Returns rows.

    The task id goes with the run so that, redelivered after its worker died (late acks),
    the task closes the run the dead worker left "running"."""
    day = date.fromisoformat(as_of) if as_of else None
    return services.forecasts_recompute(as_of=day, task_id=self.request.id).values


@shared_task(
    bind=True,
    name="forecasting.forecasts_recompute_owners",
    time_limit=services.RECOMPUTE_OWNERS_TIME_LIMIT_SECONDS,
    soft_time_limit=services.RECOMPUTE_OWNERS_TIME_LIMIT_SECONDS - 60,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    max_retries=5,
)
def forecasts_recompute_owners_task(self, owner_ids: list[int]) -> int:
    """The scopes a changed deal counts in (after a deal change). Returns rows."""
    cache.delete(services.pending_key(sorted(owner_ids)))  # later edits queue a new run
    return services.forecasts_recompute_owners(owner_ids=owner_ids, task_id=self.request.id).values


@shared_task(
    name="forecasting.forecasts_snapshot",
    time_limit=30 * 60,
    soft_time_limit=28 * 60,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=30,
    max_retries=3,
)
def forecasts_snapshot_task(on: str | None = None) -> int:
    """Weekly snapshot of forecasts and calls, then accuracy scoring. Returns rows."""
    day = date.fromisoformat(on) if on else None
    result = services.forecasts_snapshot(on=day)
    return result.snapshots + result.scored
