"""Backup and restore of Postgres, as docs/operations.md tells an operator to do it: a
custom-format ``pg_dump``, the database dropped and created again, ``pg_restore``, and the
app gives the same numbers.

Everything runs in a scratch database (named after this run's test database, so parallel
runs do not clash; dropped at the end whatever happens), through the same commands an
operator types: ``manage.py migrate``, ``manage.py seed_demo``, ``pg_dump``, ``dropdb``,
``createdb``, ``pg_restore``, ``manage.py rebuild_rollups``. What is compared before and
after: KPI values through the KPI selectors for several periods and scopes, and the row
count, a content checksum and the sequence positions of every table.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.postgres]

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Two thousand deals: enough for every KPI to have values in every scope, small enough
#: for the whole round trip to stay well under a minute and a half on a shared 2-core host.
SEED_DEALS = 2000
#: A fixed "today" for the demo, so the periods below always hold data.
SEED_AS_OF = "2025-09-30"
SNAPSHOT_PERIODS = ("FY2025", "2025-Q3", "2025-Q2", "2025-08", "2024-10-01..2025-03-31")
#: A demo manager and a demo rep (docs/demo-data.md): a team scope and a rep scope.
SNAPSHOT_MANAGER = "paula.alvarez"
SNAPSHOT_REP = "julia.thornton"
SNAPSHOT_VIEWER = "cso"
COMMAND_TIMEOUT_S = 300


# --- What is compared (runs in a subprocess on the scratch database) ------------------------


def _plain(value: Any) -> Any:
    """A KPI value as JSON: Decimals as their exact text, so 1.10 and 1.1 differ."""
    return None if value is None else str(value)


def kpi_snapshot() -> dict[str, Any]:
    """Every KPI through ``kpi_value`` (value, previous, year ago and series) for each
    period in SNAPSHOT_PERIODS and each scope it supports: company, a team, a rep, and the
    company filtered by a region."""
    from apps.kpis.registry import REGISTRY
    from apps.kpis.selectors import KpiFilters, kpi_batch, kpi_value, scope_resolve
    from apps.org.models import Region, Team, User

    viewer = User.objects.get(username=SNAPSHOT_VIEWER)
    team_id = Team.objects.filter(manager__username=SNAPSHOT_MANAGER).order_by("id")[0].pk
    rep_id = User.objects.get(username=SNAPSHOT_REP).pk
    region_id = Region.objects.order_by("id")[0].pk
    scopes = {
        "company": (scope_resolve(user=viewer), KpiFilters()),
        "team": (scope_resolve(user=viewer, team_id=team_id), KpiFilters()),
        "rep": (scope_resolve(user=viewer, rep_id=rep_id), KpiFilters()),
        "company-region": (scope_resolve(user=viewer), KpiFilters(region=region_id)),
    }
    values: dict[str, Any] = {}
    with kpi_batch():
        for kpi in REGISTRY.values():
            for label, (scope, filters) in scopes.items():
                if scope.kind not in kpi.scopes:
                    continue
                if filters.region is not None and "region" not in kpi.filters:
                    continue
                for period in SNAPSHOT_PERIODS:
                    result = kpi_value(
                        name=kpi.name, period=period, user=viewer, scope=scope, filters=filters
                    )
                    values[f"{kpi.name}|{label}|{period}"] = {
                        "value": _plain(result.value),
                        "previous": _plain(result.previous),
                        "year_ago": _plain(result.year_ago),
                        "series": [[name, _plain(v)] for name, v in result.series],
                    }
    return values


def table_snapshot() -> dict[str, Any]:
    """Row count and an order-independent checksum of the rows of every table, and the
    position of every sequence (a restore that left them behind would make the next insert
    collide with an existing id)."""
    from django.db import connection

    tables: dict[str, Any] = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor, include_views=False)):
            quoted = connection.ops.quote_name(table)
            cursor.execute(
                f"SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' "
                f"ORDER BY md5(t::text)), '')) FROM {quoted} AS t"
            )
            count, checksum = cursor.fetchone()
            tables[table] = {"rows": count, "md5": checksum}
        cursor.execute(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' "
            "ORDER BY sequencename"
        )
        sequences = dict(cursor.fetchall())
    return {"tables": tables, "sequences": sequences}


def database_snapshot() -> dict[str, Any]:
    return {"kpis": kpi_snapshot(), **table_snapshot()}


def kpi_snapshot_after_rebuild() -> dict[str, Any]:
    """``manage.py rebuild_rollups``, then the KPIs (one process instead of two: starting
    Django is a good part of this test's time on a busy host)."""
    from django.core.management import call_command

    call_command("rebuild_rollups", verbosity=0, stdout=io.StringIO())
    return kpi_snapshot()


# --- Running the operator's commands against the scratch database ---------------------------


class ScratchDatabase:
    """One scratch Postgres database and the environment to reach it: libpq variables for
    the pg_* tools, DATABASE_URL for manage.py."""

    def __init__(self, *, name: str, settings_dict: dict[str, Any]) -> None:
        self.name = name
        libpq = {
            "PGHOST": str(settings_dict.get("HOST") or ""),
            "PGPORT": str(settings_dict.get("PORT") or ""),
            "PGUSER": str(settings_dict.get("USER") or ""),
            "PGPASSWORD": str(settings_dict.get("PASSWORD") or ""),
        }
        base = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        self.env = {**base, **{k: v for k, v in libpq.items() if v}}
        self.env.update(
            {
                "DJANGO_SETTINGS_MODULE": "cso_dashboard.settings",
                "DEBUG": "1",
                # libpq fills host, port, user and password in from the PG* variables.
                "DATABASE_URL": f"postgres:///{name}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        # Backup and restore concern Postgres only; without REDIS_URL the commands run
        # their tasks in process and cannot touch another run's queues or cache keys.
        self.env.pop("REDIS_URL", None)

    def run(self, *command: str) -> str:
        done = subprocess.run(
            list(command),
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        if done.returncode != 0:
            pytest.fail(
                f"{' '.join(command)} exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def manage(self, *args: str) -> str:
        return self.run(sys.executable, "manage.py", *args)

    def snapshot(self, function: str = "database_snapshot") -> dict[str, Any]:
        code = (
            "import json, django; django.setup(); "
            f"from {__name__} import {function}; "
            f"print(json.dumps({function}(), sort_keys=True))"
        )
        # The snapshot is the last line; anything a command printed before it is not.
        return json.loads(self.run(sys.executable, "-c", code).strip().splitlines()[-1])

    def drop(self) -> None:
        # --force: a command that failed half-way may have left a connection open.
        subprocess.run(
            ["dropdb", "--if-exists", "--force", self.name],
            env=self.env,
            capture_output=True,
            timeout=COMMAND_TIMEOUT_S,
        )


def _differences(before: dict[str, Any], after: dict[str, Any], limit: int = 15) -> list[str]:
    keys = sorted(set(before) | set(after))
    found = [
        f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in keys if before.get(k) != after.get(k)
    ]
    return found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else [])


@pytest.fixture
def scratch_database(django_db_setup) -> Any:
    """A scratch database beside this run's test database, dropped at teardown."""
    from django.db import connection

    missing = [
        tool for tool in ("pg_dump", "pg_restore", "createdb", "dropdb") if not shutil.which(tool)
    ]
    if missing:
        pytest.fail(f"needs the PostgreSQL client tools on PATH: {', '.join(missing)} missing")
    # pytest-django has renamed the connection to the test database (with a -n suffix).
    name = f"{connection.settings_dict['NAME']}_restore"[:63]
    scratch = ScratchDatabase(name=name, settings_dict=connection.settings_dict)
    scratch.drop()  # left over from an interrupted run
    scratch.run("createdb", name)
    try:
        yield scratch
    finally:
        scratch.drop()


def test_dump_drop_restore_gives_the_same_kpis_and_rows(scratch_database, tmp_path):
    db = scratch_database
    dump = tmp_path / "cso.dump"

    # given a migrated database with a demo company, its KPI rollups rebuilt
    db.manage("migrate", "--noinput", "--verbosity", "0")
    db.manage(
        "seed_demo",
        "--scale",
        str(SEED_DEALS),
        "--as-of",
        SEED_AS_OF,
        "--no-forecasts",
        "--quiet",
    )
    before = db.snapshot()
    assert before["tables"]["crm_opportunity"]["rows"] == SEED_DEALS
    assert any(v["value"] not in (None, "0", "0.00") for v in before["kpis"].values())

    # when it is dumped, dropped, created empty and restored, as docs/operations.md says
    db.run("pg_dump", "--format=custom", f"--file={dump}", db.name)
    db.run("dropdb", db.name)
    db.run("createdb", db.name)
    db.run("pg_restore", "--exit-on-error", "--no-owner", f"--dbname={db.name}", str(dump))
    after = db.snapshot()

    # then every table, sequence and KPI value is the same
    assert after["tables"] == before["tables"], _differences(before["tables"], after["tables"])
    assert after["sequences"] == before["sequences"], _differences(
        before["sequences"], after["sequences"]
    )
    assert after["kpis"] == before["kpis"], _differences(before["kpis"], after["kpis"])

    # and rebuilding the rollups from the restored records (optional after a restore)
    # changes no number
    rebuilt = db.snapshot("kpi_snapshot_after_rebuild")
    assert rebuilt == before["kpis"], _differences(before["kpis"], rebuilt)
