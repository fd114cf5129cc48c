"""Celery task for large imports: thin, one service call, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from apps.imports.services import import_job_check, import_job_run, import_jobs_recover


@shared_task(name="imports.import_job_run", acks_late=True, time_limit=2 * 60 * 60)
def import_job_run_task(job_id: int) -> str:
    """Run import job ``job_id`` (the job row holds the file, mapping and user); the run is
    recorded as a JobRun. A job already finished is left alone, so redelivery is safe."""
    job = import_job_run(job_id=job_id)
    return job.status


@shared_task(name="imports.import_job_check", acks_late=True, time_limit=60 * 60)
def import_job_check_task(job_id: int) -> int:
    """Dry-run draft job ``job_id`` for the preview step; returns how many errors it
    found. Writes nothing but the stored report, so running it twice is harmless."""
    job = import_job_check(job_id=job_id)
    return int(job.preview_report.get("error_count", 0))


@shared_task(name="imports.import_jobs_recover", acks_late=True, time_limit=10 * 60)
def import_jobs_recover_task() -> int:
    """Queue again the committed imports whose task was lost (from beat); returns how many."""
    return len(import_jobs_recover())
