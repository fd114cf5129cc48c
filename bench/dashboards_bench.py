"""Dashboard pages benchmark (not a test): per-page latency and throughput under gunicorn,
next to a trivial Django view on the same server. Writes bench/results/dashboards_<n>.json.

It serves the project through bench/_trivial_wsgi.py (the project's URLs plus
``/bench-trivial``) with gunicorn on a free loopback port, DEBUG=0, signs in through the
login form with a plain HTTP client, then for each page and user:

* latency: N sequential requests after a warm-up, wall time seen by the client on
  loopback (so it includes a few hundred microseconds of HTTP overhead), median and p95;
* throughput: a bounded load of T client threads for D seconds, completed 200 responses
  per second; for a page, in R rounds alternating with the trivial view (trivial, page,
  trivial, page, ... D/R seconds each), so that both rates see the same machine load.

The ratio is page_rps / trivial_rps of those paired rounds (target >= 0.5). The database
is only read.

    DATABASE_URL is built from --db; Redis db from --redis-db:
    .venv/bin/python bench/dashboards_bench.py --db cso_perf --duration 12 --requests 20
    .venv/bin/python bench/dashboards_bench.py --users paula.alvarez \
        --out bench/results/dashboards_1000000_manager.json     # a manager
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
PAGES = [
    "/dashboards/attainment/",
    "/dashboards/team/",
    "/dashboards/overview/",
    "/dashboards/pipeline/",
    # The waterfall's step drill-down (after the pipeline page, as a user reaches it).
    "/dashboards/changes/?step=new",
    "/dashboards/customers/",
]
TRIVIAL = "/bench-trivial"
# A page slower than this per request gets fewer sequential samples so a run stays bounded.
SLOW_PAGE_SECONDS = 2.0
SEQUENTIAL_BUDGET_SECONDS = 40.0
GUNICORN_GRACE = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def _server_env(args: argparse.Namespace, static_root: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "cso_dashboard.settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-only-" + os.urandom(16).hex(),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.db}",
            "REDIS_URL": f"redis://127.0.0.1:6379/{args.redis_db}",
            "BENCH_STATIC_ROOT": static_root,
        }
    )
    return env


def start_server(args: argparse.Namespace, env: dict[str, str], port: int) -> subprocess.Popen:
    # The collected static tree lives in a temp dir: the manifest storage used with
    # DEBUG=0 refuses to render a page without it.
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "_trivial_wsgi.py"), "collectstatic"],
        env=env,
        cwd=REPO,
        check=True,
    )
    proc = subprocess.Popen(
        [
            str(REPO / ".venv" / "bin" / "gunicorn"),
            "bench._trivial_wsgi:application",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            str(int(REQUEST_TIMEOUT + GUNICORN_GRACE)),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with code {proc.returncode}")
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
                return proc
            except requests.RequestException:
                time.sleep(0.5)
        raise RuntimeError("gunicorn did not answer within 90 s")
    except BaseException:
        stop_server(proc)
        raise


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def login(base: str, username: str, password: str) -> dict[str, str]:
    """Sign in through the login form; returns the cookies (session + csrf)."""
    session = requests.Session()
    form = session.get(f"{base}/login/", timeout=30)
    form.raise_for_status()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    if not match:
        raise RuntimeError("login form has no CSRF token")
    answer = session.post(
        f"{base}/login/",
        data={
            "csrfmiddlewaretoken": match.group(1),
            "username": username,
            "password": password,
        },
        headers={"Referer": f"{base}/login/"},
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"login as {username} failed (HTTP {answer.status_code})")
    return session.cookies.get_dict()


def _client(cookies: dict[str, str]) -> requests.Session:
    session = requests.Session()
    session.cookies.update(cookies)
    return session


# Client read timeout in seconds; gunicorn's worker timeout is set a little above it.
REQUEST_TIMEOUT = 60.0


def _get(session: requests.Session, url: str) -> tuple[int, float, int]:
    started = time.perf_counter()
    response = session.get(url, allow_redirects=False, timeout=REQUEST_TIMEOUT)
    elapsed = time.perf_counter() - started
    return response.status_code, elapsed, len(response.content)


def measure_latency(base: str, path: str, cookies: dict[str, str], requested: int) -> dict:
    """Warm up (2 requests), then up to `requested` sequential GETs; times in ms."""
    session = _client(cookies)
    warm = []
    for _ in range(2):
        try:
            status, elapsed, size = _get(session, base + path)
        except requests.Timeout:
            # Leave the worker time to be reaped by gunicorn before the next URL.
            time.sleep(GUNICORN_GRACE + 3)
            return {"timed_out": True, "timeout_s": REQUEST_TIMEOUT, "warmup_ms": warm}
        if status != 200:
            raise RuntimeError(f"{path} answered HTTP {status}")
        warm.append(round(elapsed * 1000, 1))
    count = requested
    if warm[-1] / 1000 > SLOW_PAGE_SECONDS:
        count = max(3, min(requested, int(SEQUENTIAL_BUDGET_SECONDS / (warm[-1] / 1000))))
    times = []
    for _ in range(count):
        status, elapsed, size = _get(session, base + path)
        if status != 200:
            raise RuntimeError(f"{path} answered HTTP {status}")
        times.append(elapsed * 1000)
    return {
        "requests": count,
        "reduced_because_slow": count < requested,
        "warmup_ms": warm,
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(_percentile(times, 95), 1),
        "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1),
        "bytes": size,
    }


def measure_throughput(
    base: str, path: str, cookies: dict[str, str], threads: int, duration: float
) -> dict:
    """`threads` clients loop on GET for `duration` seconds; only HTTP 200 counts as done."""
    deadline = time.perf_counter() + duration
    lock = threading.Lock()
    ok: list[float] = []
    failures: dict[str, int] = {}

    def worker() -> None:
        session = _client(cookies)
        while time.perf_counter() < deadline:
            try:
                status, elapsed, _ = _get(session, base + path)
            except requests.RequestException as exc:
                key = type(exc).__name__
            else:
                key = None if status == 200 else f"HTTP {status}"
            with lock:
                if key is None:
                    ok.append(elapsed)
                else:
                    failures[key] = failures.get(key, 0) + 1

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    # The last requests may finish after the deadline; divide by the real span.
    span = time.perf_counter() - started
    return {
        "threads": threads,
        "seconds": round(span, 2),
        "completed": len(ok),
        "failures": failures,
        "rps": round(len(ok) / span, 2),
        "median_ms_under_load": round(statistics.median(ok) * 1000, 1) if ok else None,
        "p95_ms_under_load": round(_percentile(ok, 95) * 1000, 1) if ok else None,
    }


def measure_paired(
    base: str, path: str, cookies: dict[str, str], args: argparse.Namespace
) -> tuple[dict, dict]:
    """Throughput of ``path`` and of the trivial view in alternating rounds (trivial, page,
    trivial, page, ...; ``args.rounds`` of each, ``args.duration`` seconds in all for each),
    so both see the same machine load. Returns (page, trivial), each summed over its
    rounds."""
    slice_seconds = args.duration / args.rounds
    rounds: dict[str, list[dict]] = {TRIVIAL: [], path: []}
    for _ in range(args.rounds):
        for url in (TRIVIAL, path):
            rounds[url].append(measure_throughput(base, url, cookies, args.threads, slice_seconds))

    def total(parts: list[dict]) -> dict:
        seconds = sum(p["seconds"] for p in parts)
        completed = sum(p["completed"] for p in parts)
        failures: dict[str, int] = {}
        for part in parts:
            for key, n in part["failures"].items():
                failures[key] = failures.get(key, 0) + n
        return {
            "threads": args.threads,
            "rounds": len(parts),
            "seconds": round(seconds, 2),
            "completed": completed,
            "failures": failures,
            "rps": round(completed / seconds, 2) if seconds else 0.0,
            "rps_per_round": [p["rps"] for p in parts],
            "median_ms_under_load": statistics.median(
                [p["median_ms_under_load"] for p in parts if p["median_ms_under_load"]] or [0]
            ),
        }

    return total(rounds[path]), total(rounds[TRIVIAL])


def _psql(db: str, sql: str) -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atc", sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def machine_facts(db: str) -> dict:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "nproc": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "shared_machine": True,
        "note": "shared machine: other helpers ran tests and benchmarks at the same time; "
        "client, gunicorn, Postgres and Redis all ran on this one host",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgres": _psql(db, "SHOW server_version"),
        "git_commit": commit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="cso_perf", help="Postgres database (only read)")
    parser.add_argument("--redis-db", type=int, default=10)
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of load per URL")
    parser.add_argument("--requests", type=int, default=20, help="sequential samples per URL")
    parser.add_argument("--threads", type=int, default=6, help="client threads under load")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="alternating trivial/page load rounds per page (the ratio's pairing)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument(
        "--users", default="cso,paula.alvarez", help="comma-separated demo users to sign in as"
    )
    parser.add_argument("--password", default="acme-demo-2024")
    parser.add_argument("--out", default="", help="output path (default by deal count)")
    parser.add_argument("--timeout", type=float, default=60.0, help="client read timeout (s)")
    args = parser.parse_args()
    if min(args.requests, args.threads, args.workers, args.rounds) < 1 or args.duration <= 0:
        parser.error("--requests, --duration, --threads, --workers and --rounds must be positive")

    global REQUEST_TIMEOUT
    REQUEST_TIMEOUT = args.timeout
    # A run stopped with SIGTERM (e.g. by `timeout`) still unwinds and stops gunicorn.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"stopped by signal {signum}"))
    facts = machine_facts(args.db)
    deals = int(_psql(args.db, "SELECT COUNT(*) FROM crm_opportunity"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    results: dict = {
        "benchmark": "dashboards",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "opportunities": deals,
        "database": args.db,
        "server": {
            "command": f"gunicorn bench._trivial_wsgi:application --workers {args.workers}",
            "worker_class": "sync",
            "debug": False,
            "cache": f"redis db {args.redis_db}",
        },
        "method": {
            "latency": "client wall time on loopback, sequential, after 2 warm-up requests",
            "throughput": f"{args.threads} threads x {args.duration:g} s, HTTP 200 only",
            "trivial": "plain HttpResponse behind the same middleware, signed in",
            "ratio": "page_rps / trivial_rps, same user, same run; the trivial rate is the "
            f"one measured in {args.rounds} rounds alternating with the page's "
            f"(paired_trivial), each side {args.duration:g} s in all",
        },
        "machine": facts,
        "users": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-static-") as static_root:
        env = _server_env(args, static_root)
        proc = start_server(args, env, port)
        try:
            for username in [u.strip() for u in args.users.split(",") if u.strip()]:
                cookies = login(base, username, args.password)
                per_user: dict = {}
                for path in [TRIVIAL, *PAGES]:
                    print(f"{username} {path} ...", flush=True)
                    latency = measure_latency(base, path, cookies, args.requests)
                    if latency.get("timed_out"):
                        # A page that cannot answer within the timeout has no throughput to
                        # speak of; loading it would only pile up killed workers.
                        per_user[path] = {"latency": latency, "throughput": {"rps": 0.0}}
                        print(f"  timed out after {args.timeout:g} s", flush=True)
                        continue
                    if path == TRIVIAL:
                        load = measure_throughput(base, path, cookies, args.threads, args.duration)
                        per_user[path] = {"latency": latency, "throughput": load}
                    else:
                        load, trivial = measure_paired(base, path, cookies, args)
                        per_user[path] = {
                            "latency": latency,
                            "throughput": load,
                            "paired_trivial": trivial,
                        }
                    print(
                        f"  median {latency['median_ms']} ms p95 {latency['p95_ms']} ms "
                        f"(n={latency['requests']}), {load['rps']} req/s",
                        flush=True,
                    )
                for path in PAGES:
                    rps = per_user[path]["throughput"]["rps"]
                    # The trivial view measured in the rounds around this page; the load on
                    # a shared machine drifts over a run, so a trivial rate measured minutes
                    # earlier would make the ratio follow the machine, not the page.
                    paired = per_user[path].get("paired_trivial", {}).get("rps")
                    trivial_rps = paired or per_user[TRIVIAL]["throughput"]["rps"]
                    per_user[path]["ratio_to_trivial"] = (
                        round(rps / trivial_rps, 3) if trivial_rps else None
                    )
                    per_user[path]["meets_target_50pct"] = (
                        trivial_rps > 0 and rps / trivial_rps >= 0.5
                    )
                results["users"][username] = per_user
        finally:
            stop_server(proc)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

    out = Path(args.out) if args.out else REPO / "bench" / "results" / f"dashboards_{deals}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    print(f"{'user':<15}{'page':<26}{'median':>9}{'p95':>9}{'n':>4}{'rps':>9}{'ratio':>7}")
    for username, per_user in results["users"].items():
        for path, row in per_user.items():
            ratio = row.get("ratio_to_trivial")
            if row["latency"].get("timed_out"):
                print(f"{username:<15}{path:<26}  timed out (> {args.timeout:g} s)")
                continue
            print(
                f"{username:<15}{path:<26}{row['latency']['median_ms']:>9}"
                f"{row['latency']['p95_ms']:>9}{row['latency']['requests']:>4}"
                f"{row['throughput']['rps']:>9}{'' if ratio is None else ratio:>7}"
            )


if __name__ == "__main__":
    main()
