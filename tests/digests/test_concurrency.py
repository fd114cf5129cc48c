"""Exactly-once under concurrency, on PostgreSQL: dispatchers racing in threads (each with
its own database connection and transaction) send one mail per subscription and period."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from apps.digests import services
from apps.digests.models import Delivery
from apps.kpis.services import rollups_rebuild
from tests.dashboards.conftest import add_book
from tests.digests.conftest import AS_OF_NOW, backdate
from tests.kpis.conftest import build_world

DISPATCHERS = 6


@pytest.fixture
def committed_book(transactional_db):
    world = build_world()
    add_book(world)
    rollups_rebuild()
    for user, email in ((world.cso, "cso@acme.example"), (world.manager_east, "mgr@acme.example")):
        user.email = email
        user.save()
    return world


def _race(now, n: int = DISPATCHERS) -> list:
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(services.digests_dispatch(now=now))
        except Exception as exc:  # reported below; a thread must not die silently
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors, errors
    assert len(results) == n
    return results


@pytest.mark.postgres
def test_concurrent_dispatchers_send_one_mail_per_subscription_and_period(committed_book, inbox):
    # given three due subscriptions (one with charts) and an alert about to fire
    book = committed_book
    subs = [
        services.subscription_create(
            actor=book.manager_east,
            recipient=book.manager_east,
            team=book.east,
            frequency="weekly",
            weekday=0,
            hour=7,
            time_zone="UTC",
            sections=["headline", "deals"],
        ),
        services.subscription_create(
            actor=book.cso,
            recipient=book.cso,
            team=None,
            frequency="daily",
            hour=6,
            time_zone="Europe/Berlin",
            sections=["deals"],
        ),
        services.subscription_create(
            actor=book.cso,
            recipient_email="board@example.com",
            recipient_name="Board",
            team=None,
            frequency="monthly",
            day_of_month=30,
            hour=0,
            time_zone="UTC",
            sections=["customers"],
        ),
    ]
    for sub in subs:
        backdate(sub)
    services.alert_create(
        actor=book.cso, subscription=subs[1], kpi="attainment", operator="below", threshold=100
    )

    # when six dispatchers run at the same moment, then six more a minute later
    first = _race(AS_OF_NOW)
    second = _race(AS_OF_NOW + timedelta(minutes=1))

    # then each subscription got exactly one digest and the alert exactly one mail
    created = sum(len(r.digests) for r in first + second)
    fired = sum(len(r.alerts) for r in first + second)
    assert (created, fired) == (3, 1)
    assert Delivery.objects.count() == 4
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    assert sorted(r[0] for _, r in inbox.envelopes) == [
        "board@example.com",
        "cso@acme.example",
        "cso@acme.example",
        "mgr@acme.example",
    ]
    assert len(inbox.messages) == 4
