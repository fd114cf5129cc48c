"""The forecast engine's public API (the contract with apps.forecasting).

Every function works for a scope (company, team subtree or rep, as resolved by
:func:`apps.kpis.selectors.scope_resolve`) and uses only what was known at the end of
``as_of`` (default: today in TIME_ZONE), rebuilt from the opportunity history.
Methods and formulas: docs/forecasting-methods.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.forecasting.engine import calc, data, methods, ml
from apps.kpis.selectors import KpiFilters, KpiPeriod, KpiScope

__all__ = [
    "DealScore",
    "MethodForecast",
    "Outlook",
    "OutlookPoint",
    "ScenarioInputs",
    "TrainResult",
    "deal_scores",
    "forecasts_compute",
    "model_train",
    "outlook_compute",
    "reusing_data",
]

TrainResult = ml.TrainResult
#: ``with reusing_data(): ...`` — batch callers (the nightly recompute of every scope, a
#: backtest) read the deal history once for the whole block instead of re-checking it per
#: call; outside such a block every call sees the latest data.
reusing_data = data.reusing

METHOD_LABELS = {
    "weighted": "Weighted pipeline",
    "historical": "Historical conversion",
    "ml": "ML close probability",
    "monte_carlo": "Monte Carlo",
}
#: Monte Carlo runs and seed (fixed, so the same inputs always give the same range).
MONTE_CARLO_RUNS = 2000
MONTE_CARLO_SEED = 20240101


@dataclass(frozen=True)
class MethodForecast:
    method: str
    label: str
    expected: Decimal
    won_to_date: Decimal
    p10: Decimal | None
    p50: Decimal | None
    p90: Decimal | None
    open_deals: int
    detail: dict


@dataclass(frozen=True)
class DealScore:
    opportunity_id: int
    probability: float
    stage_probability: float
    top_factors: list[tuple[str, float]]


@dataclass(frozen=True)
class ScenarioInputs:
    growth_pct: float = 0.0
    win_rate_delta_pts: float = 0.0
    headcount_delta: int = 0


@dataclass(frozen=True)
class OutlookPoint:
    month: date
    value: Decimal
    low: Decimal
    high: Decimal
    baseline: Decimal


@dataclass(frozen=True)
class Outlook:
    history: list[tuple[date, Decimal]]
    points: list[OutlookPoint]
    model: str
    yearly: list[tuple[str, Decimal, Decimal]]


def _check(scope: KpiScope, period: KpiPeriod) -> None:
    if not isinstance(scope, KpiScope) or scope.kind not in ("company", "team", "rep"):
        raise ApplicationError(
            "Unknown scope: forecasts are for the company, a team or a rep "
            "(resolve it with apps.kpis.selectors.scope_resolve)."
        )
    if scope.kind != "company" and scope.owner_ids is None:
        raise ApplicationError(f"The {scope.kind} scope has no owners resolved.")
    if not isinstance(period, KpiPeriod) or period.end < period.start:
        raise ApplicationError("Unknown period: use apps.kpis.selectors.period_parse.")


def _load_or_fail() -> data.EngineData:
    loaded = data.load()
    if loaded.history.empty:
        raise ApplicationError(
            "There is no deal history to forecast from: import opportunities first."
        )
    if not loaded.stages.open_ids():
        raise ApplicationError("Forecasts need at least one open pipeline stage.")
    return loaded


def _ml_probabilities(
    loaded: data.EngineData,
    deals: methods.PeriodDeals,
    period: KpiPeriod,
    as_of: date,
    *,
    explain: bool,
) -> tuple[np.ndarray | None, list[list[tuple[str, float]]], dict]:
    """ML probabilities and factors for the period's open deals; (None, [], reason) when
    no model can be had (too little history)."""
    try:
        bundle = ml.model_for(loaded, as_of)
    except ApplicationError as exc:
        return None, [], {"unavailable": exc.message}
    probabilities, factors = ml.score(
        loaded, bundle, deals.open, as_of=as_of, period_end=period.end, explain=explain
    )
    return (
        probabilities,
        factors,
        {"model_version": bundle.version, "model_as_of": str(bundle.as_of)},
    )


def forecasts_compute(
    *,
    scope: KpiScope,
    period: KpiPeriod,
    as_of: date | None = None,
    filters: KpiFilters | None = None,
) -> list[MethodForecast]:
    """Every method for one scope and period, as known at the end of ``as_of``.

    Weighted, historical and ML are won-to-date plus the expected value of the open deals
    closing in the period; Monte Carlo adds business from deals not created yet (run-rate)
    and gives P10/P50/P90. ML is left out (and Monte Carlo uses stage probabilities) when
    there is too little closed history to train a model; ``detail`` says so.
    """
    _check(scope, period)
    as_of = as_of or timezone.localdate()
    filters = filters or KpiFilters()
    loaded = _load_or_fail()
    deals = methods.period_deals(loaded, scope=scope, period=period, as_of=as_of, filters=filters)
    won = deals.won_to_date
    common = {"as_of": as_of.isoformat(), "period": period.name, "won_deals": deals.won_deals}
    n_open = len(deals.open)
    results: list[MethodForecast] = []

    weighted_total, weighted_detail = methods.weighted(loaded, deals)
    results.append(
        MethodForecast(
            "weighted",
            METHOD_LABELS["weighted"],
            won + weighted_total,
            won,
            None,
            None,
            None,
            n_open,
            {**common, "open_expected": str(weighted_total), **weighted_detail},
        )
    )

    hist_total, _probs, hist_detail = methods.historical(loaded, deals, period, as_of)
    results.append(
        MethodForecast(
            "historical",
            METHOD_LABELS["historical"],
            won + hist_total,
            won,
            None,
            None,
            None,
            n_open,
            {**common, "open_expected": str(hist_total), **hist_detail},
        )
    )

    ml_probs, _factors, ml_detail = _ml_probabilities(loaded, deals, period, as_of, explain=False)
    if ml_probs is not None:
        ml_total = sum(
            (
                calc.money(a * Decimal(repr(float(p))))
                for a, p in zip(deals.amounts, ml_probs, strict=True)
            ),
            Decimal("0.00"),
        )
        results.append(
            MethodForecast(
                "ml",
                METHOD_LABELS["ml"],
                won + ml_total,
                won,
                None,
                None,
                None,
                n_open,
                {**common, "open_expected": str(ml_total), **ml_detail},
            )
        )

    if ml_probs is not None:
        probabilities, source = ml_probs, "ml"
    else:
        stage_p = loaded.stages.probability_array()
        probabilities = stage_p[deals.open["stage"].to_numpy()] if n_open else np.array([])
        source = "stage"
    new_deals, new_amounts, run_detail = methods.run_rate(
        loaded, scope=scope, period=period, as_of=as_of, filters=filters
    )
    sim = calc.monte_carlo(
        np.asarray([float(a) for a in deals.amounts]),
        probabilities,
        new_deals_expected=new_deals,
        new_deal_amounts=new_amounts,
        runs=MONTE_CARLO_RUNS,
        seed=MONTE_CARLO_SEED,
    )
    results.append(
        MethodForecast(
            "monte_carlo",
            METHOD_LABELS["monte_carlo"],
            won + calc.money(sim.mean),
            won,
            won + calc.money(sim.p10),
            won + calc.money(sim.p50),
            won + calc.money(sim.p90),
            n_open,
            {
                **common,
                "runs": sim.runs,
                "seed": MONTE_CARLO_SEED,
                "probabilities": source,
                "run_rate": run_detail,
                **({"ml": ml_detail} if ml_probs is None else {}),
            },
        )
    )
    return results


def deal_scores(
    *, scope: KpiScope, period: KpiPeriod, as_of: date | None = None
) -> list[DealScore]:
    """Open deals of the scope closing in the period (as of ``as_of``), highest
    probability first. Without a model (too little history) the probability is the
    stage's and the only factor says so."""
    _check(scope, period)
    as_of = as_of or timezone.localdate()
    loaded = _load_or_fail()
    deals = methods.period_deals(
        loaded, scope=scope, period=period, as_of=as_of, filters=KpiFilters()
    )
    stage_p = loaded.stages.probability_array()
    stage_probs = stage_p[deals.open["stage"].to_numpy()] if len(deals.open) else np.array([])
    probs, factors, detail = _ml_probabilities(loaded, deals, period, as_of, explain=True)
    if probs is None:
        probs = stage_probs
        reason = f"Stage probability ({detail['unavailable']})"
        factors = [[(reason, 0.0)] for _ in range(len(stage_probs))]
    scores = [
        DealScore(int(opp), float(p), float(sp), list(f))
        for opp, p, sp, f in zip(
            deals.open["opp"].tolist(), probs, stage_probs, factors, strict=True
        )
    ]
    scores.sort(key=lambda s: (-s.probability, s.opportunity_id))
    return scores


def outlook_compute(
    *, scope: KpiScope, months: int = 36, scenario: ScenarioInputs = ScenarioInputs()
) -> Outlook:
    """Monthly bookings projected ``months`` (36-60) ahead with a seasonal model, the
    scenario applied on top (see docs/forecasting-methods.md, "Outlook")."""
    from apps.forecasting.engine import outlook

    if not isinstance(scope, KpiScope) or scope.kind not in ("company", "team", "rep"):
        raise ApplicationError("Unknown scope for the outlook.")
    return outlook.outlook(scope=scope, months=months, scenario=scenario)


def model_train(*, as_of: date | None = None) -> TrainResult:
    """Train and store the close-probability model as of ``as_of`` (default today).
    Idempotent: when a model for that as-of date and data exists, it is returned."""
    from apps.forecasting.engine.training import model_train as train

    return train(as_of=as_of)
