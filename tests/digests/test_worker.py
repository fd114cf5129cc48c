"""The real thing: a Celery worker process (Redis broker, PostgreSQL) sends a digest through
the dispatcher; with SMTP down it retries with backoff through the broker and ends failed;
after the server is back, a resend delivers the same mail once."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from apps.digests import services
from apps.digests.models import Delivery, DigestSubscription
from apps.digests.tasks import digests_dispatch_task
from tests.digests.conftest import Inbox, free_port
from tests.kpis.conftest import build_world

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]


def _wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError("timed out")


def test_a_worker_retries_with_backoff_fails_and_resends(start_live_celery_worker):
    # given a digest due now and an SMTP port nobody listens on (yet)
    from cso_dashboard.celery import app

    world = build_world()
    world.cso.email = "cso@acme.example"
    world.cso.save()
    now = timezone.now()
    sub = services.subscription_create(
        actor=world.cso,
        recipient=world.cso,
        frequency="daily",
        hour=now.hour,
        time_zone="UTC",
        sections=["deals"],
    )
    DigestSubscription.objects.filter(pk=sub.pk).update(created_at=now - timedelta(days=2))
    port = free_port()
    # the worker's default queue is its own, so the retries it queues come back to it
    queue = start_live_celery_worker.queue
    start_live_celery_worker(
        DJANGO_SETTINGS_MODULE="tests.digests.worker_settings",
        DIGESTS_TEST_QUEUE=queue,
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(port),
        EMAIL_TIMEOUT="5",
    )
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        _run(world, sub, queue, port)
    finally:
        app.conf.task_default_queue = default_queue


def _run(world, sub, queue: str, port: int) -> None:

    # when the dispatcher runs on the worker
    digests_dispatch_task.apply_async(queue=queue).get(timeout=60)

    # then the send is tried three times, a second and then two seconds apart, and fails
    delivery = Delivery.objects.get(subscription=sub)
    _wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == "failed")
    delivery.refresh_from_db()
    assert delivery.attempts == 3
    assert "Attempt 3: SMTP error" in delivery.error
    assert delivery.last_attempt_at - delivery.created_at >= timedelta(seconds=3)
    assert delivery.payload is not None

    # when the SMTP server is up and the delivery is resent
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        services.delivery_resend(actor=world.cso, delivery=delivery)
        _wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == "sent")
        # and the dispatcher runs again: nothing more is sent
        digests_dispatch_task.apply_async(queue=queue).get(timeout=60)
        time.sleep(1)
    finally:
        controller.stop()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert len(inbox.messages) == 1
    assert inbox.envelopes[0][1] == ["cso@acme.example"]
    assert inbox.messages[0]["Subject"].strip() == delivery.payload["subject"]
