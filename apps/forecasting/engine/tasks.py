"""Celery tasks of the forecast engine: thin wrappers around its services."""

from __future__ import annotations

from datetime import date

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.forecasting.engine import training

TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(
    name="forecast_engine.model_train",
    time_limit=60 * 60,
    soft_time_limit=55 * 60,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=60,
    max_retries=3,
)
def model_train_task(as_of: str | None = None) -> int:
    """Weekly retraining (Celery beat). ``as_of`` is an ISO date (default today).
    Returns the model version (an existing one when nothing changed)."""
    day = date.fromisoformat(as_of) if as_of else None
    return training.model_train(as_of=day).version
