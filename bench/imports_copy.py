"""Import loading-speed benchmark (not a test): our opportunity import of a generated CSV
against ``psql \\copy`` of the same file into a plain table. Writes
bench/results/imports_copy.json.

Run on Postgres against a database of your own (its deals are truncated first):

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/cso_imports \\
    .venv/bin/python bench/imports_copy.py --rows 1000000

Target (from the import issue): our rows/s >= one third of ``psql \\copy``'s. Our import
does more than a copy: it validates every cell, resolves owner, account, product and stage
references, checks duplicates and cross-field rules, and writes the deals plus one history
row each, with the two tables' 14 indexes. A file of new deals is loaded set-based inside
PostgreSQL (apps.imports.sqlload); the re-import of the same file (every deal stored and
unchanged) goes row by row. The KPI rollup update that an import queues is a separate
background job and is not part of the timing.

The database floor is the same writes with nothing checked or converted: from the rows
``psql \\copy`` typed, one INSERT of the deals (references joined by key) feeding one
history row each, indexes built after the load; rolled back. No import into this schema
can be faster than it.

Besides wall seconds per phase, the result has the CPU seconds of this Python process and
of its PostgreSQL backend per phase (read from /proc: the server must run on this
machine), which depend much less than the wall time on what else the machine is doing.
``psql \\copy`` runs before and after the import; the faster run is the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cso_dashboard.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from apps.crm.models import Account, Opportunity, Product, Stage  # noqa: E402
from apps.imports.services import file_import  # noqa: E402
from apps.org.models import Role, User  # noqa: E402

HEADER = (
    "external_id,name,account,owner,product,amount,currency,stage,forecast_category,"
    "deal_type,source,created_date,close_date,lost_reason"
)
PLAIN_TABLE = """
    CREATE TABLE IF NOT EXISTS bench_import_plain (
        external_id text, name text, account text, owner text, product text,
        amount numeric(18, 2), currency text, stage text, forecast_category text,
        deal_type text, source text, created_date date, close_date date, lost_reason text
    )
"""
STAGES = [
    ("Prospecting", 1, "open", 10),
    ("Proposal", 2, "open", 40),
    ("Negotiation", 3, "open", 70),
    ("Won", 4, "won", 100),
    ("Lost", 5, "lost", 0),
]
ACCOUNTS, REPS, PRODUCTS = 2000, 200, 20


def seed() -> User:
    """Reference data the file refers to (idempotent)."""
    for name, order, outcome, probability in STAGES:
        if not Stage.objects.filter(name=name).exists():
            Stage.objects.filter(order=order).update(order=order + 1000)
            Stage.objects.create(
                name=name, order=order, outcome=outcome, probability=Decimal(probability)
            )
    Account.objects.bulk_create(
        [Account(external_id=f"BA-{n:05d}", name=f"Bench account {n}") for n in range(ACCOUNTS)],
        ignore_conflicts=True,
    )
    Product.objects.bulk_create(
        [Product(external_id=f"BP-{n:03d}", name=f"Bench product {n}") for n in range(PRODUCTS)],
        ignore_conflicts=True,
    )
    existing = set(User.objects.values_list("username", flat=True))
    User.objects.bulk_create(
        [
            User(
                username=f"bench-rep-{n}",
                email=f"bench-rep-{n}@example.com",
                first_name="Bench",
                last_name=f"Rep {n}",
                role=Role.REP,
            )
            for n in range(REPS)
            if f"bench-rep-{n}" not in existing
        ]
    )
    admin, _ = User.objects.get_or_create(
        username="bench-admin",
        defaults={"role": Role.REVOPS_ADMIN, "email": "bench-admin@example.com"},
    )
    return admin


def generate(path: Path, rows: int) -> None:
    rng = random.Random(42)
    start = date(2024, 1, 1)
    stages = [s[0] for s in STAGES]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\n")
        for n in range(rows):
            created = start + timedelta(days=rng.randrange(700))
            close = created + timedelta(days=rng.randrange(1, 200))
            stage = stages[rng.randrange(len(stages))]
            out.write(
                f"BENCH-{n:08d},Deal {n},BA-{rng.randrange(ACCOUNTS):05d},"
                f"bench-rep-{rng.randrange(REPS)}@example.com,"
                f"Bench product {rng.randrange(PRODUCTS)},"
                f"{rng.randrange(1000, 500000)}.{rng.randrange(100):02d},"
                f"{'EUR' if n % 7 == 0 else 'USD'},{stage},,"
                f"{('new', 'expansion', 'renewal')[n % 3]},Inbound,"
                f"{created.isoformat()},{close.isoformat()},"
                f"{'No budget' if stage == 'Lost' else ''}\n"
            )


def psql_copy(path: Path) -> float:
    db = settings.DATABASES["default"]
    with connection.cursor() as cursor:
        cursor.execute(PLAIN_TABLE)
        cursor.execute("TRUNCATE bench_import_plain")
    env = {**os.environ, "PGPASSWORD": str(db.get("PASSWORD") or "")}
    command = [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        str(db.get("HOST") or "127.0.0.1"),
        "-p",
        str(db.get("PORT") or 5432),
        "-U",
        str(db.get("USER") or "postgres"),
        "-d",
        str(db["NAME"]),
        "-c",
        f"\\copy bench_import_plain FROM '{path}' WITH (FORMAT csv, HEADER true)",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    return time.perf_counter() - started


def database_floor(rows: int) -> float:
    """Seconds the database alone needs to write what the import writes, with nothing
    checked or converted: from the rows ``psql \\copy`` typed into the plain table, one
    INSERT of the deals (references joined by key) feeding one history row each, with the
    secondary indexes dropped before and built after, as the import does for a first load.
    In a transaction that is rolled back (the import's deals stay)."""
    from apps.imports import writers

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE crm_opportunityhistory, crm_opportunity CASCADE")
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SET LOCAL work_mem = %s", [writers.IMPORT_WORK_MEM])
        cursor.execute("SET LOCAL maintenance_work_mem = %s", [writers.IMPORT_MAINTENANCE_WORK_MEM])
        rebuild = [
            *writers._secondary_indexes_dropped(cursor, "crm_opportunity", rows_written=rows),
            *writers._secondary_indexes_dropped(
                cursor, "crm_opportunityhistory", rows_written=rows
            ),
        ]
        cursor.execute(
            "WITH created AS (INSERT INTO crm_opportunity (external_id, name, account_id, "
            "owner_id, product_id, amount, currency, stage_id, forecast_category, deal_type, "
            "source, created_date, close_date, lost_reason, updated_at) "
            "SELECT p.external_id, p.name, a.id, u.id, pr.id, p.amount, p.currency, s.id, "
            "'pipeline', p.deal_type, p.source, p.created_date, p.close_date, "
            "coalesce(p.lost_reason, ''), now() FROM bench_import_plain p "
            "JOIN crm_account a ON a.external_id = p.account "
            "JOIN org_user u ON u.email = p.owner "
            "LEFT JOIN crm_product pr ON pr.name = p.product "
            "JOIN crm_stage s ON s.name = p.stage "
            "RETURNING id, stage_id, amount, currency, close_date, owner_id, forecast_category) "
            "INSERT INTO crm_opportunityhistory (opportunity_id, changed_at, changed_by_id, "
            "source, changed_fields, stage_id, amount, currency, close_date, owner_id, "
            "forecast_category) SELECT id, now(), NULL, 'import', 'created', stage_id, amount, "
            "currency, close_date, owner_id, forecast_category FROM created"
        )
        assert cursor.rowcount == rows, cursor.rowcount
        for definition in rebuild:
            cursor.execute(definition)
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    return seconds


def backend_cpu_s() -> float:
    """CPU seconds used so far by this connection's PostgreSQL backend (same machine)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")  # the server runs elsewhere
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_import(
    path: Path, admin: User
) -> tuple[float, dict[str, float], dict[str, dict[str, float]], object]:
    """Wall seconds per phase, and CPU seconds per phase of this Python process and of the
    PostgreSQL backend: on a shared machine the wall time depends on the other work, the
    CPU time much less."""
    marks: list[tuple[str, float, float, float]] = []
    # Reading (decoding the file, parsing and converting every cell) starts at once.
    seen = {"reading"}

    def mark(phase: str) -> None:
        marks.append((phase, time.perf_counter(), time.process_time(), backend_cpu_s()))

    def progress(phase: str, done: int, total: int) -> None:
        if phase not in seen:
            seen.add(phase)
            mark(phase)

    mark("reading")
    report = file_import(
        kind="opportunities",
        data=path.read_bytes(),
        filename=path.name,
        user=admin,
        progress=progress,
    )
    mark("end")
    pairs = list(pairwise(marks))
    split = {a[0]: round(b[1] - a[1], 2) for a, b in pairs}
    cpu = {
        a[0]: {"python": round(b[2] - a[2], 2), "postgres": round(b[3] - a[3], 2)} for a, b in pairs
    }
    return marks[-1][1] - marks[0][1], split, cpu, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-reimport", action="store_true", help="skip the second import")
    parser.add_argument(
        "--before",
        type=Path,
        help="an earlier result (JSON) to report under 'before', e.g. the committed one",
    )
    parser.add_argument(
        "--old-code-result",
        type=Path,
        help="the result of the previous code run just before on the same machine (JSON), "
        "reported under 'old_code_same_conditions'",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "results" / "imports_copy.json",
        help="where to write the result",
    )
    args = parser.parse_args()
    # Read first: --before may name the file this run replaces.
    before = json.loads(args.before.read_text()) if args.before else None
    old_code = json.loads(args.old_code_result.read_text()) if args.old_code_result else None
    if connection.vendor != "postgresql":
        sys.exit("Run on PostgreSQL: set DATABASE_URL=postgres://... (a database of your own).")
    call_command("migrate", verbosity=0)
    load_start = os.getloadavg()
    # The rollup update an import queues is the KPI app's background job, not import work.
    from apps.kpis import services as kpi_services

    kpi_services.rollups_update_enqueue = lambda: False
    admin = seed()
    with connection.cursor() as cursor:
        # CASCADE: deal scores and KPI detail rows refer to deals.
        cursor.execute("TRUNCATE crm_opportunityhistory, crm_opportunity CASCADE")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "opportunities.csv"
        print(f"generating {args.rows:,} rows ...", flush=True)
        generate(path, args.rows)
        size = path.stat().st_size
        print(f"psql \\copy of {size / 1e6:.0f} MB ...", flush=True)
        copy_s = psql_copy(path)
        print(f"  {copy_s:.2f} s", flush=True)
        print("our import ...", flush=True)
        import_s, phases, cpu, report = timed_import(path, admin)
        assert report.ok, report.errors[:5]
        assert report.created == args.rows
        print(f"  {import_s:.2f} s {phases} cpu {cpu}", flush=True)
        # The copy again, after the import: the machine's load changes; the faster of the
        # two runs is the (stricter) reference.
        copy_runs = [copy_s, psql_copy(path)]
        copy_s = min(copy_runs)
        print(f"psql \\copy again: {copy_runs[1]:.2f} s", flush=True)
        floor_s = database_floor(args.rows)
        print(f"database floor (the same writes, nothing checked): {floor_s:.2f} s", flush=True)
        reimport = None
        if not args.no_reimport:
            print("importing the same file again (every row unchanged) ...", flush=True)
            again_s, again_phases, again_cpu, again = timed_import(path, admin)
            assert again.ok and again.unchanged == args.rows and again.created == 0
            reimport = {
                "seconds": round(again_s, 2),
                "rows_per_s": round(args.rows / again_s),
                "phases_s": again_phases,
                "cpu_s": again_cpu,
            }
            print(f"  {again_s:.2f} s", flush=True)
    history = Opportunity.history.rel.related_model.objects.count()
    copy_rate, import_rate = args.rows / copy_s, args.rows / import_s
    result = {
        "rows": args.rows,
        "file_mb": round(size / 1e6, 1),
        "psql_copy": {
            "seconds": round(copy_s, 2),
            "rows_per_s": round(copy_rate),
            "runs_s": [round(r, 2) for r in copy_runs],
        },
        "import": {
            "seconds": round(import_s, 2),
            "rows_per_s": round(import_rate),
            "phases_s": phases,
            "cpu_s": cpu,
            "deals_written": Opportunity.objects.count(),
            "history_rows_written": history,
        },
        # The least the database needs for the same writes (deals, history rows, index
        # builds) from rows already typed, with no conversion or check: what any import
        # of this file into this schema costs at the very least.
        "database_floor": {
            "seconds": round(floor_s, 2),
            "rows_per_s": round(args.rows / floor_s),
            "ratio_to_copy": round(copy_s / floor_s, 3),
            "import_over_floor": round(import_s / floor_s, 2),
        },
        "reimport_unchanged": reimport,
        "ratio_import_to_copy": round(import_rate / copy_rate, 3),
        "target_ratio": round(1 / 3, 3),
        "target_met": import_rate >= copy_rate / 3,
        "database": connection.vendor,
        "server_version": connection.cursor().connection.server_version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        # The machine may be shared: the load average says how much else was running.
        "load_average_1m_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if before is not None:
        # The earlier run, as it was recorded (its own "before" dropped).
        result["before"] = {k: v for k, v in before.items() if k != "before"}
    if old_code is not None:
        # On a shared machine the figures of another day are not comparable: the
        # previous code, run minutes before under the same load, is.
        result["old_code_same_conditions"] = {
            k: v for k, v in old_code.items() if k not in ("before", "old_code_same_conditions")
        }
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
