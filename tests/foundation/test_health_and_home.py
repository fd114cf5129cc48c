"""/healthz reports database, cache and broker and the data freshness without a login;
the home page greets the logged-in user by name and role."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import OperationalError, connections
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from apps.core.models import JobRun
from tests.factories import JobRunFactory, ManagerFactory, TeamFactory

pytestmark = pytest.mark.django_db

CLOSED_PORT_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}


def test_healthz_is_ok_without_login_and_has_no_run_yet(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["cache"]["ok"] is True
    assert body["broker"]["ok"] is True
    assert body["last_background_run"] is None


def test_healthz_reports_the_latest_successful_run(client):
    now = timezone.now()
    JobRunFactory(kind="old", finished_at=now - dt.timedelta(hours=2))
    latest = JobRunFactory(
        kind="rollups_rebuild", finished_at=now - dt.timedelta(minutes=5), rows=42
    )
    # a later failure and a run still going are not "fresh data"
    JobRunFactory(kind="broken", status=JobRun.Status.FAILED, finished_at=now, error="boom")
    JobRunFactory(kind="running", status=JobRun.Status.RUNNING)

    body = client.get(reverse("healthz")).json()

    assert body["last_background_run"] == {
        "kind": "rollups_rebuild",
        "finished_at": latest.finished_at.isoformat(),
        "rows": 42,
    }


def test_healthz_is_503_with_a_reason_when_the_database_fails(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused by test")

    # Patched on the backend class, so that undoing it leaves the connection untouched.
    monkeypatch.setattr(type(connections["default"]), "cursor", refuse)
    response = client.get(reverse("healthz"))
    monkeypatch.undo()

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"]["ok"] is False
    assert "connection refused by test" in body["database"]["detail"]
    assert body["last_background_run"] is None


def test_healthz_is_503_with_a_reason_when_the_cache_fails(client):
    with override_settings(CACHES=CLOSED_PORT_REDIS):
        response = client.get(reverse("healthz"))
    assert response.status_code == 503
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["cache"]["ok"] is False
    assert body["cache"]["detail"].startswith("RedisCache: ")
    assert "Connection" in body["cache"]["detail"]


def test_home_shows_the_users_name_and_role(client):
    manager = ManagerFactory(
        first_name="Grace", last_name="Hopper", title="VP Sales", team=TeamFactory(name="EMEA")
    )
    client.force_login(manager)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Welcome, Grace Hopper" in html
    assert "Sales manager" in html
    assert "VP Sales" in html


def test_home_without_login_goes_to_the_login_page(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
