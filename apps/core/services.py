"""Writes shared by every app: recording background job runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from apps.core.models import JobRun


@dataclass
class RunHandle:
    """Lets the body of :func:`job_run_record` report its row count and details."""

    run: JobRun
    rows: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def job_run_record(*, kind: str) -> Iterator[RunHandle]:
    """Record one run of a background job: started, then succeeded (with rows) or failed
    (with the error). The run row is written outside the job's own transaction, so a
    failed job still leaves its failed run visible."""
    run = JobRun.objects.create(kind=kind, status=JobRun.Status.RUNNING, started_at=timezone.now())
    handle = RunHandle(run=run)
    try:
        yield handle
    except BaseException as exc:
        JobRun.objects.filter(pk=run.pk).update(
            status=JobRun.Status.FAILED,
            finished_at=timezone.now(),
            rows=handle.rows,
            error=f"{exc.__class__.__name__}: {exc}"[:10000],
            detail=handle.detail,
        )
        raise
    JobRun.objects.filter(pk=run.pk).update(
        status=JobRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        rows=handle.rows,
        detail=handle.detail,
    )
    run.refresh_from_db()
