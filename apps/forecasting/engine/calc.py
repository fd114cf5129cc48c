"""Pure forecast maths (numpy/pandas, no Django): weighted pipeline, historical conversion
rates by stage and age, Monte Carlo, scoring helpers and what-if scenario factors.

Formulas are documented in docs/forecasting-methods.md; this module is unit-tested
without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

CENT = Decimal("0.01")

#: Deal age buckets (days since creation, upper bounds inclusive); the last is open-ended.
AGE_EDGES = (30, 90, 180, 365)
AGE_LABELS = ("0-30 days", "31-90 days", "91-180 days", "181-365 days", "over 365 days")
#: Pseudo-count pulling a sparse cell's rate towards its stage's (and a stage's towards
#: its default probability): a cell with n observations weighs n / (n + PRIOR_STRENGTH).
PRIOR_STRENGTH = 10.0


def money(value: Decimal | float) -> Decimal:
    if not isinstance(value, Decimal):
        value = Decimal(repr(float(value)))
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def weighted_amount(amount: Decimal, probability_pct: Decimal) -> Decimal:
    """One deal's weighted amount, rounded to the cent (as the KPI rollup does)."""
    return (amount * probability_pct / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def weighted_total(amounts: Iterable[Decimal], probabilities_pct: Iterable[Decimal]) -> Decimal:
    total = Decimal("0.00")
    for amount, pct in zip(amounts, probabilities_pct, strict=True):
        total += weighted_amount(amount, pct)
    return total


def age_bucket(days: np.ndarray) -> np.ndarray:
    """Bucket index (0..len(AGE_EDGES)) of each age in days."""
    return np.searchsorted(np.asarray(AGE_EDGES), np.asarray(days), side="left")


@dataclass(frozen=True)
class ConversionRates:
    """Learned P(won by period end) by stage and age bucket."""

    cells: pd.DataFrame  # columns: stage, bucket, n, wins, rate
    stages: pd.DataFrame  # columns: stage, n, wins, rate
    samples: int

    def lookup(
        self, stage: np.ndarray, bucket: np.ndarray, default: dict[int, float]
    ) -> np.ndarray:
        """Rate for each (stage, bucket); unseen cells fall back to the stage rate, unseen
        stages to their default probability."""
        cell = {
            (int(s), int(b)): r
            for s, b, r in self.cells[["stage", "bucket", "rate"]].itertuples(index=False)
        }
        by_stage = {int(s): r for s, r in self.stages[["stage", "rate"]].itertuples(index=False)}
        out = np.empty(len(stage), dtype=float)
        for i, (s, b) in enumerate(zip(stage.tolist(), bucket.tolist(), strict=True)):
            rate = cell.get((s, b))
            if rate is None:
                rate = by_stage.get(s, default.get(s, 0.0))
            out[i] = rate
        return out


def conversion_rates(
    stage: np.ndarray,
    bucket: np.ndarray,
    won: np.ndarray,
    default: dict[int, float],
    prior_strength: float = PRIOR_STRENGTH,
) -> ConversionRates:
    """Empirical-Bayes win rates: stage rate = (wins + k * default) / (n + k); cell rate =
    (wins + k * stage rate) / (n + k), with k = ``prior_strength``."""
    frame = pd.DataFrame({"stage": stage, "bucket": bucket, "won": won.astype(float)})
    by_stage = frame.groupby("stage", as_index=False).agg(n=("won", "size"), wins=("won", "sum"))
    by_stage["rate"] = [
        (w + prior_strength * default.get(int(s), 0.0)) / (n + prior_strength)
        for s, n, w in by_stage[["stage", "n", "wins"]].itertuples(index=False)
    ]
    stage_rate = dict(zip(by_stage["stage"].tolist(), by_stage["rate"].tolist(), strict=True))
    cells = frame.groupby(["stage", "bucket"], as_index=False).agg(
        n=("won", "size"), wins=("won", "sum")
    )
    cells["rate"] = [
        (w + prior_strength * stage_rate[int(s)]) / (n + prior_strength)
        for s, n, w in cells[["stage", "n", "wins"]].itertuples(index=False)
    ]
    return ConversionRates(cells=cells, stages=by_stage, samples=len(frame))


@dataclass(frozen=True)
class Simulation:
    mean: float
    p10: float
    p50: float
    p90: float
    runs: int


def monte_carlo(
    amounts: np.ndarray,
    probabilities: np.ndarray,
    *,
    new_deals_expected: float = 0.0,
    new_deal_amounts: np.ndarray | None = None,
    runs: int = 2000,
    seed: int = 20240101,
) -> Simulation:
    """Simulate the period's open-deal bookings ``runs`` times.

    Each open deal closes won with its probability, at its amount. Business from deals
    not created yet: a Poisson number of deals with mean ``new_deals_expected``, each with
    an amount drawn from ``new_deal_amounts`` (the trailing created-and-won deals), so its
    mean is new_deals_expected x mean(new_deal_amounts). The seed makes it reproducible.
    """
    rng = np.random.default_rng(seed)
    amounts = np.asarray(amounts, dtype=float)
    probabilities = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    totals = np.zeros(runs, dtype=float)
    n = len(amounts)
    if n:
        probabilities = probabilities.astype(np.float32)
        batch = max(1, min(runs, 4_000_000 // n))
        for start in range(0, runs, batch):
            size = min(batch, runs - start)
            draws = rng.random((size, n), dtype=np.float32) < probabilities
            totals[start : start + size] = draws.astype(np.float64) @ amounts
    if new_deals_expected > 0 and new_deal_amounts is not None and len(new_deal_amounts):
        counts = rng.poisson(new_deals_expected, size=runs)
        picks = rng.choice(np.asarray(new_deal_amounts, dtype=float), size=int(counts.sum()))
        owner = np.repeat(np.arange(runs), counts)
        totals += np.bincount(owner, weights=picks, minlength=runs)
    p10, p50, p90 = np.percentile(totals, [10, 50, 90])
    return Simulation(float(totals.mean()), float(p10), float(p50), float(p90), runs)


def brier_score(
    probabilities: Sequence[float] | np.ndarray, outcomes: Sequence[int] | np.ndarray
) -> float:
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(outcomes, dtype=float)
    if not len(p):
        return float("nan")
    return float(np.mean((p - y) ** 2))


def calibration_table(
    probabilities: np.ndarray, outcomes: np.ndarray, bins: int = 10
) -> list[dict[str, float | int | str]]:
    """Equal-width bins of predicted probability: count, mean predicted, observed rate."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(outcomes, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    table: list[dict[str, float | int | str]] = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        if not count:
            continue
        table.append(
            {
                "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                "count": count,
                "predicted": round(float(p[mask].mean()), 4),
                "observed": round(float(y[mask].mean()), 4),
            }
        )
    return table


# --- Outlook scenarios -------------------------------------------------------------------

#: Months for a new rep to reach full productivity (linear ramp: 1/3, 2/3, then 1).
RAMP_MONTHS = 3


def scenario_factors(
    months_ahead: int,
    *,
    growth_pct: float = 0.0,
    win_rate: float | None = None,
    win_rate_delta_pts: float = 0.0,
    reps: int = 0,
    headcount_delta: int = 0,
    ramp_months: int = RAMP_MONTHS,
) -> np.ndarray:
    """Multiplier applied to the baseline projection of each future month m = 1..N, where
    m = 1 is the first projected month (the current one).

    growth: (1 + g)^(m / 12), g = growth_pct / 100 (extra yearly growth, compounding
    monthly); win rate: (wr + delta) / wr, with wr + delta clamped to [0, 1], from m = 1;
    headcount: (reps + delta x ramp(m)) / reps, reps joining (or leaving) at the start of
    the next month: ramp(m) = min((m - 1) / ramp_months, 1) for added reps (1/3, 2/3, then
    full with a three-month ramp), and 1 from m = 2 for removed reps (0 in month 1).
    """
    m = np.arange(1, months_ahead + 1, dtype=float)
    factor = (1.0 + growth_pct / 100.0) ** (m / 12.0)
    if win_rate_delta_pts:
        if not win_rate:
            raise ValueError("a win-rate change needs a known, non-zero win rate")
        new_rate = min(max(win_rate + win_rate_delta_pts / 100.0, 0.0), 1.0)
        factor = factor * (new_rate / win_rate)
    if headcount_delta:
        if reps <= 0:
            raise ValueError("a headcount change needs at least one current rep")
        if headcount_delta > 0:
            ramp = np.minimum((m - 1) / max(ramp_months, 1), 1.0)
        else:
            ramp = (m >= 2).astype(float)
        factor = factor * np.maximum(reps + headcount_delta * ramp, 0.0) / reps
    return factor
