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


@shared_task(
    name="kpis.rollups_rebuild",
    time_limit=60 * 60,
    soft_time_limit=55 * 60,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=30,
    max_retries=3,
)
def rollups_rebuild_task() -> int:
    """Full rebuild of every rollup (nightly from Celery beat). Returns rows written."""
    return services.rollups_rebuild().total_rows


@shared_task(
    name="kpis.rollups_update",
    time_limit=15 * 60,
    soft_time_limit=14 * 60,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    max_retries=5,
)
def rollups_update_task() -> int:
    """Recompute the months queued since the last update. Returns rows written."""
    # Clear the coalescing guard first: an edit committed from now on schedules a new
    # task, so nothing it queues can be missed by this run.
    cache.delete(services.UPDATE_PENDING_KEY)
    return services.rollups_update().total_rows
