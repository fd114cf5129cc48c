"""Celery tasks for the fiscal calendar: thin wrappers around services."""

from __future__ import annotations

from datetime import date

from celery import shared_task

from apps.core.services import job_run_record
from apps.quotas.services import fiscal_periods_ensure_around


@shared_task(name="quotas.fiscal_periods_ensure", time_limit=300, soft_time_limit=240)
def fiscal_periods_ensure_task(day_iso: str | None = None) -> int:
    """Make sure the fiscal periods around ``day_iso`` (default: today) exist. Idempotent."""
    day = date.fromisoformat(day_iso) if day_iso else date.today()
    with job_run_record(kind="fiscal_periods_ensure") as run:
        run.rows = fiscal_periods_ensure_around(day=day)
    return run.rows
