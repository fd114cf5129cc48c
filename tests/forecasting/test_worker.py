"""The nightly recompute and the weekly snapshot on a real Celery worker (Redis broker,
PostgreSQL test database) with the real engine: sent twice, one after the other, they
store the same rows and record two successful runs."""

from __future__ import annotations

import pytest
from celery.result import AsyncResult, EagerResult

from apps.core.models import JobRun
from apps.forecasting.models import ForecastSnapshot, ForecastValue
from apps.forecasting.tasks import forecasts_recompute_task, forecasts_snapshot_task
from tests.forecasting.conftest import build_book
from tests.kpis.conftest import build_world

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

RESULT_TIMEOUT_S = 240


def test_recompute_and_snapshot_on_a_worker_are_idempotent(live_celery_worker):
    book = build_book(build_world())

    first = forecasts_recompute_task.apply_async(queue=live_celery_worker.queue)
    rows = first.get(timeout=RESULT_TIMEOUT_S)
    assert isinstance(first, AsyncResult) and not isinstance(first, EagerResult)
    methods = set(ForecastValue.objects.values_list("method", flat=True))
    # company, East, East SMB, West, rep_a, rep_b, rep_c x current and next quarter
    assert rows == ForecastValue.objects.count() == 7 * 2 * len(methods)
    assert {"weighted", "historical", "monte_carlo"} <= methods
    weighted = ForecastValue.objects.get(
        scope_key=f"rep:{book.rep_a.pk}", period_name=book.period.name, method="weighted"
    )
    assert weighted.won_to_date == 1000  # rep_a's won deal of the quarter
    before = sorted(
        ForecastValue.objects.values_list("scope_key", "period_name", "method", "expected")
    )

    again = forecasts_recompute_task.apply_async(queue=live_celery_worker.queue)
    assert again.get(timeout=RESULT_TIMEOUT_S) == rows
    assert ForecastValue.objects.count() == rows
    assert before == sorted(
        ForecastValue.objects.values_list("scope_key", "period_name", "method", "expected")
    )

    snap = forecasts_snapshot_task.apply_async(queue=live_celery_worker.queue)
    snap.get(timeout=RESULT_TIMEOUT_S)
    count = ForecastSnapshot.objects.count()
    assert count == 7 * len(methods)
    forecasts_snapshot_task.apply_async(queue=live_celery_worker.queue).get(
        timeout=RESULT_TIMEOUT_S
    )
    assert ForecastSnapshot.objects.count() == count
    runs = JobRun.objects.filter(kind__startswith="forecasting.")
    assert sorted(runs.values_list("kind", "status")) == [
        ("forecasting.recompute", "succeeded"),
        ("forecasting.recompute", "succeeded"),
        ("forecasting.snapshot", "succeeded"),
        ("forecasting.snapshot", "succeeded"),
    ]
