"""Read-side helpers shared by every app: service health and data freshness."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from apps.core.models import JobRun


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


@dataclass(frozen=True)
class HealthReport:
    database: CheckResult
    cache: CheckResult
    broker: CheckResult
    last_run: dict[str, Any] | None = field(default=None)

    @property
    def ok(self) -> bool:
        return self.database.ok and self.cache.ok and self.broker.ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "unavailable",
            "database": asdict(self.database),
            "cache": asdict(self.cache),
            "broker": asdict(self.broker),
            "last_background_run": self.last_run,
        }


def _check_database() -> CheckResult:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; the reason is reported
        return CheckResult(False, f"{connection.vendor}: {exc.__class__.__name__}: {exc}".strip())
    return CheckResult(True, connection.vendor)


def _check_cache() -> CheckResult:
    backend = str(settings.CACHES["default"]["BACKEND"]).rsplit(".", 1)[-1]
    key = f"healthz:{uuid.uuid4().hex}"
    try:
        probe = getattr(cache, "probe", None)
        if probe is not None:  # the resilient Redis cache hides errors from get/set
            probe()
        cache.set(key, "1", timeout=5)
        ok = cache.get(key) == "1"
        cache.delete(key)
    except Exception as exc:
        return CheckResult(False, f"{backend}: {exc.__class__.__name__}: {exc}")
    return CheckResult(ok, backend if ok else f"{backend}: value written could not be read back")


def _check_broker() -> CheckResult:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return CheckResult(True, "in-process (no broker configured)")
    from cso_dashboard.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return CheckResult(False, f"{exc.__class__.__name__}: {exc}")
    return CheckResult(True, "redis")


def last_successful_run() -> JobRun | None:
    """The most recent background run that finished successfully: the data freshness."""
    return (
        JobRun.objects.filter(status=JobRun.Status.SUCCEEDED, finished_at__isnull=False)
        .order_by("-finished_at")
        .first()
    )


def health_report() -> HealthReport:
    database = _check_database()
    last: dict[str, Any] | None = None
    if database.ok:
        run = last_successful_run()
        if run is not None:
            last = {
                "kind": run.kind,
                "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                "rows": run.rows,
            }
    return HealthReport(
        database=database, cache=_check_cache(), broker=_check_broker(), last_run=last
    )
