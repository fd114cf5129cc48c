"""Large imports whose task was lost (a broker restarted without persistence) are queued
again by the recovery sweep, and a job is never run by two workers at once."""

from __future__ import annotations

from datetime import timedelta

import psycopg2
import pytest
from django.db import connection
from django.utils import timezone

from apps.crm.models import Opportunity
from apps.imports.models import ImportJob
from apps.imports.services import (
    JOB_LOCK_CLASS,
    import_job_create,
    import_job_run,
    import_jobs_recover,
)
from apps.imports.tasks import import_jobs_recover_task
from tests.imports.test_celery import big_file

ROWS = 50


def _committed_job(crm, *, queued_minutes_ago: float, status=ImportJob.Status.QUEUED):
    """A job as import_job_commit leaves it, whose task message never reached a worker."""
    job = import_job_create(
        kind="opportunities", file_name="big.csv", data=big_file(ROWS), user=crm.admin
    )
    ImportJob.objects.filter(pk=job.pk).update(
        status=status, queued_at=timezone.now() - timedelta(minutes=queued_minutes_ago)
    )
    return job


@pytest.mark.django_db
def test_a_job_whose_task_was_lost_is_queued_again_and_runs(
    crm, django_capture_on_commit_callbacks
):
    # given a job queued 20 minutes ago and one cut short while validating, both lost
    lost = _committed_job(crm, queued_minutes_ago=20)
    cut = _committed_job(crm, queued_minutes_ago=30, status=ImportJob.Status.VALIDATING)
    # when the sweep runs (tasks run in process here)
    with django_capture_on_commit_callbacks(execute=True):
        recovered = import_jobs_recover()
    # then both are queued again and their task commits them
    assert sorted(recovered) == sorted([lost.pk, cut.pk])
    for job in (lost, cut):
        job.refresh_from_db()
        assert job.status == ImportJob.Status.COMMITTED, job.errors[:3]
    assert Opportunity.objects.count() == ROWS  # the same file twice: upserts, no twins


@pytest.mark.django_db
def test_recent_drafts_and_finished_jobs_are_left_alone(crm, django_capture_on_commit_callbacks):
    recent = _committed_job(crm, queued_minutes_ago=5)
    draft = import_job_create(
        kind="opportunities", file_name="draft.csv", data=big_file(ROWS), user=crm.admin
    )
    done = _committed_job(crm, queued_minutes_ago=60, status=ImportJob.Status.COMMITTED)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert import_jobs_recover_task.apply().get() == 0
    assert not callbacks
    statuses = dict(ImportJob.objects.values_list("pk", "status"))
    assert statuses == {
        recent.pk: ImportJob.Status.QUEUED,
        draft.pk: ImportJob.Status.DRAFT,
        done.pk: ImportJob.Status.COMMITTED,
    }
    assert not Opportunity.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_job_being_run_elsewhere_is_neither_recovered_nor_run_twice(
    crm, django_capture_on_commit_callbacks
):
    # given a job that another worker is running (it holds the job's lock)
    job = _committed_job(crm, queued_minutes_ago=20, status=ImportJob.Status.VALIDATING)
    params = connection.get_connection_params()
    other = psycopg2.connect(
        **{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port")}
    )
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [JOB_LOCK_CLASS, job.pk])
        # when the sweep runs, and a redelivered task runs the job
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert import_jobs_recover() == []
        assert not callbacks
        import_job_run(job_id=job.pk)
        # then neither touched it
        job.refresh_from_db()
        assert job.status == ImportJob.Status.VALIDATING
        assert not Opportunity.objects.exists()
    finally:
        # As when a worker dies: its backend ends and the lock goes with it. close() returns
        # before the server has released the lock, so end the backend and wait for it.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s, 10000)", [other.get_backend_pid()])
        other.close()
    # and once that worker is gone, the job runs
    assert import_job_run(job_id=job.pk).status == ImportJob.Status.COMMITTED
