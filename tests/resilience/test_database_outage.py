"""Postgres going away while the app runs: requests fail cleanly (503, nothing changed)
and succeed again once it is back, without restarting the app.

The outage is simulated on this process's own connection (it is pointed at a closed port
and closed), so the shared Postgres server is never stopped under other tests."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from tests.factories import ExecutiveFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def postgres_away():
    port = connection.settings_dict["PORT"]

    def away() -> None:
        connection.close()
        connection.settings_dict["PORT"] = "1"  # nothing listens there

    def back() -> None:
        connection.close()
        connection.settings_dict["PORT"] = port

    yield away, back
    back()


def test_pages_api_and_health_say_503_then_recover(postgres_away):
    away, back = postgres_away
    # as a browser sees it: the server's error handling, not the test client re-raising
    client = Client(raise_request_exception=False)
    client.force_login(ExecutiveFactory())
    assert client.get(reverse("home")).status_code == 200

    away()
    page = client.get(reverse("home"))
    api = client.get("/api/v1/teams/")
    health = client.get(reverse("healthz"))

    assert page.status_code == 503
    assert "The database is unavailable" in page.content.decode()
    assert page["Retry-After"] == "15"
    assert api.status_code == 503
    assert api.json()["code"] == "unavailable"
    assert health.status_code == 503
    assert health.json()["database"]["ok"] is False

    back()  # the same process, no restart: the next request reconnects
    assert client.get(reverse("home")).status_code == 200
    assert client.get("/api/v1/teams/").status_code == 200
    assert client.get(reverse("healthz")).json()["database"]["ok"] is True


def test_any_other_error_is_a_plain_500_page_without_a_traceback(monkeypatch):
    client = Client(raise_request_exception=False)
    client.force_login(ExecutiveFactory())
    import apps.core.views as core_views

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(core_views, "user_profile", broken)
    response = client.get(reverse("home"))

    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()
    assert "boom" not in response.content.decode()
