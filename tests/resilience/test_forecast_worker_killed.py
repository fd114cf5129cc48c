"""A Celery worker SIGKILLed in the middle of a forecast recompute: the Forecast page's
selectors keep returning the previous run's values (no half-written run, no second
"latest" run), the task, never acknowledged, runs again on the next worker and stores
forecasts of the changed deals, and the killed run's JobRun is closed as failed.

The recompute is caught in the middle deterministically: the test holds a row lock on one
stored deal score, so the worker's recompute, which has already created its ForecastRun
and replaced the ForecastValue rows inside its transaction, waits on that row (deleting
the old scores) until the kill."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal

import psycopg2
import pytest
from django.db import connection
from django.utils import timezone

from apps.core.models import JobRun
from apps.core.services import job_runs_interrupted_close
from apps.forecasting import selectors
from apps.forecasting.models import DealScoreValue, ForecastRun, ForecastValue
from apps.forecasting.services import RECOMPUTE_TIME_LIMIT_SECONDS, forecasts_recompute
from apps.forecasting.tasks import forecasts_recompute_task
from apps.kpis.selectors import KpiFilters, scope_resolve
from apps.kpis.services import rollups_rebuild
from tests.forecasting.conftest import build_book
from tests.kpis.conftest import build_world

D = Decimal
VISIBILITY_TIMEOUT_S = 5
KIND = "forecasting.recompute"


def _wait_for(condition, what: str, worker=None, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        log = worker.log()[-3000:] if worker is not None else ""
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log}"
        time.sleep(0.2)


def _blocked_on_scores(cursor) -> int | None:
    """The backend (pid) of a recompute waiting for a row lock while deleting deal scores."""
    cursor.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' "
        "AND query ILIKE 'DELETE FROM %%forecasting_dealscorevalue%%'"
    )
    row = cursor.fetchone()
    return row[0] if row else None


def _tables_written(cursor, pid: int) -> set[str]:
    """Tables the backend has written to in its open transaction (RowExclusiveLock)."""
    cursor.execute(
        "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE l.pid = %s AND l.mode = 'RowExclusiveLock' AND c.relkind = 'r'",
        [pid],
    )
    return {row[0] for row in cursor.fetchall()}


def _backend_alive(cursor, pid: int) -> bool:
    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
    return cursor.fetchone()[0] == 1


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_recompute_keeps_the_previous_forecasts_and_the_task_runs_again(
    start_live_celery_worker,
):
    # given the book's forecasts and deal scores stored by a first recompute
    book = build_book(build_world())
    forecasts_recompute()
    (first_run,) = ForecastRun.objects.all()
    rep_a = scope_resolve(user=book.cso, rep_id=book.rep_a.pk)
    company = scope_resolve(user=book.cso)

    def page_reads() -> dict:
        """What the Forecast page shows: stored forecasts of two scopes, the data
        freshness (latest finished run) and the open deals with their stored scores."""
        return {
            "rep_a": [
                (v.method, v.expected, v.won_to_date, v.p10, v.p90)
                for v in selectors.forecast_latest(scope=rep_a, period=book.period).methods
            ],
            "company": [
                (v.method, v.expected, v.won_to_date)
                for v in selectors.forecast_latest(scope=company, period=book.period).methods
            ],
            "last_run": selectors.last_forecast_run().pk,
            "scores": sorted(
                (d["id"], d["score__probability"])
                for d in selectors.scored_open_deals(
                    user=book.cso, period=book.period, scope=company, filters=KpiFilters()
                )
            ),
        }

    before = page_reads()
    assert before["last_run"] == first_run.pk
    assert dict((m, won) for m, _, won, _, _ in before["rep_a"])["weighted"] == D("1000.00")
    assert any(p is not None for _, p in before["scores"]), "the first run stored no scores"
    stored_rows = ForecastValue.objects.count()

    # and a deal won since then: rep_a has booked 2500.00 more this quarter
    book.w.deal(
        owner=book.rep_a,
        amount="2500",
        stage="won",
        created=book.period.start - timedelta(days=30),
        close=book.period.start + timedelta(days=4),
    )
    rollups_rebuild()
    assert page_reads() == before  # stored forecasts change only when recomputed

    def runs(status: str) -> int:
        return JobRun.objects.filter(kind=KIND, status=status).count()

    db = connection.settings_dict
    holder = psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432
    )
    watcher = psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432
    )
    watcher.autocommit = True
    try:
        # a transaction that holds one stored score row: the recompute's delete of the old
        # scores waits on it, inside its write transaction, after it replaced the values
        with holder.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM forecasting_dealscorevalue ORDER BY id LIMIT 1 FOR UPDATE"
            )
            assert cursor.fetchone() is not None
        with watcher.cursor() as cursor:
            # when the recompute runs on a worker, and is killed while it waits there
            worker = start_live_celery_worker(CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT_S))
            forecasts_recompute_task.apply_async(queue=worker.queue)
            _wait_for(
                lambda: _blocked_on_scores(cursor) is not None,
                "the recompute to reach the deal scores inside its transaction",
                worker,
            )
            pid = _blocked_on_scores(cursor)
            assert runs(JobRun.Status.RUNNING) == 1
            # it has created its run and replaced the stored values, uncommitted
            assert {"forecasting_forecastrun", "forecasting_forecastvalue"} <= _tables_written(
                cursor, pid
            )

            # then, while its transaction is open, readers see only the previous run
            assert page_reads() == before
            assert ForecastRun.objects.count() == 1
            assert ForecastValue.objects.count() == stored_rows

            worker.kill()
            holder.rollback()  # releases the row: the dead worker's backend finds no client
            _wait_for(
                lambda: not _backend_alive(cursor, pid), "the dead worker's transaction to end"
            )
    finally:
        holder.close()
        watcher.close()

    # then nothing of the killed run was stored: the previous values, one finished run
    assert page_reads() == before
    assert list(ForecastRun.objects.values_list("pk", flat=True)) == [first_run.pk]
    assert ForecastValue.objects.count() == stored_rows
    assert not ForecastValue.objects.exclude(run=first_run).exists()
    assert not DealScoreValue.objects.exclude(run=first_run).exists()
    # and its JobRun does not look successful: it never recorded an end
    (killed,) = JobRun.objects.filter(kind=KIND, status=JobRun.Status.RUNNING)
    assert killed.finished_at is None
    assert runs(JobRun.Status.SUCCEEDED) == 1  # the first recompute's only

    # when a new worker starts once the visibility timeout has passed (a worker takes
    # over unacknowledged tasks as it starts, then only every 100 s)
    time.sleep(VISIBILITY_TIMEOUT_S + 1)
    again = start_live_celery_worker(CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT_S))

    # then the redelivered task completes
    _wait_for(lambda: runs(JobRun.Status.SUCCEEDED) == 2, "the redelivered recompute", again)
    # and the page reads the new run, with the deal won since: 1000 + 2500 won to date
    after = page_reads()
    (second_run,) = ForecastRun.objects.exclude(pk=first_run.pk)
    assert after["last_run"] == second_run.pk
    assert dict((m, won) for m, _, won, _, _ in after["rep_a"])["weighted"] == D("3500.00")
    assert dict((m, won) for m, _, won in after["company"])["weighted"] == (
        dict((m, won) for m, _, won in before["company"])["weighted"] + D("2500.00")
    )
    assert set(ForecastValue.objects.values_list("run_id", flat=True)) == {second_run.pk}
    assert ForecastValue.objects.count() == stored_rows
    # and the killed run is closed as failed, by the same task's redelivery
    killed.refresh_from_db()
    assert killed.status == JobRun.Status.FAILED
    assert killed.finished_at is not None
    assert "Interrupted" in killed.error
    assert (
        killed.detail["task_id"]
        == (
            JobRun.objects.get(kind=KIND, status=JobRun.Status.SUCCEEDED, pk__gt=killed.pk).detail[
                "task_id"
            ]
        )
    )
    assert runs(JobRun.Status.RUNNING) == 0


@pytest.mark.django_db
def test_a_worker_run_past_its_time_limit_is_closed_but_a_command_run_is_not():
    # given runs left "running": a worker's (with its task id) started longer ago than
    # the hard time limit, a recent one of another task, and a long command run (no id)
    now = timezone.now()
    past_limit = now - timedelta(seconds=RECOMPUTE_TIME_LIMIT_SECONDS + 60)

    def running(started: datetime, detail: dict) -> JobRun:
        return JobRun.objects.create(kind=KIND, started_at=started, detail=detail)

    lost = running(past_limit, {"task_id": "t-old"})
    recent = running(now - timedelta(minutes=5), {"task_id": "t-other"})
    command = running(past_limit, {})

    # when the next recompute starts (task t-new)
    closed = job_runs_interrupted_close(
        kind=KIND, task_id="t-new", time_limit_s=RECOMPUTE_TIME_LIMIT_SECONDS, now=now
    )

    # then only the worker's run past its limit is closed, as failed with the reason
    assert closed == 1
    statuses = dict(JobRun.objects.values_list("pk", "status"))
    assert statuses == {lost.pk: "failed", recent.pk: "running", command.pk: "running"}
    lost.refresh_from_db()
    assert lost.finished_at == now
    assert lost.error.startswith("Interrupted")
