"""Suite-wide gating of tests that need real services, and the backend summary line.

Markers (declared in pyproject.toml):

- ``postgres``: runs only when the default database is PostgreSQL (DATABASE_URL=postgres://...);
- ``redis`` and ``worker``: need a reachable REDIS_URL;
- ``e2e``: needs the playwright package and Debian's /usr/bin/chromium.

Outside CI a test whose requirement is missing is skipped with a reason that says what to set;
``-ra`` (pyproject.toml) lists those reasons at the end of the run. With CI=true the same
situation is a usage error at collection: CI must never pass by silently skipping.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import quote

import pytest

CHROMIUM_PATH = Path("/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Backends:
    """What this run can reach. Computed once, without touching the test database."""

    database_vendor: str
    database_name: str  # which test database pytest-django creates, for the summary line
    redis_url: str
    redis_error: str | None
    chromium: bool
    playwright: bool

    @property
    def redis_ok(self) -> bool:
        return bool(self.redis_url) and self.redis_error is None


def _redis_error(url: str) -> str | None:
    """None when Redis at ``url`` answers PING within 2 seconds, else why not."""
    if not url:
        return "REDIS_URL is not set"
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any connection or protocol error means "not reachable"
        return f"{url} is not reachable ({exc.__class__.__name__}: {exc})"
    return None


@cache
def backends() -> Backends:
    from django.conf import settings

    database = settings.DATABASES["default"]
    engine = database["ENGINE"]
    vendor = "postgresql" if "postgresql" in engine else engine.rsplit(".", 1)[-1]
    redis_url = getattr(settings, "REDIS_URL", "") or ""
    test_name = (database.get("TEST") or {}).get("NAME")
    if test_name:
        where = f"test database {test_name}"
    elif vendor == "sqlite3":
        where = "test database in memory"
    else:
        where = f"test database test_{database.get('NAME', '')}"
    return Backends(
        database_vendor=vendor,
        database_name=where,
        redis_url=redis_url,
        redis_error=_redis_error(redis_url),
        chromium=CHROMIUM_PATH.exists(),
        playwright=importlib.util.find_spec("playwright") is not None,
    )


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_requirement(marker: str, found: Backends) -> str | None:
    """Why a test carrying ``marker`` cannot run here, or None if it can."""
    if marker == "postgres" and found.database_vendor != "postgresql":
        return (
            f"needs PostgreSQL: set DATABASE_URL=postgres://... "
            f"(the database is {found.database_vendor})"
        )
    if marker in {"redis", "worker"} and not found.redis_ok:
        return f"needs Redis: set REDIS_URL=redis://... ({found.redis_error})"
    if marker == "e2e":
        if not found.playwright:
            return "needs playwright: pip install -r requirements-dev.txt"
        if not found.chromium:
            return f"needs Chromium at {CHROMIUM_PATH}: apt-get install chromium"
    return None


GATED_MARKERS = ("postgres", "redis", "worker", "e2e")
# The words every skip reason above starts with, to count backend skips in the summary.
BACKEND_NAMES = ("PostgreSQL", "Redis", "playwright", "Chromium")


def backends_line() -> str:
    found = backends()
    redis_text = f"yes ({found.redis_url})" if found.redis_ok else f"no ({found.redis_error})"
    return (
        f"backends: database={found.database_vendor} ({found.database_name}), "
        f"redis={redis_text}, chromium={'yes' if found.chromium else 'no'}, "
        f"CI={'yes' if in_ci() else 'no'}"
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [backends_line()]


def pytest_sessionstart(session: pytest.Session) -> None:
    # -q hides the report header; the backends in use are worth one line even then.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and session.config.get_verbosity() < 0:
        reporter.write_line(backends_line())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    found = backends()
    blocked: dict[str, list[str]] = {}
    for item in items:
        for marker in GATED_MARKERS:
            if item.get_closest_marker(marker) is None:
                continue
            reason = missing_requirement(marker, found)
            if reason is None:
                continue
            if in_ci():
                blocked.setdefault(reason, []).append(item.nodeid)
            else:
                item.add_marker(pytest.mark.skip(reason=reason))
            break
    if blocked:
        lines = ["CI=true, so tests must run, not skip, but their services are missing:"]
        for reason, node_ids in blocked.items():
            lines.append(f"  {reason}: {len(node_ids)} test(s), e.g. {node_ids[0]}")
        raise pytest.UsageError("\n".join(lines))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    gated = [report for report in skipped if _is_backend_skip(report)]
    if gated:
        terminalreporter.write_line(
            f"{len(gated)} test(s) skipped for missing backends (reasons in the summary); "
            "run with DATABASE_URL/REDIS_URL set, as CI does, to run them.",
            yellow=True,
        )


def _is_backend_skip(report) -> bool:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""
    return any(f"needs {what}" in reason for what in BACKEND_NAMES)


# --- A real Celery worker -----------------------------------------------------------------
# Tests marked ``postgres``, ``redis`` and ``worker`` (and django_db(transaction=True), so the
# worker sees committed rows) use ``live_celery_worker`` or, to start, kill and restart
# workers themselves, ``start_live_celery_worker``. The worker is a separate process on the
# normal settings (DEBUG=1, REDIS_URL set, so not eager) pointed at the test database that
# pytest-django created; while the fixture is active the test process sends tasks through
# Redis too, instead of running them in process as the test settings otherwise do.

WORKER_START_TIMEOUT_S = 60


@dataclass
class LiveWorker:
    """One ``celery worker`` subprocess consuming only ``queue``."""

    process: subprocess.Popen
    queue: str
    node_name: str  # celery@-style name, for app.control.ping/inspect(destination=[...])
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no warm shutdown, no acks."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 20) -> None:
        """Warm shutdown (SIGTERM: finish the current task), SIGKILL if it does not exit."""
        if not self.alive:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class LiveWorkerStarter:
    """Starts workers on one queue per test and remembers them for teardown."""

    queue: str
    log_dir: Path
    env: dict[str, str]
    started: list[LiveWorker] = field(default_factory=list)

    def __call__(self, **extra_env: str) -> LiveWorker:
        """Start a worker and wait until it answers a ping. ``extra_env`` adds or overrides
        environment variables of this worker only (e.g. a setting under test)."""
        from cso_dashboard.celery import app

        node_name = f"cso-test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        log_path = self.log_dir / f"worker-{len(self.started) + 1}.log"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "cso_dashboard",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--loglevel=INFO",
            "-Q",
            self.queue,
            "-n",
            node_name,
            # Gossip, mingle and heartbeats only slow the start of a worker that is alone.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env={**self.env, **extra_env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = LiveWorker(
            process=process, queue=self.queue, node_name=node_name, log_path=log_path
        )
        self.started.append(worker)
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not worker.alive:
                pytest.fail(f"The Celery worker exited at start:\n{worker.log()[-4000:]}")
            if app.control.ping(destination=[node_name], timeout=1.0):
                return worker
        worker.kill()
        pytest.fail(
            f"The Celery worker did not answer within {WORKER_START_TIMEOUT_S}s:\n"
            f"{worker.log()[-4000:]}"
        )


def worker_database_url() -> str:
    """A DATABASE_URL for the test database that this pytest run created and uses."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    user = quote(str(db.get("USER") or ""), safe="")
    password = quote(str(db.get("PASSWORD") or ""), safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = str(db.get("HOST") or "")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(str(db['NAME']), safe='')}"


@pytest.fixture
def start_live_celery_worker(
    django_db_setup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., LiveWorker]]:
    """A function that starts a real Celery worker on this test's own queue.

    Call it again after ``worker.kill()`` to restart on the same queue: with late acks, a
    message whose worker was killed is delivered again once the broker's visibility timeout
    has passed. Every worker is stopped at teardown.
    """
    from cso_dashboard.celery import app

    found = backends()
    for marker in ("postgres", "worker"):
        reason = missing_requirement(marker, found)
        if reason is not None:
            pytest.fail(f"start_live_celery_worker {reason}; mark the test postgres and worker")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cso_dashboard.settings",
        "DEBUG": "1",
        "DATABASE_URL": worker_database_url(),
        "REDIS_URL": found.redis_url,
        # Close the connection after each task so the test database can be flushed and
        # dropped at teardown without waiting on an idle worker connection.
        "DB_CONN_MAX_AGE": "0",
        "PYTHONUNBUFFERED": "1",
    }
    starter = LiveWorkerStarter(
        queue=f"cso-test-{uuid.uuid4().hex[:12]}",
        log_dir=tmp_path_factory.mktemp("celery-worker"),
        env=env,
    )
    was_eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield starter
    finally:
        app.conf.task_always_eager = was_eager
        for worker in starter.started:
            worker.stop()
        _redis_delete_queue(found.redis_url, starter.queue)


def _redis_delete_queue(redis_url: str, queue: str) -> None:
    """Drop the test queue's list and exchange bindings (the name is unique to the test)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def live_celery_worker(start_live_celery_worker: Callable[..., LiveWorker]) -> LiveWorker:
    """One running Celery worker; send tasks with ``apply_async(queue=worker.queue)``."""
    return start_live_celery_worker()
