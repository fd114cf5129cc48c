"""A real Celery worker, on Redis, runs a task against the test database.

Needs PostgreSQL (the worker is another process, so it cannot share SQLite's in-memory test
database) and Redis; skipped outside CI without them, a usage error in CI (tests/conftest.py).
"""

from __future__ import annotations

from datetime import date

import pytest
from celery.result import AsyncResult, EagerResult
from django.conf import settings

from apps.core.models import JobRun
from apps.quotas import fiscal
from apps.quotas.models import FiscalPeriod
from apps.quotas.tasks import fiscal_periods_ensure_task

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

RESULT_TIMEOUT_S = 60


def test_worker_process_creates_fiscal_periods_and_records_the_run(live_celery_worker):
    # given an empty fiscal calendar and a worker consuming its own queue
    assert not FiscalPeriod.objects.exists()
    day = date(2025, 6, 15)

    # when the task is sent through Redis and the worker runs it
    result = fiscal_periods_ensure_task.apply_async(
        args=[day.isoformat()], queue=live_celery_worker.queue
    )
    created = result.get(timeout=RESULT_TIMEOUT_S)

    # then it really went through the broker to that worker process ...
    assert isinstance(result, AsyncResult) and not isinstance(result, EagerResult)
    assert result.id in live_celery_worker.log()
    # ... and its rows and its run record are in the test database
    assert created > 0
    assert FiscalPeriod.objects.count() == created
    start_month = settings.FISCAL_YEAR_START_MONTH
    this_year = fiscal.fiscal_year_of(day, start_month)
    for year in (this_year, this_year + 1):
        names = {period.name for period in fiscal.periods_of_year(year, start_month)}
        assert set(FiscalPeriod.objects.filter(name__in=names).values_list("name", flat=True)) == (
            names
        )
    run = JobRun.objects.get(kind="fiscal_periods_ensure")
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.rows == created
    assert run.finished_at is not None and run.finished_at >= run.started_at


def test_worker_runs_the_task_twice_without_duplicating_periods(live_celery_worker):
    # given the fiscal periods around a day already created by the worker
    day_iso = "2024-11-30"
    first = fiscal_periods_ensure_task.apply_async(args=[day_iso], queue=live_celery_worker.queue)
    created = first.get(timeout=RESULT_TIMEOUT_S)

    # when the same task runs again (a retry or a second beat tick)
    second = fiscal_periods_ensure_task.apply_async(args=[day_iso], queue=live_celery_worker.queue)

    # then nothing new is created and both runs are recorded as succeeded
    assert second.get(timeout=RESULT_TIMEOUT_S) == 0
    assert FiscalPeriod.objects.count() == created
    runs = JobRun.objects.filter(kind="fiscal_periods_ensure").order_by("started_at")
    assert [(run.status, run.rows) for run in runs] == [
        (JobRun.Status.SUCCEEDED, created),
        (JobRun.Status.SUCCEEDED, 0),
    ]
