"""Fixtures for the digest tests: the dashboards' hand-built book of deals (Q3 2024; see
tests/dashboards/conftest.py), a real SMTP server (aiosmtpd on a free loopback port) and
Django's SMTP backend pointed at it.

The book, as the manager of East sees it (East = rep_a + East SMB's rep_b), Q3 2024:
bookings 1000 + 3000 = 4000.00; quota 3 x (1000 + 500) = 4500.00; attainment 88.9 %;
open pipeline 10000 + 4000 = 14000.00; coverage 14000 / (4500 - 4000) = 28.0x; win rate
2 / 3 = 66.7 %; average deal 2000.00; one new logo (Beta). West (rep_c) booked Gamma's
EUR 500 = USD 550.00, which East's manager must never see.
"""

from __future__ import annotations

import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from django.core.cache import cache

from apps.digests.models import DigestSubscription
from apps.kpis.services import rollups_rebuild
from tests.dashboards.conftest import add_book
from tests.kpis.conftest import World, build_world

#: The digest's moment: Monday 30 September 2024, 07:00 UTC (the last day of Q3).
AS_OF_NOW = datetime(2024, 9, 30, 7, 5, tzinfo=UTC)
SITE = "http://digests.test"


@dataclass
class Inbox:
    """Mails the SMTP server accepted, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd handler hook
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.lock:
            self.messages.append(parsed)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1: yields (inbox, port)."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def smtp_settings(settings):
    """Send through Django's real SMTP backend; point it somewhere with ``settings``."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    settings.SITE_URL = SITE
    settings.DIGESTS_RETRY_BACKOFF_SECONDS = 1
    return settings


@pytest.fixture
def inbox(smtp_server, smtp_settings) -> Inbox:
    box, port = smtp_server
    smtp_settings.EMAIL_PORT = port
    return box


@pytest.fixture(autouse=True)
def _own_pending_key(monkeypatch):
    """The KPI update coalescing key of this test's own (parallel runs share Redis)."""
    from apps.kpis import services

    key = f"kpis:test-pending:{uuid.uuid4().hex}"
    monkeypatch.setattr(services, "UPDATE_PENDING_KEY", key)
    yield
    cache.delete(key)


@pytest.fixture
def book(db) -> World:
    world = build_world()
    add_book(world)
    rollups_rebuild()
    for user, email in (
        (world.cso, "cso@acme.example"),
        (world.manager_east, "mgr@acme.example"),
        (world.rep_a, "rep_a@acme.example"),
    ):
        user.email = email
        user.first_name = user.username.replace("_", " ").title()
        user.save()
    return world


def backdate(sub: DigestSubscription, when: datetime = datetime(2024, 1, 1, tzinfo=UTC)) -> None:
    """Subscriptions count from their creation; the tests' clock is in 2024."""
    DigestSubscription.objects.filter(pk=sub.pk).update(created_at=when)
    sub.refresh_from_db()


@pytest.fixture(scope="session", autouse=True)
def _chart_browser():
    """One Chromium for the charts of the whole run, closed before pytest's output ends."""
    from apps.digests.images import renderer_close

    yield
    renderer_close()
