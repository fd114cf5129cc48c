"""Load and soak benchmark (not a test): many signed-in people on gunicorn at once, reading
dashboards and the API while quotas are edited and an import runs; then every acknowledged
write is looked up in the database. Writes bench/results/load_<label>.json.

What it does, in order:

1. collects the static files into a temp dir and starts gunicorn on a free loopback port
   (``cso_dashboard.wsgi``, DEBUG=0, production cookies relaxed for plain HTTP) on a
   settings module that only moves STATIC_ROOT and routes Celery tasks to a queue of this
   run; with ``--worker`` (default) one Celery worker consumes that queue, as in production;
2. signs in real demo people through the log-in form (executives, RevOps, managers, reps:
   password ``acme-demo-2024``) with a stdlib ``http.client`` per virtual user;
3. load phase (``--seconds``, ``--users`` threads): each virtual user loops over the
   dashboard pages and /api/v1/ endpoints it may see; writers (executives and managers)
   also PATCH quotas they may set, each with an amount unique to the run that is
   remembered when the server acknowledges it (2xx); once, a third of the way in, an
   executive bulk-loads ``--import-rows`` new opportunities through the API;
4. soak phase (``--soak`` seconds, 0 to skip): the same mix goes on while the RSS of the
   gunicorn workers is sampled every 5 s (it is sampled in the load phase too); the slope
   is a least-squares line in MB per minute over the soak after its first minute;
5. checks: every acknowledged quota change is in the quota audit (QuotaChange with the
   amount, the quota and the user), every quota ends with the last amount acknowledged
   for it, the imported opportunities are all there; errors are every answer other than
   2xx/3xx (and a 3xx to the log-in page), plus connection errors and client time-outs.

Client and server share the host (2 cores here): the load average is reported next to the
numbers, which measure the whole machine under this load, not the server alone.

    .venv/bin/python bench/load_bench.py \
        --database-url postgres://postgres@127.0.0.1:5432/cso_load \
        --redis-url redis://127.0.0.1:6379/6 --users 32 --seconds 60 --soak 600 \
        --out bench/results/load_20000.json
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "acme-demo-2024"
NAMED_USERS = ["cso", "paula.alvarez", "julia.thornton", "revops"]
CLIENT_TIMEOUT_S = 90  # above the web statement timeout (30 s), so the server answers first
RSS_EVERY_S = 5.0
KEEPALIVE_SAFE_S = 1.0
# An import is one request that writes every row (all or nothing); give it time.
IMPORT_TIMEOUT_S = 900
SOAK_WARMUP_S = 60.0

SETTINGS_MODULE = '''"""Written by bench/load_bench.py for one run; deleted afterwards."""
import os

from cso_dashboard.settings import *  # noqa: F403

STATIC_ROOT = os.environ["LOAD_BENCH_STATIC_ROOT"]
CELERY_TASK_DEFAULT_QUEUE = os.environ["LOAD_BENCH_QUEUE"]
KPIS_UPDATE_QUEUE = os.environ["LOAD_BENCH_QUEUE"]
# Names this run's connections in pg_stat_activity, so what is left can be cancelled.
DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = "load_bench"  # noqa: F405
'''


# --- HTTP client --------------------------------------------------------------------------


class Client:
    """One signed-in person: a keep-alive connection and the session and CSRF cookies."""

    def __init__(self, port: int, timeout: float = CLIENT_TIMEOUT_S) -> None:
        self.port = port
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None
        self.last_used = 0.0

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        all_headers = {"Host": "127.0.0.1", "Connection": "keep-alive"}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        all_headers.update(headers or {})
        if method != "GET" and time.monotonic() - self.last_used > KEEPALIVE_SAFE_S:
            # gunicorn drops keep-alive connections idle for 2 s; a write is never retried,
            # so it goes out on a fresh connection rather than one the server may close.
            self.close()
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=all_headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # gunicorn closes an idle keep-alive connection; a fresh one is the same
                # request, never sent twice to the application (it failed before a reply).
                self.close()
                if attempt == 2 or method != "GET":
                    raise
                continue
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    cookie = value.split(";", 1)[0]
                    key, _, val = cookie.partition("=")
                    if val in ("", '""'):
                        self.cookies.pop(key.strip(), None)
                    else:
                        self.cookies[key.strip()] = val
            self.last_used = time.monotonic()
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        raise AssertionError("unreachable")

    def login(self, username: str, password: str) -> None:
        status, _, body = self.request("GET", "/login/")
        if status != 200:
            raise RuntimeError(f"GET /login/ answered {status}")
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
        if not match:
            raise RuntimeError("no CSRF token on the log-in page")
        form = urlencode(
            {
                "csrfmiddlewaretoken": match.group(1).decode(),
                "username": username,
                "password": password,
            }
        ).encode()
        status, _headers, _ = self.request(
            "POST",
            "/login/",
            body=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://127.0.0.1:{self.port}/login/",
            },
        )
        if status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"log-in of {username} failed ({status})")

    def json_write(self, method: str, path: str, payload: Any) -> tuple[int, bytes]:
        status, _, body = self.request(
            method,
            path,
            body=json.dumps(payload).encode(),
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "X-CSRFToken": self.cookies.get("csrftoken", ""),
                "Referer": f"http://127.0.0.1:{self.port}/",
            },
        )
        return status, body


# --- What the virtual users do ----------------------------------------------------------


@dataclass
class Person:
    username: str
    role: str
    pk: int
    #: quota ids this person (and no other virtual user) edits during the run
    quotas: list[int] = field(default_factory=list)


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    phase_latencies: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    statuses: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0
    #: (quota id, amount text, user pk, ack time) of every write the server acknowledged
    acked: list[tuple[int, str, int, float]] = field(default_factory=list)
    #: writes without an answer (time-out, broken connection): they may or may not be saved
    unknown_writes: list[tuple[int, str, int]] = field(default_factory=list)
    refused_writes: list[dict[str, Any]] = field(default_factory=list)
    import_result: dict[str, Any] = field(default_factory=dict)

    def record(
        self, group: str, phase: str, seconds: float, status: int | str, error: str | None
    ) -> None:
        with self.lock:
            self.latencies[group].append(seconds)
            self.phase_latencies[phase][group].append(seconds)
            self.statuses[group][str(status)] += 1
            if error is not None:
                self.error_count += 1
                if len(self.errors) < 50:
                    self.errors.append(
                        {"group": group, "phase": phase, "status": status, "error": error[:300]}
                    )


PAGES_ALL = [
    "overview",
    "pipeline",
    "attainment",
    "team",
    "records",
    "changes",
    "accounts",
]
PAGES_COMPANY = ["customers", "cohort", "responses"]
KPIS = ["bookings", "attainment", "open_pipeline", "win_rate", "pipeline_coverage"]


def _requests_for(person: Person, period: str, today: date) -> list[tuple[str, str]]:
    """(group, path) a person reads: every dashboard page their role opens and the API."""
    this_month = today.strftime("%Y-%m")
    cohort_month = today.replace(day=1, year=today.year - 1).strftime("%Y-%m")
    pages = list(PAGES_ALL)
    if person.role in ("executive", "revops_admin"):
        pages += PAGES_COMPANY
    # The drill-downs need the cell they open: a waterfall step, a cohort and a month.
    query = {
        "changes": "&step=new",
        "cohort": f"&cohort={cohort_month}&month={this_month}",
    }
    found = [(f"page:{p}", f"/dashboards/{p}/?period={period}{query.get(p, '')}") for p in pages]
    found += [(f"page:{p}", f"/dashboards/{p}/") for p in ("overview", "pipeline")]
    found += [("api:kpis", "/api/v1/kpis/")]
    found += [(f"api:kpi:{k}", f"/api/v1/kpis/{k}/?period={period}") for k in KPIS]
    found += [
        ("api:opportunities", "/api/v1/opportunities/?page_size=50"),
        ("api:quotas", f"/api/v1/quotas/?page_size=50&period={period}"),
        ("api:teams", "/api/v1/teams/"),
        ("api:users", "/api/v1/users/?page_size=50"),
    ]
    return found


@dataclass
class Run:
    port: int
    stats: Stats
    period: str
    stop_at: float
    today: date
    phase: str = "load"
    amounts: Any = field(default_factory=lambda: itertools.count(1))
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    amount_lock: threading.Lock = field(default_factory=threading.Lock)

    def next_amount(self) -> str:
        with self.amount_lock:
            n = next(self.amounts)
        # Unique within the run and unlike anything the demo holds (odd cents).
        return f"{700000 + n}.{(n * 37) % 89 + 10:02d}"


def _timed(client: Client, method: str, path: str, **kw: Any) -> tuple[float, int, bytes, str]:
    started = time.perf_counter()
    status, headers, body = client.request(method, path, **kw)
    return time.perf_counter() - started, status, body, headers.get("location", "")


def _classify(status: int, location: str) -> str | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"redirect to {location}" if "/login/" in location else None
    return f"HTTP {status}"


def virtual_user(run: Run, person: Person, client: Client, seed: int) -> None:
    rng = random.Random(seed)
    reads = _requests_for(person, run.period, run.today)
    quota_cycle = itertools.cycle(person.quotas) if person.quotas else None
    while time.monotonic() < run.stop_at:
        phase = run.phase
        # Writers edit a quota about one request in six.
        if quota_cycle is not None and rng.random() < 1 / 6:
            quota_id = next(quota_cycle)
            amount = run.next_amount()
            started = time.perf_counter()
            try:
                status, body = client.json_write(
                    "PATCH", f"/api/v1/quotas/{quota_id}/", {"amount": amount}
                )
            except (OSError, http.client.HTTPException) as exc:
                client.close()
                run.stats.unknown_writes.append((quota_id, amount, person.pk))
                run.stats.record(
                    "write:quota", phase, time.perf_counter() - started, "no answer", repr(exc)
                )
                continue
            seconds = time.perf_counter() - started
            error = _classify(status, "")
            if error is None:
                with run.stats.lock:
                    run.stats.acked.append((quota_id, amount, person.pk, time.time()))
            else:
                error += f": {body[:200].decode(errors='replace')}"
                run.stats.refused_writes.append(
                    {"quota": quota_id, "amount": amount, "status": status}
                )
            run.stats.record("write:quota", phase, seconds, status, error)
            continue
        group, path = rng.choice(reads)
        started = time.perf_counter()
        try:
            seconds, status, body, location = _timed(client, "GET", path)
        except (OSError, http.client.HTTPException) as exc:
            client.close()
            seconds = time.perf_counter() - started
            run.stats.record(group, phase, seconds, "no answer", f"{path}: {exc!r}")
            continue
        error = _classify(status, location)
        if error is not None:
            error += f" {path}: {body[:200].decode(errors='replace')}"
        run.stats.record(group, phase, seconds, status, error)


def import_once(run: Run, client: Client, rows: list[dict[str, Any]], delay: float) -> None:
    time.sleep(delay)
    started = time.perf_counter()
    try:
        status, body = client.json_write("POST", "/api/v1/opportunities/bulk/", rows)
    except (OSError, http.client.HTTPException) as exc:
        run.stats.import_result = {"status": "no answer", "error": repr(exc)}
        run.stats.record("import:opportunities", run.phase, 0.0, "no answer", repr(exc))
        return
    seconds = time.perf_counter() - started
    error = _classify(status, "")
    try:
        answer = json.loads(body)
    except ValueError:
        answer = body[:300].decode(errors="replace")
    run.stats.import_result = {"status": status, "answer": answer, "seconds": round(seconds, 3)}
    run.stats.record("import:opportunities", run.phase, seconds, status, error)


# --- Server processes ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_env(args: argparse.Namespace, settings_dir: str, static_root: str, queue: str) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([settings_dir, str(REPO)]),
            "DJANGO_SETTINGS_MODULE": "load_bench_settings",
            "DEBUG": "0",
            "SECRET_KEY": "load-bench-" + uuid.uuid4().hex * 2,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "LOAD_BENCH_STATIC_ROOT": static_root,
            "LOAD_BENCH_QUEUE": queue,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def start_servers(
    args: argparse.Namespace, env: dict, port: int, log_dir: Path
) -> tuple[subprocess.Popen, subprocess.Popen | None]:
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=REPO,
        env=env,
        check=True,
    )
    gunicorn = subprocess.Popen(
        [
            str(REPO / ".venv" / "bin" / "gunicorn"),
            "cso_dashboard.wsgi",
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            str(IMPORT_TIMEOUT_S + 30),
        ],
        cwd=REPO,
        env=env,
        stdout=(log_dir / "gunicorn.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = None
    if args.worker:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "cso_dashboard",
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "-Q",
                env["LOAD_BENCH_QUEUE"],
                "-n",
                f"load-bench-{uuid.uuid4().hex[:6]}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=REPO,
            env=env,
            stdout=(log_dir / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if gunicorn.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {(log_dir / 'gunicorn.log').read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/login/", headers={"Host": "127.0.0.1"})
            if conn.getresponse().status == 200:
                conn.close()
                return gunicorn, worker
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("gunicorn did not answer within 90 s")


def stop(process: subprocess.Popen | None, grace: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command may contain spaces or parentheses: the ppid follows the last ')'
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _rss_mb(pid: int) -> float:
    try:
        for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def sample_memory(master: int, started: float, run: Run, samples: list, stop_event) -> None:
    while not stop_event.is_set():
        workers = _children(master)
        samples.append(
            {
                "t": round(time.monotonic() - started, 1),
                "phase": run.phase,
                "workers_rss_mb": round(sum(_rss_mb(p) for p in workers), 1),
                "per_worker_mb": {str(p): round(_rss_mb(p), 1) for p in workers},
                "master_rss_mb": round(_rss_mb(master), 1),
                "loadavg_1m": os.getloadavg()[0],
            }
        )
        stop_event.wait(RSS_EVERY_S)


# --- Database side (Django ORM in this process) -------------------------------------------


def django_setup(args: argparse.Namespace) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "cso_dashboard.settings"
    os.environ["DEBUG"] = "1"
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["REDIS_URL"] = args.redis_url
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def choose_people(n_users: int) -> list[Person]:
    """The named demo people first, then managers, reps and the rest, cycled to n."""
    from apps.org.models import User

    active = User.objects.filter(is_active=True).exclude(username__startswith="load-")
    named = list(active.filter(username__in=NAMED_USERS))
    named.sort(key=lambda u: NAMED_USERS.index(u.username))
    managers = list(active.filter(role="manager").exclude(pk__in=[u.pk for u in named])[:12])
    reps = list(active.filter(role="rep").exclude(pk__in=[u.pk for u in named])[:12])
    pool = named + managers + reps
    if not pool:
        raise SystemExit("No demo users in this database: run seed_demo first.")
    people = []
    for index in range(n_users):
        user = pool[index % len(pool)]
        people.append(Person(username=user.username, role=user.role, pk=user.pk))
    return people


def assign_quotas(people: list[Person], per_writer: int, period_year: int) -> dict[int, Decimal]:
    """Give each writer (executive or manager, one virtual user each) quotas it may set,
    outside locked plans, none shared with another virtual user. Returns the amounts
    before the run."""
    from apps.org.models import User
    from apps.org.policy import can_set_quota
    from apps.quotas.models import FiscalPeriod, Quota
    from apps.quotas.services import _locked_plan_covering

    taken: set[int] = set()
    before: dict[int, Decimal] = {}
    writers = [p for p in people if p.role in ("executive", "manager")]
    seen_users: set[int] = set()
    candidates = list(
        Quota.objects.filter(
            period__kind=FiscalPeriod.Kind.MONTH, period__fiscal_year=period_year, rep__isnull=False
        )
        .select_related("rep", "period")
        .order_by("period__start_date", "pk")[:3000]
    )
    for person in writers:
        if person.pk in seen_users:
            continue  # a person used twice: only their first virtual user writes
        seen_users.add(person.pk)
        user = User.objects.get(pk=person.pk)
        for quota in candidates:
            if len(person.quotas) >= per_writer:
                break
            if quota.pk in taken or not can_set_quota(user, rep=quota.rep):
                continue
            if _locked_plan_covering(team_id=quota.rep.team_id, month=quota.period) is not None:
                continue
            taken.add(quota.pk)
            person.quotas.append(quota.pk)
            before[quota.pk] = quota.amount
    return before


def import_rows(run_id: str, n: int, as_of: date) -> list[dict[str, Any]]:
    from apps.crm.models import Account, Stage
    from apps.org.models import User

    accounts = list(Account.objects.order_by("pk").values_list("external_id", flat=True)[:50])
    owners = list(
        User.objects.filter(role="rep", is_active=True)
        .exclude(email="")
        .order_by("pk")
        .values_list("email", flat=True)[:20]
    )
    stages = list(Stage.objects.order_by("order").values_list("name", "outcome"))
    open_stages = [name for name, outcome in stages if outcome == "open"]
    rows = []
    for i in range(n):
        rows.append(
            {
                "external_id": f"load-{run_id}-{i:05d}",
                "name": f"Load test deal {run_id} {i}",
                "account": accounts[i % len(accounts)],
                "owner": owners[i % len(owners)],
                "amount": f"{1000 + i}.00",
                "stage": open_stages[i % len(open_stages)],
                "created_date": as_of.replace(day=1).isoformat(),
                "close_date": as_of.isoformat(),
            }
        )
    return rows


def verify(stats: Stats, before: dict[int, Decimal], run_id: str, n_import: int) -> dict:
    """Count the acknowledged writes in the database."""
    from apps.crm.models import Opportunity
    from apps.quotas.models import Quota, QuotaChange

    changes = set(
        QuotaChange.objects.filter(quota_id__in=list(before), field="amount").values_list(
            "quota_id", "new_value", "changed_by_id"
        )
    )
    missing = [
        {"quota": q, "amount": a, "user": u}
        for q, a, u, _ in stats.acked
        if (q, a, u) not in changes
    ]
    last_acked: dict[int, str] = {}
    for q, a, _, _ in sorted(stats.acked, key=lambda item: item[3]):
        last_acked[q] = a
    finals = dict(Quota.objects.filter(pk__in=list(last_acked)).values_list("pk", "amount"))
    # A write without an answer may have been saved after the last acknowledged one.
    unknown_quotas = {q for q, _, _ in stats.unknown_writes}
    wrong_final = [
        {"quota": q, "last_acked": a, "in_db": str(finals.get(q))}
        for q, a in last_acked.items()
        if q not in unknown_quotas and str(finals.get(q)) != a
    ]
    imported = Opportunity.objects.filter(external_id__startswith=f"load-{run_id}-").count()
    status = stats.import_result.get("status")
    import_acked = isinstance(status, int) and 200 <= status < 300
    return {
        "quota_writes_acknowledged": len(stats.acked),
        "quota_writes_found_in_audit": len(stats.acked) - len(missing),
        "quota_writes_lost": len(missing),
        "lost_examples": missing[:10],
        "quotas_edited": len(last_acked),
        "quotas_final_amount_wrong": len(wrong_final),
        "wrong_final_examples": wrong_final[:10],
        "quota_writes_without_answer": len(stats.unknown_writes),
        "quota_writes_refused": len(stats.refused_writes),
        "import_acknowledged": import_acked,
        "import_rows_sent": n_import,
        "import_rows_found": imported,
        "import_rows_lost": (n_import - imported) if import_acked else None,
    }


def remove_imported(run_id: str, queue: str) -> dict[str, Any]:
    """Delete the deals this run imported and settle the KPI months they touched, so the
    benchmark database keeps its size and its numbers (quota edits stay: they are the
    writes under test and change no deal)."""
    from django.conf import settings
    from django.db import connection, transaction

    from apps.crm.models import Opportunity
    from apps.kpis.services import rollups_deal_changed, rollups_update

    # Any update task this queues goes to the run's own queue, which is purged after.
    settings.KPIS_UPDATE_QUEUE = queue
    started = time.monotonic()
    ids = list(
        Opportunity.objects.filter(external_id__startswith=f"load-{run_id}-").values_list(
            "pk", flat=True
        )
    )
    for pk in ids:
        rollups_deal_changed(opportunity_id=pk)
    # The rows that refer to the deals, found in the database's own foreign keys (a
    # benchmark database may lag the models' migrations, so the ORM's cascade may name
    # tables it does not have), then the deals.
    table = Opportunity._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "WHERE c.contype = 'f' AND c.confrelid = %s::regclass",
            [table],
        )
        for referring, column in cursor.fetchall():
            cursor.execute(f"DELETE FROM {referring} WHERE {column} = ANY(%s)", [ids])
        cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [ids])
        deleted = cursor.rowcount
    result = rollups_update()
    return {
        "deals_deleted": deleted,
        "rollup_months_updated": [m.isoformat() for m in result.months],
        "seconds": round(time.monotonic() - started, 1),
    }


def cancel_my_queries() -> list[str]:
    """Queries of this run's servers (application_name load_bench) still running once
    they stopped (there should be none): cancelled, and reported."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, left(query, 200), pg_cancel_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'load_bench' "
            "AND state = 'active'"
        )
        rows = cursor.fetchall()
    return [f"{pid}: {query}" for pid, query, _ in rows]


def worker_outcomes(log_path: Path) -> dict[str, Any] | None:
    """What the Celery worker did, read from its log: tasks succeeded and failed by name,
    and the first failures."""
    if not log_path.exists():
        return None
    done: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    examples: list[str] = []
    for line in log_path.read_text(errors="replace").splitlines():
        match = re.search(r"Task (\S+?)\[[^\]]+\] (succeeded|raised unexpected)", line)
        if not match:
            continue
        if match.group(2) == "succeeded":
            done[match.group(1)] += 1
        else:
            failed[match.group(1)] += 1
            if len(examples) < 5:
                examples.append(line[:300])
    return {"succeeded": dict(done), "failed": dict(failed), "failure_examples": examples}


def purge_queue(redis_url: str, queue: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*"))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


# --- Report ---------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return round(ordered[index] * 1000, 1)

    return {
        "n": len(ordered),
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def slope_mb_per_min(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (m - mean_m) for t, m in points)
    return round(cov / var * 60, 3)


def group_table(latencies: dict[str, list[float]]) -> dict[str, Any]:
    by_family: dict[str, list[float]] = defaultdict(list)
    for group, values in latencies.items():
        family = "api:kpi" if group.startswith("api:kpi:") else group
        by_family[family.split(":")[0] + ":*"].extend(values)
        by_family[group].extend(values)
    return {group: percentiles(values) for group, values in sorted(by_family.items())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=60, help="load phase")
    parser.add_argument("--soak", type=int, default=600, help="soak phase seconds (0: none)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--import-rows", type=int, default=200)
    parser.add_argument("--quotas-per-writer", type=int, default=6)
    parser.add_argument("--period", default=None, help="fiscal period read, e.g. 2024-Q3")
    parser.add_argument("--no-worker", dest="worker", action="store_false", help="no Celery worker")
    parser.add_argument(
        "--keep-imported",
        action="store_true",
        help="keep the imported deals (default: delete them and update their KPI months)",
    )
    parser.add_argument("--out", default=None, help="default bench/results/load_<label>.json")
    parser.add_argument("--label", default=None, help="default: the number of opportunities")
    args = parser.parse_args()

    django_setup(args)
    from django.conf import settings
    from django.utils import timezone

    from apps.crm.models import Opportunity
    from apps.quotas import fiscal

    n_opps = Opportunity.objects.count()
    label = args.label or str(n_opps)
    out = Path(args.out or REPO / "bench" / "results" / f"load_{label}.json")
    today = timezone.localdate()
    period = (
        args.period
        or fiscal.period_containing(today, "quarter", settings.FISCAL_YEAR_START_MONTH).name
    )
    current_year = fiscal.period_containing(today, "year", settings.FISCAL_YEAR_START_MONTH)

    people = choose_people(args.users)
    before = assign_quotas(people, args.quotas_per_writer, current_year.fiscal_year)
    run_stats = Stats()
    run = Run(port=_free_port(), stats=run_stats, period=period, stop_at=0.0, today=today)
    rows = import_rows(run.run_id, args.import_rows, today) if args.import_rows else []
    queue = f"load-bench-{run.run_id}"
    print(
        f"{n_opps:,} opportunities; {len(people)} virtual users, "
        f"{sum(1 for p in people if p.quotas)} writers on {len(before)} quotas; period {period}",
        flush=True,
    )

    log_dir = Path(tempfile.mkdtemp(prefix="load-bench-"))
    settings_dir = log_dir / "settings"
    settings_dir.mkdir()
    (settings_dir / "load_bench_settings.py").write_text(SETTINGS_MODULE)
    static_root = log_dir / "static"
    env = _server_env(args, str(settings_dir), str(static_root), queue)
    gunicorn = worker = None
    samples: list[dict] = []
    stop_event = threading.Event()
    try:
        gunicorn, worker = start_servers(args, env, run.port, log_dir)
        clients = []
        for person in people:
            client = Client(run.port)
            client.login(person.username, PASSWORD)
            clients.append(client)
        importer = Client(run.port, timeout=IMPORT_TIMEOUT_S)
        importer.login("cso", PASSWORD)
        print(f"gunicorn on :{run.port}, {len(clients)} people signed in", flush=True)

        started = time.monotonic()
        sampler = threading.Thread(
            target=sample_memory,
            args=(gunicorn.pid, started, run, samples, stop_event),
            daemon=True,
        )
        sampler.start()
        run.stop_at = started + args.seconds + args.soak
        threads = [
            threading.Thread(target=virtual_user, args=(run, p, c, i), daemon=True)
            for i, (p, c) in enumerate(zip(people, clients, strict=True))
        ]
        if rows:
            threads.append(
                threading.Thread(
                    target=import_once, args=(run, importer, rows, args.seconds / 3), daemon=True
                )
            )
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        run.phase = "soak"
        if args.soak:
            print("load phase done; soaking", flush=True)
        for thread in threads:
            thread.join(timeout=args.soak + IMPORT_TIMEOUT_S + 30)
        finished = time.monotonic()
        stop_event.set()
        sampler.join(timeout=10)
        load_after = os.getloadavg()
    finally:
        stop_event.set()
        stop(gunicorn)
        stop(worker)
        # keep the logs; the collected static files and the settings module go
        shutil.rmtree(static_root, ignore_errors=True)
        shutil.rmtree(settings_dir, ignore_errors=True)
    checks = verify(run_stats, before, run.run_id, len(rows))
    cleanup = None
    if rows and not args.keep_imported:
        try:
            cleanup = remove_imported(run.run_id, queue)
        except Exception as exc:  # reported; the measurements above stand
            cleanup = {"error": f"{exc.__class__.__name__}: {exc}"}
    leftover = cancel_my_queries()
    purged = purge_queue(args.redis_url, queue)

    soak_points = [
        (s["t"], s["workers_rss_mb"])
        for s in samples
        if s["phase"] == "soak" and s["t"] >= args.seconds + SOAK_WARMUP_S
    ]
    load_requests = sum(len(v) for v in run_stats.phase_latencies["load"].values())
    report = {
        "benchmark": "load_bench",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": args.database_url.rsplit("/", 1)[-1],
        "opportunities": n_opps,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "server": f"gunicorn cso_dashboard.wsgi --workers {args.workers} --threads "
        f"{args.threads}, DEBUG=0, statement timeout 30 s"
        + (", one Celery worker (solo) on the run's queue" if args.worker else ", no worker"),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "the load generator, gunicorn, the Celery worker, Postgres and Redis all "
            "share this host, and other work ran on it at the same time",
            "loadavg_end": [round(x, 2) for x in load_after],
        },
        "users": args.users,
        "people": sorted({p.username for p in people}),
        "period": period,
        "seconds": {
            "load": args.seconds,
            "soak": args.soak,
            "measured": round(finished - started, 1),
        },
        "requests": {
            "total": sum(len(v) for v in run_stats.latencies.values()),
            "load_phase": load_requests,
            "load_phase_per_second": round(load_requests / max(args.seconds, 1), 1),
        },
        "errors": run_stats.error_count,
        "error_examples": run_stats.errors,
        "statuses": {g: dict(s) for g, s in sorted(run_stats.statuses.items())},
        "latency_load_phase": group_table(run_stats.phase_latencies["load"]),
        "latency_soak_phase": group_table(run_stats.phase_latencies["soak"]) if args.soak else None,
        "writes": checks,
        "import": run_stats.import_result
        | {"rows": len(rows), "at_second": round(args.seconds / 3, 1)},
        "memory": {
            "sample_every_s": RSS_EVERY_S,
            "workers_rss_mb_first": samples[0]["workers_rss_mb"] if samples else None,
            "workers_rss_mb_last": samples[-1]["workers_rss_mb"] if samples else None,
            "workers_rss_mb_max": max((s["workers_rss_mb"] for s in samples), default=None),
            "soak_slope_mb_per_min": slope_mb_per_min(soak_points),
            "soak_slope_window_s": [args.seconds + SOAK_WARMUP_S, args.seconds + args.soak],
            "loadavg_1m_mean": round(sum(s["loadavg_1m"] for s in samples) / len(samples), 2)
            if samples
            else None,
            "samples": samples,
        },
        "imported_deals_removed_after": cleanup,
        "celery_worker_tasks": worker_outcomes(log_dir / "worker.log"),
        "queries_still_active_after_stop": leftover,
        "celery_queue_keys_purged": purged,
        "logs": str(log_dir),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("errors", "requests", "writes")}, indent=2))
    print("memory slope MB/min:", report["memory"]["soak_slope_mb_per_min"])
    print(f"wrote {out}")
    ok = (
        report["errors"] == 0
        and checks["quota_writes_lost"] == 0
        and checks["quotas_final_amount_wrong"] == 0
        and (not rows or checks["import_rows_lost"] == 0)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
