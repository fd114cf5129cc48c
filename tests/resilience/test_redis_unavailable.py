"""Redis (cache and task broker) unreachable: pages render from Postgres with a "may be
stale" notice, writes still save, /healthz says 503 with the reason, nothing is a 500.

Redis is "down" here by pointing the cache and the broker at a closed port, so these
tests need no real Redis and cannot disturb one.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from django.core.cache import caches
from django.urls import reverse

from apps.core import cache as resilient
from apps.crm.models import Opportunity, OpportunityHistory
from apps.kpis.models import DirtyDeal
from cso_dashboard.celery import app as celery_app
from tests.api.helpers import client_for
from tests.factories import ExecutiveFactory, OpportunityFactory

DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def redis_down(settings):
    # Celery's conf reads through to the Django settings, so take its values before the
    # settings change: restoring a value read afterwards would pin the changed one.
    conf = celery_app.conf
    saved = (conf.broker_url, conf.task_always_eager, conf.broker_connection_max_retries)
    settings.CACHES = {
        "default": {
            "BACKEND": "apps.core.cache.ResilientRedisCache",
            "LOCATION": DOWN,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    settings.CELERY_TASK_ALWAYS_EAGER = False
    conf.broker_url, conf.task_always_eager, conf.broker_connection_max_retries = DOWN, False, 0
    celery_app._pool = None
    resilient._forget_outage()
    yield
    conf.broker_url, conf.task_always_eager, conf.broker_connection_max_retries = saved
    celery_app._pool = None
    resilient._forget_outage()


def test_the_cache_answers_like_an_empty_one_and_warns_once(redis_down, caplog):
    cache = caches["default"]
    with caplog.at_level(logging.WARNING, logger="apps.core.cache"):
        assert cache.get("k", "fallback") == "fallback"
        assert cache.add("k", 1) is True
        cache.set("k", 1)
        assert cache.get_many(["a", "b"]) == {}
        assert cache.delete("k") is False
    assert resilient.redis_unavailable()
    assert len([r for r in caplog.records if "Redis cache unavailable" in r.message]) == 1


@pytest.mark.django_db
def test_pages_render_with_a_stale_data_notice(redis_down, client):
    client.force_login(ExecutiveFactory())
    caches["default"].get("warm-up")  # the first failed call marks the outage

    response = client.get(reverse("home"))

    assert response.status_code == 200
    assert "figures may not include the latest changes" in response.content.decode()


@pytest.mark.django_db
def test_no_notice_while_redis_is_fine(client):
    resilient._forget_outage()
    client.force_login(ExecutiveFactory())
    assert 'data-testid="stale-notice"' not in client.get(reverse("home")).content.decode()


@pytest.mark.django_db
def test_healthz_says_503_and_why(redis_down, client):
    response = client.get(reverse("healthz"))

    body = response.json()
    assert response.status_code == 503
    assert body["database"]["ok"] is True
    assert body["cache"]["ok"] is False
    assert "ConnectionError" in body["cache"]["detail"]
    assert body["broker"]["ok"] is False


@pytest.mark.django_db(transaction=True)
def test_a_deal_edit_saves_and_its_kpi_update_waits_for_the_nightly_rebuild(redis_down):
    boss = ExecutiveFactory()
    deal = OpportunityFactory(amount=Decimal("100.00"))
    DirtyDeal.objects.all().delete()

    response = client_for(boss).patch(
        f"/api/v1/opportunities/{deal.pk}/", {"amount": "250.00"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert Opportunity.objects.get(pk=deal.pk).amount == Decimal("250.00")
    assert OpportunityHistory.objects.filter(opportunity=deal).count() == 2
    # the deal to update stays queued in Postgres for the next update or the nightly run
    assert DirtyDeal.objects.filter(deal_id=deal.pk).exists()


def test_the_fixture_leaves_celery_as_it_found_it(settings):
    # runs after the tests above (file order): later tests rely on eager tasks in the test
    # settings, so the fixture must not leave Celery's conf pinned to its outage values
    assert celery_app.conf.task_always_eager is True
    assert celery_app.conf.broker_url == settings.CELERY_BROKER_URL
