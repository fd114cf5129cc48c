"""Security layer: login throttling (django-axes), response headers (CSP and friends),
no inline script in any template, and the Postgres statement timeout of web processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse

from tests.factories import PASSWORD, ExecutiveFactory, RepFactory

REPO_ROOT = Path(__file__).resolve().parents[2]


def _login(client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


@pytest.mark.django_db
def test_repeated_failures_lock_that_username_from_that_address(client, settings):
    # given a user and the default limit of five failures
    user = RepFactory()
    assert settings.AXES_FAILURE_LIMIT == 5

    # when someone fails five times from one address
    for _ in range(4):
        assert _login(client, user.username, "wrong").status_code == 200
    locked = _login(client, user.username, "wrong")

    # then that address is locked out for that username, even with the right password
    assert locked.status_code == 429
    assert "Too many failed attempts" in locked.content.decode()
    again = _login(client, user.username, PASSWORD)
    assert again.status_code == 429
    assert "_auth_user_id" not in client.session

    # and the real user, from their own address, still gets in
    other = client.__class__()
    assert _login(other, user.username, PASSWORD, ip="10.0.0.2").status_code == 302
    assert other.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_a_success_resets_the_failure_count(client):
    user = RepFactory()
    for _ in range(4):
        _login(client, user.username, "wrong")
    assert _login(client, user.username, PASSWORD).status_code == 302
    client.logout()

    # four more failures after a success are not a lockout
    for _ in range(4):
        assert _login(client, user.username, "wrong").status_code == 200
    assert _login(client, user.username, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_pages_carry_the_security_headers(client):
    client.force_login(ExecutiveFactory())

    response = client.get(reverse("home"))

    csp = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";")
    )
    assert csp["script-src"] == "'self'"  # no inline or eval'd script
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_no_template_has_inline_script():
    # Charts and page behaviour come from static files; data reaches them as json_script
    # blocks, which the browser never executes. The CSP above would block anything else.
    offenders = []
    inline = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
    handler = re.compile(r"\son[a-z]+\s*=\s*[\"']", re.I)
    for path in [*REPO_ROOT.glob("templates/**/*.html"), *REPO_ROOT.glob("apps/**/*.html")]:
        text = path.read_text()
        if inline.search(text) or handler.search(text) or "javascript:" in text:
            offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == []


@pytest.mark.postgres
@pytest.mark.django_db
def test_web_processes_get_a_statement_timeout_and_workers_do_not():
    # The WSGI module sets DB_STATEMENT_TIMEOUT_MS (30 s) before the settings load; a
    # Celery worker or a management command does not, so long rebuilds are not cut.
    probe = (
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('SHOW statement_timeout')\n"
        "    print(c.fetchone()[0])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DB_STATEMENT_TIMEOUT_MS"}
    db = connection.settings_dict  # the test database, which exists for this test
    env.update(
        DEBUG="1",
        DJANGO_SETTINGS_MODULE="cso_dashboard.settings",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    )
    web = subprocess.run(
        [sys.executable, "-c", "import cso_dashboard.wsgi\n" + probe],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    plain = subprocess.run(
        [sys.executable, "-c", "import django\ndjango.setup()\n" + probe],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert web.returncode == 0, web.stderr
    assert web.stdout.strip() == "30s"
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "0"


@pytest.mark.django_db
def test_the_login_page_is_throttled_while_request_less_calls_are_left_alone(client):
    # The throttling backend passes over request-less authenticate() calls (the test
    # client's login), but the log-in page, the only way in, always goes through it.
    user = RepFactory()
    for _ in range(5):
        _login(client, user.username, "wrong")

    assert _login(client, user.username, PASSWORD).status_code == 429
    assert client.login(username=user.username, password=PASSWORD)  # no request: not throttled


@pytest.mark.django_db
def test_log_out_everywhere_ends_every_session_of_that_user_only():
    from django.test import Client

    from apps.audit.models import AuditEvent

    user, other = RepFactory(), RepFactory()
    laptop, phone, colleague = Client(), Client(), Client()
    for browser, who in ((laptop, user), (phone, user), (colleague, other)):
        assert _login(browser, who.username, PASSWORD).status_code == 302
        assert browser.get(reverse("home")).status_code == 200

    response = laptop.post(reverse("logout_everywhere"))

    assert response.status_code == 302
    assert phone.get(reverse("home")).status_code == 302  # sent to the log-in page
    assert laptop.get(reverse("home")).status_code == 302
    assert colleague.get(reverse("home")).status_code == 200
    assert _login(phone, user.username, PASSWORD).status_code == 302  # can sign in again
    assert phone.get(reverse("home")).status_code == 200
    assert AuditEvent.objects.filter(summary__startswith="Logged out everywhere").count() == 1


@pytest.mark.django_db
def test_log_out_everywhere_is_post_only(client):
    client.force_login(RepFactory())
    assert client.get(reverse("logout_everywhere")).status_code == 405
