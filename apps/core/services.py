"""Writes shared by every app: recording background job runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from apps.core.models import JobRun


@dataclass
class RunHandle:
    """Lets the body of :func:`job_run_record` report its row count and details."""

    run: JobRun
    rows: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


def job_runs_interrupted_close(
    *, kind: str, task_id: str | None, time_limit_s: int | None, now: datetime | None = None
) -> int:
    """Mark failed the ``kind`` runs a lost worker left "running" (SIGKILL, OOM, a hard time
    limit: no code of the run is left to record its end). They are found as the next run
    starts: a run of the same Celery task id (Redis hands a task whose worker died to the
    next worker, so the same id running again means the earlier attempt is dead), or a
    worker's run older than the task's hard time limit (a run of a management command has
    no task id and no time limit, so age says nothing about it). Its own transaction
    rolled back, so it stored nothing; only the record is closed, so it never looks
    successful nor still running. Returns the number of runs closed."""
    now = now or timezone.now()
    dead = Q(pk__in=[])
    if time_limit_s:
        dead |= Q(detail__has_key="task_id", started_at__lt=now - timedelta(seconds=time_limit_s))
    if task_id:
        dead |= Q(detail__task_id=task_id)
    return (
        JobRun.objects.filter(kind=kind, status=JobRun.Status.RUNNING)
        .filter(dead)
        .update(
            status=JobRun.Status.FAILED,
            finished_at=now,
            error=(
                "Interrupted: the worker running it was lost (killed, out of memory or past "
                "its time limit) before it finished; nothing it computed was stored. Found "
                f"when the next run started at {now.isoformat(timespec='seconds')}."
            ),
        )
    )


@contextlib.contextmanager
def job_run_record(
    *, kind: str, task_id: str | None = None, time_limit_s: int | None = None
) -> Iterator[RunHandle]:
    """Record one run of a background job: started, then succeeded (with rows) or failed
    (with the error). The run row is written outside the job's own transaction, so a
    failed job still leaves its failed run visible.

    A worker's run passes its Celery ``task_id`` (kept on the row from the start) and its
    hard ``time_limit_s``: the runs of ``kind`` a lost worker left "running" are closed
    first (:func:`job_runs_interrupted_close`)."""
    if task_id or time_limit_s:
        job_runs_interrupted_close(kind=kind, task_id=task_id, time_limit_s=time_limit_s)
    own = {"task_id": task_id} if task_id else {}
    run = JobRun.objects.create(
        kind=kind, status=JobRun.Status.RUNNING, started_at=timezone.now(), detail=own
    )
    handle = RunHandle(run=run, detail=dict(own))
    try:
        yield handle
    except BaseException as exc:
        JobRun.objects.filter(pk=run.pk).update(
            status=JobRun.Status.FAILED,
            finished_at=timezone.now(),
            rows=handle.rows,
            error=f"{exc.__class__.__name__}: {exc}"[:10000],
            detail={**own, **handle.detail},
        )
        raise
    JobRun.objects.filter(pk=run.pk).update(
        status=JobRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        rows=handle.rows,
        detail={**own, **handle.detail},
    )
    run.refresh_from_db()
