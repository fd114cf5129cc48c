"""Forecast engine benchmark (not a test): the nightly-style compute (every method for the
company, every team and every rep, current and next quarter), deal scores for the
company, and the weekly model training, on an already seeded database. Writes
bench/results/forecasting_<scale>.json.

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/cso_perf \\
        .venv/bin/python manage.py migrate forecast_engine
    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/cso_perf \\
        .venv/bin/python bench/forecasting_bench.py

It only reads the deals (and writes the trained model into forecast_engine's table).
Baseline for the ratio: one hand-written SQL query of the current quarter's weighted
pipeline over the opportunity table (what the simplest forecast costs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cso_dashboard.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.crm.models import Opportunity, OpportunityHistory  # noqa: E402
from apps.forecasting.engine import api, data, ml  # noqa: E402
from apps.forecasting.engine.training import model_train  # noqa: E402
from apps.kpis.selectors import period_parse, period_shift, scope_resolve  # noqa: E402
from apps.org.models import Role, Team, User  # noqa: E402
from apps.quotas import fiscal  # noqa: E402


def say(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, round(time.perf_counter() - start, 3)


def baseline_seconds(start, end) -> float:
    sql = """
        SELECT o.owner_id, SUM(o.amount * s.probability / 100)
        FROM crm_opportunity o JOIN crm_stage s ON s.id = o.stage_id
        WHERE s.outcome = 'open' AND o.close_date BETWEEN %s AND %s
        GROUP BY o.owner_id
    """
    with connection.cursor() as cursor:
        begin = time.perf_counter()
        cursor.execute(sql, [start, end])
        cursor.fetchall()
        return round(time.perf_counter() - begin, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--periods", type=int, default=2, help="current (+ next) quarter")
    args = parser.parse_args()

    today = timezone.localdate()
    quarter = fiscal.period_containing(today, "quarter", settings.FISCAL_YEAR_START_MONTH)
    current = period_parse(quarter.name)
    periods = [period_shift(current, k) for k in range(args.periods)]
    result: dict = {
        "benchmark": "forecasting",
        "database": connection.settings_dict["NAME"],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "rows": {
            "opportunities": Opportunity.objects.count(),
            "history_rows": OpportunityHistory.objects.count(),
        },
        "as_of": today.isoformat(),
        "periods": [p.name for p in periods],
    }
    say(f"rows {result['rows']}")

    cso = User.objects.filter(role=Role.EXECUTIVE, is_active=True).order_by("id").first()
    scopes = [scope_resolve(user=cso)]
    scopes += [
        scope_resolve(user=cso, team_id=t) for t in Team.objects.values_list("id", flat=True)
    ]
    scopes += [
        scope_resolve(user=cso, rep_id=r)
        for r in User.objects.filter(role=Role.REP).values_list("id", flat=True)
    ]
    result["scopes"] = len(scopes)

    data.cache_clear()
    _, load_s = timed(data.load)
    result["history_load_seconds"] = load_s
    say(f"history loaded in {load_s}s")

    if not args.skip_train:
        # Fitting itself (history already loaded), then the service (stores a version,
        # or returns the one already trained today on the same data).
        (_bundle, _metrics, samples), fit_s = timed(ml.train, data.load(), today)
        trained, train_s = timed(model_train, as_of=today)
        result["model_train"] = {
            "fit_seconds": fit_s,
            "fit_samples": samples,
            "service_seconds": train_s,
            "version": trained.version,
            "created": trained.created,
            "samples": trained.n_samples,
            "brier": trained.metrics.get("brier"),
            "brier_stage_baseline": trained.metrics.get("brier_stage_baseline"),
            "calibration": trained.metrics.get("calibration"),
        }
        say(
            f"model trained in {train_s}s: {result['model_train']['brier']} vs "
            f"{result['model_train']['brier_stage_baseline']}"
        )
        _, again_s = timed(model_train, as_of=today)
        result["model_train"]["second_run_seconds"] = again_s

    # Nightly-style: every method for every scope and period, data cache warm or cold.
    per_scope: list[float] = []
    companies = {}
    begin = time.perf_counter()
    with api.reusing_data():
        for period in periods:
            for scope in scopes:
                forecasts, seconds = timed(
                    api.forecasts_compute, scope=scope, period=period, as_of=today
                )
                per_scope.append(seconds)
                if scope.kind == "company":
                    companies[period.name] = {
                        f.method: {
                            "expected": str(f.expected),
                            "p10": str(f.p10) if f.p10 is not None else None,
                            "p90": str(f.p90) if f.p90 is not None else None,
                            "open_deals": f.open_deals,
                        }
                        for f in forecasts
                    }
                    say(f"company {period.name}: {seconds}s")
    total = round(time.perf_counter() - begin, 3)
    result["nightly_compute"] = {
        "seconds_total": total,
        "calls": len(per_scope),
        "seconds_first_call": per_scope[0],
        "seconds_per_call_mean": round(sum(per_scope) / len(per_scope), 3),
        "seconds_per_call_max": max(per_scope),
        "company_forecasts": companies,
    }
    say(f"nightly compute: {total}s for {len(per_scope)} calls")

    data.cache_clear()
    _, cold_s = timed(api.forecasts_compute, scope=scopes[0], period=current, as_of=today)
    result["single_company_forecast_cold_seconds"] = cold_s
    scores, scores_s = timed(api.deal_scores, scope=scopes[0], period=current, as_of=today)
    result["deal_scores_company"] = {"seconds_warm": scores_s, "deals": len(scores)}

    base = baseline_seconds(current.start, current.end)
    result["baseline_weighted_sql_seconds"] = base
    result["ratio_nightly_to_baseline_per_call"] = (
        round(result["nightly_compute"]["seconds_per_call_mean"] / base, 1) if base else None
    )
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    name = f"forecasting_{result['rows']['opportunities']}.json"
    out = REPO / "bench" / "results" / name
    out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {out}")


if __name__ == "__main__":
    main()
