"""A large generated file through the Celery path: queued on commit, run by the task
(in process here; by a real worker on Postgres + Redis), progress and JobRun recorded."""

from __future__ import annotations

import time

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from apps.core.models import JobRun
from apps.crm.models import Opportunity, OpportunityHistory
from apps.imports.models import ImportJob
from apps.imports.services import import_job_commit, import_job_create, import_job_run
from apps.imports.tasks import import_job_run_task

ROWS = 6000  # above the default task threshold of 5,000 rows

HEADER = "external_id,name,account,owner,amount,currency,stage,created_date,close_date\n"


def big_file(rows: int = ROWS, *, bad_line: int | None = None) -> bytes:
    lines = [HEADER]
    for n in range(rows):
        amount = "-1" if bad_line == n + 2 else f"{100 + n % 900}.50"
        owner = "ada@example.com" if n % 2 else "bob@example.com"
        stage = ("Prospecting", "Negotiation", "Won", "Lost")[n % 4]
        lines.append(
            f"BIG-{n:06d},Deal {n},ACC-{1 + n % 2},{owner},{amount},USD,{stage},"
            f"2025-01-{1 + n % 28:02d},2025-03-{1 + n % 28:02d}\n"
        )
    return "".join(lines).encode()


@pytest.mark.django_db
def test_a_large_file_goes_through_the_task(crm, django_capture_on_commit_callbacks):
    # given a draft job of 6,000 rows
    job = import_job_create(
        kind="opportunities", file_name="big.csv", data=big_file(), user=crm.admin
    )
    assert job.row_count == ROWS
    # when it is committed, it is queued, and the task runs once the request commits
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        queued = import_job_commit(job=job, user=crm.admin)
        assert queued.status == ImportJob.Status.QUEUED
    assert callbacks, "the task is queued on commit"
    job.refresh_from_db()
    # then everything is written, with history, and the run is recorded
    assert job.status == ImportJob.Status.COMMITTED, job.errors[:3]
    assert (job.created, job.updated, job.unchanged, job.progress) == (ROWS, 0, 0, 100)
    assert Opportunity.objects.count() == ROWS
    assert OpportunityHistory.objects.filter(changed_fields="created").count() == ROWS
    run = JobRun.objects.get(kind="imports.file_import")
    assert run.status == "succeeded" and run.rows == ROWS and run.detail["job"] == job.pk
    # running the task again (a redelivery) changes nothing
    assert import_job_run_task.apply(args=(job.pk,)).get() == "committed"
    assert Opportunity.objects.count() == ROWS


@pytest.mark.django_db
def test_one_bad_row_in_a_large_file_writes_nothing(crm):
    job = import_job_create(
        kind="opportunities", file_name="big.csv", data=big_file(bad_line=4321), user=crm.admin
    )
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    job = import_job_run(job_id=job.pk)
    assert job.status == ImportJob.Status.FAILED
    assert job.errors == [
        {"line": 4321, "field": "amount", "message": "negative amount -1: must be zero or more."}
    ]
    assert not Opportunity.objects.exists()
    assert bytes(job.file_data), "a failed job keeps its file for another look"


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("loading", "worker_env"),
    [
        ("row by row", {"IMPORTS_SQL_LOAD": "false"}),
        ("set-based", {"IMPORTS_SQL_LOAD_MIN_ROWS": "1000"}),
    ],
)
def test_a_real_worker_runs_the_import(crm, start_live_celery_worker, loading, worker_env):
    # given the wizard with a large file, and a real worker on its own queue that loads
    # it row by row or set-based (apps.imports.sqlload)
    live_celery_worker = start_live_celery_worker(**worker_env)
    client = Client()
    client.force_login(crm.admin)
    job = import_job_create(
        kind="opportunities", file_name="big.csv", data=big_file(), user=crm.admin
    )
    with override_settings(IMPORTS_TASK_QUEUE=live_celery_worker.queue):
        response = client.post(reverse("imports:preview", args=[job.pk]), {"commit": "1"})
    assert response.status_code == 302
    # when the page polls the progress endpoint
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        data = client.get(reverse("imports:progress", args=[job.pk])).json()
        seen.append((data["status"], data["percent"]))
        if data["finished"]:
            break
        time.sleep(0.2)
    # then the worker committed every row and the endpoint said so
    assert seen[-1] == ("committed", 100), live_celery_worker.log()[-3000:]
    assert Opportunity.objects.count() == ROWS
    assert OpportunityHistory.objects.filter(changed_fields="created").count() == ROWS
    assert JobRun.objects.get(kind="imports.file_import").status == "succeeded"
    set_based = f"big.csv: {ROWS} new deals loaded set-based" in live_celery_worker.log()
    assert set_based == (loading == "set-based"), live_celery_worker.log()[-3000:]
