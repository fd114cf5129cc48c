"""Celery tasks for the KPI rollups: thin wrappers around :mod:`apps.kpis.services`.

Both are idempotent (they recompute from the domain tables) and safe to run twice or at
once: the services take the rollup lock and work in one transaction.
"""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache
from django.db import InterfaceError, OperationalError

from apps.kpis import services

#: Database errors worth another try (lost connection, lock timeout, serialisation).
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


REBUILD_TIME_LIMIT_SECONDS = 60 * 60
UPDATE_TIME_LIMIT_SECONDS = 15 * 60


@shared_task(
    bind=True,
    name="kpis.rollups_rebuild",
    time_limit=REBUILD_TIME_LIMIT_SECONDS,
    soft_time_limit=REBUILD_TIME_LIMIT_SECONDS - 5 * 60,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=30,
    max_retries=3,
)
def rollups_rebuild_task(self) -> int:
    """Full rebuild of every rollup (nightly from Celery beat). Returns rows written. The
    task id goes with the run, so a redelivery closes the run a killed worker left."""
    return services.rollups_rebuild(
        task_id=self.request.id, time_limit_s=REBUILD_TIME_LIMIT_SECONDS
    ).total_rows


@shared_task(
    bind=True,
    name="kpis.rollups_update",
    time_limit=UPDATE_TIME_LIMIT_SECONDS,
    soft_time_limit=UPDATE_TIME_LIMIT_SECONDS - 60,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    max_retries=5,
)
def rollups_update_task(self) -> int:
    """Recompute the months queued since the last update. Returns rows written."""
    # Clear the coalescing guard first: an edit committed from now on schedules a new
    # task, so nothing it queues can be missed by this run.
    cache.delete(services.UPDATE_PENDING_KEY)
    return services.rollups_update(
        task_id=self.request.id, time_limit_s=UPDATE_TIME_LIMIT_SECONDS
    ).total_rows
