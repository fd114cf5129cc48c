"""The ML close probability on synthetic deals with known true probabilities: it beats
the stage-probability baseline, reports its calibration, explains each deal, is stored,
retrained idempotently by the task, and never uses a model trained on later data."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from apps.core.models import JobRun
from apps.forecasting.engine import api, calc, data, ml
from apps.forecasting.engine.models import TrainedModel
from apps.forecasting.engine.tasks import model_train_task
from apps.kpis.selectors import KpiScope, period_parse
from tests.forecasting.engine.factories import synthetic_book

AS_OF = date(2024, 8, 15)


@pytest.fixture
def synthetic(world):
    return synthetic_book(world, as_of=AS_OF)


def test_brier_beats_stage_baseline_and_calibration_is_reported(synthetic):
    # when the model is trained as of AS_OF
    result = api.model_train(as_of=AS_OF)
    metrics = result.metrics
    # then, on the held-out latest quarter of snapshots, it beats the stage probabilities
    assert result.created is True
    assert metrics["holdout_samples"] > 300
    assert metrics["brier"] < metrics["brier_stage_baseline"] - 0.02
    # and its calibration table adds up and is close to the diagonal
    table = metrics["calibration"]
    assert sum(row["count"] for row in table) == metrics["holdout_samples"]
    gap = sum(row["count"] * abs(row["predicted"] - row["observed"]) for row in table)
    assert gap / metrics["holdout_samples"] < 0.08
    assert {"bin", "count", "predicted", "observed"} <= set(table[0])


def test_probabilities_track_the_true_ones(synthetic):
    # given a trained model; when scoring the deals open at AS_OF (the test's unseen ones)
    api.model_train(as_of=AS_OF)
    period = period_parse("2024-Q3")
    scores = api.deal_scores(scope=KpiScope(kind="company"), period=period, as_of=AS_OF)
    truth = {d.opportunity.pk: d.probability for d in synthetic}
    predicted = np.asarray([s.probability for s in scores])
    true = np.asarray([truth[s.opportunity_id] for s in scores])
    stage = np.asarray([s.stage_probability for s in scores])
    # then the model is nearer the true probabilities than the stage defaults are
    assert len(scores) > 30
    assert np.mean((predicted - true) ** 2) < np.mean((stage - true) ** 2)
    assert np.corrcoef(predicted, true)[0, 1] > 0.6
    # sorted by probability, each with 3-5 signed factors
    assert [s.probability for s in scores] == sorted(predicted.tolist(), reverse=True)
    assert all(3 <= len(s.top_factors) <= 5 for s in scores)
    commit = next(
        s for s in scores if any(f[0] == "Forecast category: commit" for f in s.top_factors)
    )
    factor = dict(commit.top_factors)["Forecast category: commit"]
    assert factor > 0


def test_ml_method_uses_the_stored_model(synthetic):
    trained = api.model_train(as_of=AS_OF)
    results = {
        r.method: r
        for r in api.forecasts_compute(
            scope=KpiScope(kind="company"), period=period_parse("2024-Q3"), as_of=AS_OF
        )
    }
    ml_result = results["ml"]
    assert ml_result.detail["model_version"] == trained.version
    scores = api.deal_scores(
        scope=KpiScope(kind="company"), period=period_parse("2024-Q3"), as_of=AS_OF
    )
    # the ML expectation is won to date + sum of probability x amount over the same deals
    amounts = {o.pk: o.amount for o in (d.opportunity for d in synthetic)}
    expected = sum(
        (
            calc.money(
                amounts[s.opportunity_id] * __import__("decimal").Decimal(repr(s.probability))
            )
            for s in scores
        ),
        ml_result.won_to_date,
    )
    assert ml_result.expected == expected
    assert results["monte_carlo"].detail["probabilities"] == "ml"


def test_never_scores_with_a_model_trained_on_later_data(synthetic):
    # given a model trained as of AS_OF
    later = api.model_train(as_of=AS_OF)
    # when forecasting as of an earlier date
    earlier_day = date(2024, 5, 20)
    results = {
        r.method: r
        for r in api.forecasts_compute(
            scope=KpiScope(kind="company"), period=period_parse("2024-Q2"), as_of=earlier_day
        )
    }
    # then a model as of that date (or before) is trained and used, not the later one
    used = results["ml"].detail["model_version"]
    assert used != later.version
    assert TrainedModel.objects.get(version=used).as_of <= earlier_day


def test_training_samples_use_only_finished_quarters(synthetic):
    loaded = data.load()
    x, y, baseline, days = ml.training_set(loaded, AS_OF)
    # every snapshot lies in a quarter that ended before AS_OF (Q3 2024 is still running)
    assert days.max() < (date(2024, 7, 1) - date(1970, 1, 1)).days
    assert len(x) == len(y) == len(baseline)
    assert set(np.unique(y)) == {0, 1}


def test_task_is_idempotent_and_recorded(synthetic):
    first = model_train_task.delay(AS_OF.isoformat()).get()
    second = model_train_task.delay(AS_OF.isoformat()).get()
    assert first == second
    assert TrainedModel.objects.count() == 1
    runs = JobRun.objects.filter(kind="forecast_model_train").order_by("started_at")
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert runs[0].rows > 0
    assert runs[1].detail == {"version": first, "reused": True}


def test_too_little_history_is_a_clear_error(world):
    world.deal(
        owner=world.rep_a,
        amount="100",
        stage="prospect",
        created=date(2024, 1, 5),
        close=date(2024, 2, 1),
    )
    with pytest.raises(Exception, match="Not enough history to train"):
        api.model_train(as_of=AS_OF)
    run = JobRun.objects.get(kind="forecast_model_train")
    assert run.status == "failed"
    assert "Not enough history" in run.error
