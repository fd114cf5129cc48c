"""A Celery worker SIGKILLed in the middle of a digest send: no digest is sent twice and
none is lost.

What the design promises (docs/digests.md, "Scheduling and delivery"): a send first claims
its delivery row (pending -> sending), so the task Redis hands out again after the worker
died finds nothing to do; the row the dead worker left in ``sending`` is marked failed by
the dispatcher after DIGESTS_SENDING_TIMEOUT_SECONDS ("may or may not have gone out") and
is sent again only by a resend; a send that had not started when the worker died (its task
still queued) is delivered by the next worker.

The kill lands in the middle of the send deterministically: the real SMTP server holds the
first mail's DATA until the test has killed the worker, and then refuses it (451), so that
mail never went out."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from apps.digests import services
from apps.digests.models import Delivery, DigestSubscription
from tests.digests.conftest import Inbox, free_port
from tests.kpis.conftest import build_world

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

VISIBILITY_TIMEOUT_S = 5


@dataclass
class StallingInbox(Inbox):
    """Accepts mails like :class:`Inbox`, except the first one: its DATA waits until
    ``release`` is set and is then refused, so it is never delivered."""

    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    stall_next: bool = True

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.stall_next:
            self.stall_next = False
            self.stalled.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 Not accepted: the sender went away"
        return await super().handle_DATA(server, session, envelope)


def _wait_for(condition, what: str, worker=None, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        log = worker.log()[-3000:] if worker is not None else ""
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log}"
        time.sleep(0.2)


def _status(pk: int) -> str:
    return Delivery.objects.values_list("status", flat=True).get(pk=pk)


def test_a_worker_killed_mid_send_neither_sends_twice_nor_loses_a_digest(
    start_live_celery_worker, settings
):
    # given two digests due now, for the CSO and for an external address
    from cso_dashboard.celery import app

    world = build_world()
    world.cso.email = "cso@acme.example"
    world.cso.save()
    now = timezone.now()
    common = {"frequency": "daily", "hour": now.hour, "time_zone": "UTC", "sections": ["deals"]}
    subs = [
        services.subscription_create(actor=world.cso, recipient=world.cso, **common),
        services.subscription_create(
            actor=world.cso, recipient_email="board@example.com", recipient_name="Board", **common
        ),
    ]
    DigestSubscription.objects.filter(pk__in=[s.pk for s in subs]).update(
        created_at=now - timedelta(days=2)
    )
    # and a real SMTP server that holds the first mail in the middle of its DATA
    inbox = StallingInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    queue = start_live_celery_worker.queue
    worker_env = {
        "DJANGO_SETTINGS_MODULE": "tests.digests.worker_settings",
        "DIGESTS_TEST_QUEUE": queue,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_TIMEOUT": "30",
        # how long Redis waits before handing the dead worker's task to another worker
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
    }
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        _run(world, subs, inbox, start_live_celery_worker, worker_env, settings)
    finally:
        app.conf.task_default_queue = default_queue
        inbox.release.set()
        controller.stop()


def _run(world, subs, inbox, start_worker, worker_env, settings) -> None:
    # when a worker runs (started idle: a solo worker busy with a task answers no ping)
    # and the dispatcher queues both sends
    worker = start_worker(**worker_env)
    result = services.digests_dispatch()
    assert len(result.digests) == 2
    assert inbox.stalled.wait(60), worker.log()[-3000:]
    (stuck,) = Delivery.objects.filter(status=Delivery.Status.SENDING)
    other = Delivery.objects.exclude(pk=stuck.pk).get()

    # and the worker is killed while the SMTP server holds that mail
    worker.kill()
    inbox.release.set()

    # then nothing went out, the interrupted delivery stays claimed, the other one waits
    assert inbox.messages == []
    stuck.refresh_from_db()
    assert (stuck.status, stuck.attempts) == ("sending", 1)
    assert (_status(other.pk), Delivery.objects.get(pk=other.pk).attempts) == ("pending", 0)

    # when a new worker starts once the visibility timeout has passed (a worker looks for
    # unacknowledged tasks to take over as it starts, then only every 100 s)
    time.sleep(VISIBILITY_TIMEOUT_S + 1)
    again = start_worker(**worker_env)

    # then the send that never started is delivered, once
    _wait_for(lambda: _status(other.pk) == "sent", "the queued send", again)
    # and the interrupted task, handed out again by Redis, finds its delivery claimed and
    # does nothing: it is not sent a second time on its own
    _wait_for(lambda: "'skipped'" in again.log(), "the redelivered task to be skipped", again)
    assert _status(stuck.pk) == "sending"
    assert [rcpts for _, rcpts in inbox.envelopes] == [[other.to_email]]

    # when the dispatcher runs after DIGESTS_SENDING_TIMEOUT_SECONDS
    settings.DIGESTS_SENDING_TIMEOUT_SECONDS = 1
    time.sleep(1.2)
    recovered = services.digests_dispatch()

    # then the interrupted delivery is failed with the reason, and no new digest is made
    assert (recovered.interrupted, recovered.digests) == (1, [])
    stuck.refresh_from_db()
    assert stuck.status == "failed"
    assert "may or may not have gone out" in stuck.error
    assert len(inbox.messages) == 1

    # when it is resent
    services.delivery_resend(actor=world.cso, delivery=stuck)
    _wait_for(lambda: _status(stuck.pk) == "sent", "the resend", again)

    # then each digest reached its reader exactly once, the resent one as rendered before
    assert services.digests_dispatch().digests == []
    time.sleep(1)
    stuck.refresh_from_db()
    assert stuck.attempts == 1
    assert sorted(rcpts[0] for _, rcpts in inbox.envelopes) == [
        "board@example.com",
        "cso@acme.example",
    ]
    subjects = {m["To"].strip().split("<")[-1].rstrip(">"): m["Subject"] for m in inbox.messages}
    assert subjects[stuck.to_email].strip() == stuck.payload["subject"]
    assert Delivery.objects.filter(status="sent").count() == 2
