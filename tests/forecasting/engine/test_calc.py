"""Pure forecast maths, no database."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from apps.forecasting.engine import calc


def test_weighted_rounds_per_deal():
    # 333.33 x 0.10 = 33.333 -> 33.33; 0.05 x 0.50 = 0.025 -> 0.03 (half up)
    assert calc.weighted_total(
        [Decimal("333.33"), Decimal("0.05")], [Decimal(10), Decimal(50)]
    ) == Decimal("33.36")


def test_age_buckets():
    assert calc.age_bucket(np.array([0, 30, 31, 90, 91, 365, 366])).tolist() == [
        0,
        0,
        1,
        1,
        2,
        3,
        4,
    ]


def test_conversion_rates_shrink_towards_stage_and_default():
    # stage 1 (default 0.2): 4 deals in bucket 0, 3 won; 1 deal in bucket 2, lost
    rates = calc.conversion_rates(
        np.array([1, 1, 1, 1, 1]),
        np.array([0, 0, 0, 0, 2]),
        np.array([1, 1, 1, 0, 0]),
        {1: 0.2, 2: 0.5},
    )
    stage = (3 + 10 * 0.2) / (5 + 10)  # 1/3
    assert rates.stages.set_index("stage").loc[1, "rate"] == pytest.approx(stage)
    cell0 = (3 + 10 * stage) / (4 + 10)
    got = rates.lookup(np.array([1, 1, 1, 2]), np.array([0, 2, 4, 0]), {1: 0.2, 2: 0.5})
    assert got.tolist() == pytest.approx([cell0, (0 + 10 * stage) / 11, stage, 0.5])


def test_monte_carlo_mean_is_the_sum_of_expected_values():
    rng = np.random.default_rng(1)
    amounts = rng.uniform(1_000, 50_000, size=400)
    probabilities = rng.uniform(0.05, 0.9, size=400)
    expected = float((amounts * probabilities).sum())
    sim = calc.monte_carlo(amounts, probabilities, runs=4000, seed=3)
    sd = float(np.sqrt((amounts**2 * probabilities * (1 - probabilities)).sum()))
    # the mean of 4,000 runs is within 4 standard errors of the expectation
    assert abs(sim.mean - expected) < 4 * sd / np.sqrt(4000)
    assert sim.p10 < sim.p50 < sim.p90
    # the P10-P90 width is about 2 x 1.2816 sd (near-normal sum of 400 deals)
    assert (sim.p90 - sim.p10) == pytest.approx(2 * 1.2816 * sd, rel=0.06)
    # reproducible
    assert calc.monte_carlo(amounts, probabilities, runs=4000, seed=3) == sim


def test_monte_carlo_run_rate_adds_its_mean():
    sim = calc.monte_carlo(
        np.array([]),
        np.array([]),
        new_deals_expected=2.0,
        new_deal_amounts=np.array([100.0, 300.0]),
        runs=20000,
        seed=5,
    )
    # 2 deals expected x mean size 200 = 400
    assert sim.mean == pytest.approx(400, rel=0.03)


def test_certain_deals_have_no_spread():
    sim = calc.monte_carlo(np.array([100.0, 50.0]), np.array([1.0, 0.0]), runs=100)
    assert (sim.p10, sim.p50, sim.p90, sim.mean) == (100.0, 100.0, 100.0, 100.0)


def test_brier_and_calibration_table():
    p = np.array([0.05, 0.15, 0.95, 0.92])
    y = np.array([0, 0, 1, 0])
    assert calc.brier_score(p, y) == pytest.approx((0.05**2 + 0.15**2 + 0.05**2 + 0.92**2) / 4)
    table = calc.calibration_table(p, y)
    assert table == [
        {"bin": "0.0-0.1", "count": 1, "predicted": 0.05, "observed": 0.0},
        {"bin": "0.1-0.2", "count": 1, "predicted": 0.15, "observed": 0.0},
        {"bin": "0.9-1.0", "count": 2, "predicted": 0.935, "observed": 0.5},
    ]


def test_scenario_factors_by_hand():
    # growth 12 %/year: month 12 -> 1.12, month 6 -> sqrt(1.12)
    f = calc.scenario_factors(12, growth_pct=12)
    assert f[11] == pytest.approx(1.12)
    assert f[5] == pytest.approx(1.12**0.5)
    # win rate 40 % + 10 pts -> x 1.25 from the first month
    assert calc.scenario_factors(3, win_rate=0.4, win_rate_delta_pts=10).tolist() == pytest.approx(
        [1.25] * 3
    )
    # 4 reps + 2 from next month, 3-month ramp: 1, 1 + 2/3/4, 1 + 4/3/4, 1.5, 1.5
    assert calc.scenario_factors(5, reps=4, headcount_delta=2).tolist() == pytest.approx(
        [1.0, 1 + (2 / 3) / 4, 1 + (4 / 3) / 4, 1.5, 1.5]
    )
    # 4 reps - 1 from next month: 1, then 0.75
    assert calc.scenario_factors(3, reps=4, headcount_delta=-1).tolist() == pytest.approx(
        [1.0, 0.75, 0.75]
    )
    with pytest.raises(ValueError):
        calc.scenario_factors(3, win_rate=None, win_rate_delta_pts=5)
    with pytest.raises(ValueError):
        calc.scenario_factors(3, reps=0, headcount_delta=1)
