"""Against real services: a rebuild killed half-way, and a real Celery worker on Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.core.models import JobRun
from apps.crm.models import Opportunity
from apps.kpis import services
from apps.kpis.models import DirtyDeal
from apps.kpis.selectors import kpi_value
from tests.conftest import REPO_ROOT, worker_database_url
from tests.kpis.conftest import at, build_world

D = Decimal

CHILD = """
import sys, time
import django
django.setup()
from apps.kpis import services

def progress(step):
    # the deal rollups are already deleted and rewritten inside the open transaction
    if step == "account_mrr":
        print("HALFWAY", flush=True)
        time.sleep(120)

services.rollups_rebuild(progress=progress)
"""


def _lock_is_free() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [services.ROLLUP_LOCK_KEY])
        got = cursor.fetchone()[0]
        if got:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [services.ROLLUP_LOCK_KEY])
    return got


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_killing_a_rebuild_half_way_keeps_the_previous_rollups():
    w = build_world()
    w.deal(
        owner=w.rep_a, amount="1000", stage="won", created=date(2024, 6, 1), close=date(2024, 7, 1)
    )
    services.rollups_rebuild()
    # a deal written behind the rollups' back (no hook), so the next rebuild changes them
    acme = w.account("Acme")
    Opportunity.objects.create(
        external_id="raw-1",
        name="Raw",
        account=acme,
        owner=w.rep_a,
        amount=D("500"),
        currency="USD",
        stage=w.stages["won"],
        created_date=date(2024, 6, 1),
        close_date=date(2024, 7, 2),
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cso_dashboard.settings",
        "DEBUG": "1",
        "DATABASE_URL": worker_database_url(),
        "DB_CONN_MAX_AGE": "0",
    }
    env.pop("REDIS_URL", None)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == "HALFWAY", line + child.stdout.read()
        # while it is half-way: readers see the old numbers and nobody else may rebuild
        assert kpi_value(name="bookings", period="2024-07", user=w.cso).value == D("1000.00")
        assert not _lock_is_free()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    # after the kill: the old rollups are intact and the lock was released with the session
    assert kpi_value(name="bookings", period="2024-07", user=w.cso).value == D("1000.00")
    deadline = time.monotonic() + 10
    while not _lock_is_free():
        assert time.monotonic() < deadline, "the killed rebuild still holds the lock"
        time.sleep(0.2)
    # the killed run could not record its end: it stays "running", never "succeeded"
    killed = JobRun.objects.filter(kind="rollups_full").order_by("-started_at").first()
    assert killed.status == JobRun.Status.RUNNING
    services.rollups_rebuild()
    assert kpi_value(name="bookings", period="2024-07", user=w.cso).value == D("1500.00")


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_deal_edit_reaches_the_api_through_a_real_worker(live_celery_worker, settings):
    settings.KPIS_UPDATE_QUEUE = live_celery_worker.queue
    w = build_world()
    deal = w.deal(
        owner=w.rep_a,
        amount="1000",
        stage="propose",
        created=date(2024, 6, 1),
        close=date(2024, 8, 1),
    )
    services.rollups_rebuild()
    client = APIClient()
    client.force_login(w.cso)

    def bookings() -> str:
        response = client.get("/api/v1/kpis/bookings/", {"period": "2024-Q3"})
        assert response.status_code == 200, response.content
        return response.json()["value"]

    assert bookings() == "0.00"
    # when the deal is won (the service commits; its on-commit hook enqueues the update)
    started = time.monotonic()
    w.move(deal, when=at(date(2024, 8, 3)), stage="won", close_date=date(2024, 8, 3))
    # then the worker's incremental update makes the API show the new value
    deadline = started + 30
    while bookings() != "1000.00":
        assert time.monotonic() < deadline, live_celery_worker.log()[-3000:]
        time.sleep(0.2)
    latency = time.monotonic() - started
    run = JobRun.objects.filter(kind="rollups_incremental").order_by("-started_at").first()
    assert run is not None and run.status == JobRun.Status.SUCCEEDED
    assert latency < 15, latency


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_edits_is_one_update_through_a_real_worker(start_live_celery_worker, settings):
    settings.KPIS_UPDATE_QUEUE = start_live_celery_worker.queue
    w = build_world()
    deals = [
        w.deal(
            owner=owner,
            amount="100",
            stage="propose",
            created=date(2024, 6, 1),
            close=date(2024, 8, 1),
        )
        for owner in (w.rep_a, w.rep_b, w.rep_c, w.rep_a, w.rep_b)
    ]
    services.rollups_rebuild()
    client = APIClient()
    client.force_login(w.cso)
    # when five deals are won, each edit committed on its own, before any worker runs
    for n, deal in enumerate(deals):
        w.move(deal, when=at(date(2024, 7, 1 + n)), stage="won", close_date=date(2024, 7, 1 + n))
    assert DirtyDeal.objects.count() == 10  # closed/pipeline and stage history, per deal
    # then the one task the first commit scheduled (with its countdown) settles them all
    start_live_celery_worker()
    deadline = time.monotonic() + 60
    while True:
        response = client.get("/api/v1/kpis/bookings/", {"period": "2024-07"})
        assert response.status_code == 200, response.content
        if response.json()["value"] == "500.00":
            break
        assert time.monotonic() < deadline, "the update did not reach the API"
        time.sleep(0.2)
    runs = JobRun.objects.filter(kind="rollups_incremental")
    assert runs.count() == 1
    assert runs.get().detail["deals"] == sorted(d.pk for d in deals)
    assert not DirtyDeal.objects.exists()
    assert kpi_value(name="open_pipeline", period="2024-08", user=w.cso).value == D("0.00")
