"""A Celery worker SIGKILLed in the middle of a rollup rebuild: readers keep the previous
consistent numbers, and the task, never acknowledged, runs again on the next worker.

The rebuild is caught in the middle deterministically: the test holds the rollup lock, so
the worker's rebuild waits inside its open transaction until the kill."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import psycopg2
import pytest
from django.db import connection

from apps.core.models import JobRun
from apps.crm.models import Opportunity
from apps.kpis import services
from apps.kpis.selectors import kpi_value
from apps.kpis.tasks import rollups_rebuild_task
from tests.kpis.conftest import build_world

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

D = Decimal


def _wait_for(condition, what: str, worker=None, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        log = worker.log()[-3000:] if worker is not None else ""
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log}"
        time.sleep(0.2)


def test_a_worker_killed_mid_rebuild_keeps_old_numbers_and_the_task_runs_again(
    start_live_celery_worker,
):
    w = build_world()
    w.deal(
        owner=w.rep_a, amount="1000", stage="won", created=date(2024, 6, 1), close=date(2024, 7, 1)
    )
    services.rollups_rebuild()
    # a deal written behind the rollups' back, so the next rebuild changes the figure
    Opportunity.objects.create(
        external_id="raw-1",
        name="Raw",
        account=w.account("Acme"),
        owner=w.rep_a,
        amount=D("500"),
        currency="USD",
        stage=w.stages["won"],
        created_date=date(2024, 6, 1),
        close_date=date(2024, 7, 2),
    )

    def bookings() -> Decimal:
        return kpi_value(name="bookings", period="2024-07", user=w.cso).value

    def runs(status: str) -> int:
        return JobRun.objects.filter(kind="rollups_full", status=status).count()

    succeeded_before = runs(JobRun.Status.SUCCEEDED)
    db = connection.settings_dict
    holder = psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432
    )
    holder.autocommit = True
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [services.ROLLUP_LOCK_KEY])
        # the visibility timeout is how long Redis waits before redelivering an unacked task
        worker = start_live_celery_worker(CELERY_VISIBILITY_TIMEOUT="5")
        rollups_rebuild_task.apply_async(queue=worker.queue)
        _wait_for(lambda: runs(JobRun.Status.RUNNING) == 1, "the rebuild to start", worker)
        time.sleep(0.5)  # it is now waiting for the lock inside its transaction

        worker.kill()
    finally:
        holder.close()  # releases the lock

    # readers see the previous, consistent numbers
    assert bookings() == D("1000.00")
    # a new worker receives the unacknowledged task again and completes it; a worker takes
    # over unacknowledged tasks when it starts (then only every 100 s), so it must start
    # after the visibility timeout has passed
    time.sleep(6)
    again = start_live_celery_worker(CELERY_VISIBILITY_TIMEOUT="5")
    _wait_for(
        lambda: runs(JobRun.Status.SUCCEEDED) > succeeded_before,
        "the redelivered rebuild to finish",
        again,
        seconds=90,
    )
    assert bookings() == D("1500.00")
    # and the killed run does not stay "running": the redelivered task (same id) closed it
    killed = JobRun.objects.get(kind="rollups_full", status=JobRun.Status.FAILED)
    assert killed.error.startswith("Interrupted"), killed.error
    done = JobRun.objects.filter(kind="rollups_full", status=JobRun.Status.SUCCEEDED).latest("id")
    assert killed.detail["task_id"] == done.detail["task_id"]
    assert runs(JobRun.Status.RUNNING) == 0
