"""Two schedulers at once: two real Celery workers run the digest dispatcher at the same
moment, and the nightly rollup rebuild is triggered twice at once.

- Dispatchers: the test holds a lock on the delivery table, so both workers' dispatchers
  are caught in the same INSERT at the same time; released, they race on the unique
  (subscription, period key) and every digest is still created once and mailed once (to a
  real SMTP server).
- Rebuilds: the test holds the rollup advisory lock until both rebuilds wait for it, then
  lets one in and holds it inside (a lock on a rollup table): the other still waits for the
  advisory lock, readers see the previous numbers, and both complete one after the other
  with the same, consistent rows."""

from __future__ import annotations

import time
from datetime import date, timedelta
from decimal import Decimal

import psycopg2
import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.utils import timezone

from apps.core.models import JobRun
from apps.crm.models import Opportunity
from apps.digests import services as digests
from apps.digests.models import Delivery, DigestSubscription
from apps.digests.tasks import digests_dispatch_task
from apps.kpis import services as kpis
from apps.kpis.selectors import kpi_value
from apps.kpis.tasks import rollups_rebuild_task
from tests.digests.conftest import Inbox, free_port
from tests.kpis.conftest import build_world

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

D = Decimal


def _wait_for(condition, what: str, workers=(), seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            logs = "\n".join(w.log()[-2000:] for w in workers)
            raise AssertionError(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.2)


def _holder():
    """A second, raw connection to the test database that the test controls."""
    db = connection.settings_dict
    return psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432
    )


def _waiting(wait_event: str, query_start: str = "") -> int:
    """Backends of this test database waiting for a lock of kind ``wait_event``
    ('relation', 'advisory'), optionally only those running a query starting so."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND wait_event = %s AND query LIKE %s",
            [wait_event, query_start + "%"],
        )
        return cursor.fetchone()[0]


# --- Two dispatchers -------------------------------------------------------------------------


def test_two_dispatchers_at_once_send_every_digest_exactly_once(start_live_celery_worker):
    # given four digests due now and a real SMTP server
    from cso_dashboard.celery import app

    world = build_world()
    for user, email in ((world.cso, "cso@acme.example"), (world.manager_east, "mgr@acme.example")):
        user.email = email
        user.save()
    now = timezone.now()
    common = {"frequency": "daily", "hour": now.hour, "time_zone": "UTC", "sections": ["deals"]}
    subs = [
        digests.subscription_create(actor=world.cso, recipient=world.cso, **common),
        digests.subscription_create(
            actor=world.manager_east, recipient=world.manager_east, team=world.east, **common
        ),
        digests.subscription_create(
            actor=world.cso, recipient_email="board@example.com", recipient_name="Board", **common
        ),
        digests.subscription_create(
            actor=world.cso, recipient_email="cfo@example.com", recipient_name="CFO", **common
        ),
    ]
    DigestSubscription.objects.filter(pk__in=[s.pk for s in subs]).update(
        created_at=now - timedelta(days=2)
    )
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    queue = start_live_celery_worker.queue
    env = {
        # the workers' default queue is the test's, so the sends they queue come back
        "DJANGO_SETTINGS_MODULE": "tests.digests.worker_settings",
        "DIGESTS_TEST_QUEUE": queue,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_TIMEOUT": "10",
    }
    workers = [start_live_celery_worker(**env), start_live_celery_worker(**env)]
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    holder = _holder()
    try:
        # when both workers run the dispatcher while the delivery table refuses inserts
        with holder.cursor() as cursor:
            cursor.execute(f'LOCK TABLE "{Delivery._meta.db_table}" IN SHARE ROW EXCLUSIVE MODE')
        results = [digests_dispatch_task.apply_async(queue=queue) for _ in workers]
        _wait_for(
            lambda: _waiting("relation", f'INSERT INTO "{Delivery._meta.db_table}"') == 2,
            "both dispatchers to reach the same insert",
            workers,
        )
        holder.commit()  # both go at once
        counts = [result.get(timeout=60) for result in results]
        _wait_for(
            lambda: Delivery.objects.filter(status="sent").count() == len(subs),
            "every digest to be sent",
            workers,
        )
        time.sleep(1)  # room for a duplicate send to show up
    finally:
        holder.close()
        app.conf.task_default_queue = default_queue
        controller.stop()

    # then every digest was created by exactly one of the two dispatchers
    assert sum(c["digests"] for c in counts) == len(subs)
    assert [c["errors"] for c in counts] == [0, 0]
    assert Delivery.objects.count() == len(subs)
    assert sorted(Delivery.objects.values_list("attempts", flat=True)) == [1, 1, 1, 1]
    # and mailed exactly once to each reader
    assert sorted(rcpts[0] for _, rcpts in inbox.envelopes) == [
        "board@example.com",
        "cfo@example.com",
        "cso@acme.example",
        "mgr@acme.example",
    ]
    assert len(inbox.messages) == len(subs)


# --- Two rebuilds ----------------------------------------------------------------------------


def test_two_rebuilds_at_once_run_one_at_a_time_and_agree(start_live_celery_worker):
    # given rollups built from one won deal, and a second deal written behind their back
    w = build_world()
    w.deal(
        owner=w.rep_a, amount="1000", stage="won", created=date(2024, 6, 1), close=date(2024, 7, 1)
    )
    kpis.rollups_rebuild()
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

    def runs(status: str) -> list[JobRun]:
        return list(
            JobRun.objects.filter(kind="rollups_full", status=status).order_by("finished_at")
        )

    before = {run.pk for run in runs(JobRun.Status.SUCCEEDED)}
    rollup_table = kpis.ROLLUP_MODELS[0]._meta.db_table
    workers = [start_live_celery_worker(), start_live_celery_worker()]
    advisory, inside = _holder(), _holder()
    advisory.autocommit = True
    try:
        with advisory.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [kpis.ROLLUP_LOCK_KEY])
        # when the rebuild is triggered twice at once, one task on each worker
        for worker in workers:
            rollups_rebuild_task.apply_async(queue=worker.queue)
        _wait_for(lambda: _waiting("advisory") == 2, "both rebuilds to wait", workers)
        assert len(runs(JobRun.Status.RUNNING)) == 2

        # and one of them gets the lock but is held inside its rebuild
        with inside.cursor() as cursor:
            cursor.execute(f'LOCK TABLE "{rollup_table}" IN SHARE MODE')
        with advisory.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [kpis.ROLLUP_LOCK_KEY])
        _wait_for(
            lambda: (_waiting("relation"), _waiting("advisory")) == (1, 1),
            "one rebuild inside, the other waiting",
            workers,
        )

        # then the other waits for the lock the first holds, and readers keep the old numbers
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND objid = %s AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())",
                [kpis.ROLLUP_LOCK_KEY],
            )
            assert cursor.fetchone()[0] == 1
        assert bookings() == D("1000.00")

        # when the first may finish
        inside.commit()
        _wait_for(
            lambda: len(runs(JobRun.Status.SUCCEEDED)) == len(before) + 2,
            "both rebuilds to finish",
            workers,
        )
    finally:
        inside.close()
        advisory.close()

    # then both succeeded, one after the other, with the same rows, and the numbers agree
    new = [run for run in runs(JobRun.Status.SUCCEEDED) if run.pk not in before]
    assert runs(JobRun.Status.FAILED) == []
    first, second = new
    assert first.finished_at <= second.finished_at
    assert first.rows == second.rows > 0
    assert first.detail["rows"] == second.detail["rows"]
    stored = {}
    for model in kpis.ROLLUP_MODELS:
        stored[model._meta.db_table] = model.objects.count()
    assert sum(stored.values()) == second.rows
    assert bookings() == D("1500.00")
