"""ML close probability: features, training, calibration, explanation, persistence.

Model: logistic regression on standardised numeric features and one-hot categories,
calibrated with isotonic regression (``CalibratedClassifierCV``, 3 folds). Chosen over
gradient boosting because its log-odds are a sum of per-feature terms, so every deal's
top factors are exact signed contributions rather than an approximation, it trains in
seconds on the sampled history, and the isotonic step fixes what calibration the linear
form misses. See docs/forecasting-methods.md.

Target: a deal open at a snapshot day d, expected to close in the fiscal quarter that
contains d, is *won by the end of that quarter* (known as of the training date). Features
are computed from the deal's history as it stood at d, so nothing after d leaks in.
"""

from __future__ import annotations

import io
import logging
import math
import threading
from dataclasses import dataclass
from datetime import date, timedelta

import joblib
import numpy as np
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from apps.core.errors import ApplicationError
from apps.crm.models import Stage
from apps.forecasting.engine import calc
from apps.forecasting.engine.data import (
    MICROS_PER_DAY,
    EngineData,
    cutoff_micros,
    day_number,
)
from apps.forecasting.engine.models import TrainedModel
from apps.quotas import fiscal

logger = logging.getLogger(__name__)

ALGORITHM = "logistic regression + isotonic calibration (scikit-learn)"
NUMERIC = [
    "log_amount",
    "log_age",
    "log_days_in_stage",
    "pushes",
    "owner_win_rate",
    "days_left",
    "days_to_close",
]
CATEGORICAL = ["stage", "forecast_category", "segment", "product", "deal_type"]
LABELS = {
    "log_amount": "Amount",
    "log_age": "Deal age",
    "log_days_in_stage": "Days in stage",
    "pushes": "Close date pushes",
    "owner_win_rate": "Owner's win rate (trailing year)",
    "days_left": "Days left in period",
    "days_to_close": "Days to expected close",
    "stage": "Stage",
    "forecast_category": "Forecast category",
    "segment": "Segment",
    "product": "Product",
    "deal_type": "Deal type",
}
#: Training: snapshot every SNAPSHOT_STEP_DAYS over the trailing TRAIN_DAYS.
SNAPSHOT_STEP_DAYS = 14
TRAIN_DAYS = 730
#: Rows kept for fitting (a fixed-seed sample when there are more).
MAX_SAMPLES = 150_000
MIN_SAMPLES = 200
#: Pseudo-count pulling an owner's trailing win rate towards the company's.
OWNER_PRIOR = 5.0
#: A stored model is used for as-of dates up to this many days after its own.
MAX_MODEL_AGE_DAYS = 92
SEED = 7


@dataclass
class TrainResult:
    """What :func:`model_train` produced."""

    version: int
    as_of: date
    n_samples: int
    metrics: dict
    created: bool  # False when a model for this as-of date already existed (idempotent)


@dataclass
class Bundle:
    """The fitted model and what is needed to explain it."""

    calibrated: CalibratedClassifierCV
    explainer: Pipeline
    mean_transformed: np.ndarray
    feature_groups: list[str]  # original feature of each transformed column
    version: int | None = None
    as_of: date | None = None


# --- Features ----------------------------------------------------------------------------


def _owner_rates(data: EngineData, end: int) -> tuple[dict[int, float], float]:
    """Each owner's win rate over deals closed in the 365 days before moment ``end``
    (by when they were closed, as recorded in history), smoothed towards the company's."""
    closings = data.closings
    t = closings["t"].to_numpy()
    lo, hi = np.searchsorted(t, [end - 365 * MICROS_PER_DAY, end])
    window = closings.iloc[lo:hi]
    if window.empty:
        return {}, 0.0
    company = float(window["won"].mean())
    grouped = window.groupby("owner")["won"].agg(["sum", "size"])
    rates = {
        int(owner): (float(row["sum"]) + OWNER_PRIOR * company) / (float(row["size"]) + OWNER_PRIOR)
        for owner, row in grouped.iterrows()
    }
    return rates, company


def features(
    data: EngineData, state: pd.DataFrame, *, day: int, period_end: int, cut: int
) -> pd.DataFrame:
    """The model's features for deals in ``state`` (their as-of rows with attributes),
    all measured at the end of ``day`` (moment ``cut``)."""
    amounts = data.rates.to_base_float(
        state["cents"].to_numpy(),
        state["currency"].astype(str).to_numpy(),
        state["close"].to_numpy(),
    )
    amounts = np.where(np.isnan(amounts), np.nanmedian(amounts) if len(amounts) else 0.0, amounts)
    rates, company = _owner_rates(data, cut)
    owner_rate = state["owner"].map(lambda o: rates.get(int(o), company)).to_numpy(dtype=float)
    stage_days = (cut - state["stage_since"].to_numpy()) / MICROS_PER_DAY
    names = data.stages.name
    return pd.DataFrame(
        {
            "log_amount": np.log1p(np.maximum(amounts, 0.0)),
            "log_age": np.log1p(np.maximum(day - state["created"].to_numpy(dtype=float), 0.0)),
            "log_days_in_stage": np.log1p(np.maximum(stage_days, 0.0)),
            "pushes": state["pushes"].to_numpy(dtype=float),
            "owner_win_rate": owner_rate,
            "days_left": float(period_end) - day,
            "days_to_close": state["close"].to_numpy(dtype=float) - day,
            "stage": [names.get(int(s), str(s)) for s in state["stage"].tolist()],
            "forecast_category": state["category"].astype(str).to_numpy(),
            "segment": state["segment"].astype(str).to_numpy(),
            "product": state["product"].astype(str).to_numpy(),
            "deal_type": state["deal_type"].astype(str).to_numpy(),
        },
        index=state.index,
    )


def _snapshot(
    data: EngineData, day: date, final: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray] | None:
    """Open deals at the end of ``day`` expected to close in its fiscal quarter, their
    features, whether they were won by the quarter's end, and their stage probability."""
    quarter = fiscal.period_containing(day, "quarter", settings.FISCAL_YEAR_START_MONTH)
    cut = cutoff_micros(day)
    state = data.state_at(cut)
    open_of = data.stages.code_array(Stage.Outcome.OPEN)
    start, end, today = day_number(quarter.start), day_number(quarter.end), day_number(day)
    made = data.deals["created"].reindex(state.index).to_numpy()
    mask = (
        open_of[state["stage"].to_numpy()]
        & (state["close"].to_numpy() >= start)
        & (state["close"].to_numpy() <= end)
        & (made <= today)
    )
    snap = state.loc[mask]
    if snap.empty:
        return None
    attrs = data.deals.reindex(snap.index)
    snap = snap.assign(
        created=attrs["created"].to_numpy(),
        product=attrs["product"].to_numpy(),
        deal_type=attrs["deal_type"].to_numpy(),
        segment=attrs["segment"].to_numpy(),
        region=attrs["region"].to_numpy(),
    )
    later = final.reindex(snap.index)
    won_of = data.stages.code_array(Stage.Outcome.WON)
    later_stage = later["stage"].fillna(0).astype(np.int64).to_numpy()
    later_close = later["close"].fillna(-1).to_numpy()
    won = won_of[later_stage] & (later_close >= start) & (later_close <= end)
    baseline = data.stages.probability_array()[snap["stage"].to_numpy()]
    return features(data, snap, day=today, period_end=end, cut=cut), won, baseline


def training_set(
    data: EngineData, as_of: date
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """(features, won, stage baseline, snapshot day) over the trailing TRAIN_DAYS, only
    from snapshots whose quarter had ended by ``as_of`` (so each outcome is known)."""
    final = data.state_at(cutoff_micros(as_of))
    frames, labels, baselines, days = [], [], [], []
    day = as_of - timedelta(days=SNAPSHOT_STEP_DAYS)
    first = as_of - timedelta(days=TRAIN_DAYS)
    start_month = settings.FISCAL_YEAR_START_MONTH
    while day >= first:
        quarter = fiscal.period_containing(day, "quarter", start_month)
        if quarter.end < as_of:
            found = _snapshot(data, day, final)
            if found is not None:
                x, y, base = found
                frames.append(x)
                labels.append(y)
                baselines.append(base)
                days.append(np.full(len(y), day_number(day)))
        day -= timedelta(days=SNAPSHOT_STEP_DAYS)
    if not frames:
        return pd.DataFrame(), np.array([]), np.array([]), np.array([])
    return (
        pd.concat(frames, ignore_index=True),
        np.concatenate(labels).astype(int),
        np.concatenate(baselines),
        np.concatenate(days),
    )


# --- Fitting -----------------------------------------------------------------------------


def _pipeline() -> Pipeline:
    return Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("numeric", StandardScaler(), NUMERIC),
                        ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                    ],
                    sparse_threshold=0.0,
                ),
            ),
            ("model", LogisticRegression(C=1.0, max_iter=2000)),
        ]
    )


def _calibrated() -> CalibratedClassifierCV:
    return CalibratedClassifierCV(_pipeline(), method="isotonic", cv=3)


def _check_trainable(y: np.ndarray) -> None:
    if len(y) < MIN_SAMPLES:
        raise ApplicationError(
            f"Not enough history to train the close-probability model: {len(y)} deal "
            f"snapshots from finished quarters, at least {MIN_SAMPLES} are needed."
        )
    if y.min() == y.max():
        raise ApplicationError(
            "Cannot train the close-probability model: the history has only "
            + ("won" if y[0] else "not-won")
            + " outcomes."
        )


def fit(x: pd.DataFrame, y: np.ndarray) -> Bundle:
    _check_trainable(y)
    calibrated = _calibrated().fit(x, y)
    explainer = _pipeline().fit(x, y)
    transformed = explainer.named_steps["columns"].transform(x)
    groups: list[str] = []
    for name in explainer.named_steps["columns"].get_feature_names_out():
        kind, _, rest = name.partition("__")
        if kind == "numeric":
            groups.append(rest)
        else:
            groups.append(next(c for c in CATEGORICAL if rest.startswith(c + "_")))
    return Bundle(
        calibrated=calibrated,
        explainer=explainer,
        mean_transformed=np.asarray(transformed.mean(axis=0)).ravel(),
        feature_groups=groups,
    )


def _sample(n: int) -> np.ndarray:
    if n <= MAX_SAMPLES:
        return np.arange(n)
    return np.sort(np.random.default_rng(SEED).choice(n, size=MAX_SAMPLES, replace=False))


def train(data: EngineData, as_of: date) -> tuple[Bundle, dict, int]:
    """Fit on the history as of ``as_of``; evaluate on the latest quarter of snapshots
    (held out, model fitted on the earlier ones), then refit on all. Returns the bundle,
    metrics and the number of samples used."""
    x, y, baseline, days = training_set(data, as_of)
    _check_trainable(y)
    keep = _sample(len(y))
    x, y, baseline, days = x.iloc[keep].reset_index(drop=True), y[keep], baseline[keep], days[keep]
    split = np.quantile(days, 0.75)
    train_mask, test_mask = days < split, days >= split
    metrics: dict = {"samples": len(y), "positives": int(y.sum())}
    if train_mask.sum() >= MIN_SAMPLES and len(set(y[train_mask])) == 2 and test_mask.sum():
        held = fit(x.loc[train_mask], y[train_mask])
        p = held.calibrated.predict_proba(x.loc[test_mask])[:, 1]
        metrics.update(
            {
                "holdout_samples": int(test_mask.sum()),
                "holdout_from": (date(1970, 1, 1) + timedelta(days=int(split))).isoformat(),
                "brier": round(calc.brier_score(p, y[test_mask]), 5),
                "brier_stage_baseline": round(
                    calc.brier_score(baseline[test_mask], y[test_mask]), 5
                ),
                "calibration": calc.calibration_table(p, y[test_mask]),
                "calibration_stage_baseline": calc.calibration_table(
                    baseline[test_mask], y[test_mask]
                ),
            }
        )
    bundle = fit(x, y)
    return bundle, metrics, len(y)


# --- Persistence -------------------------------------------------------------------------


def _dump(bundle: Bundle) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(
        {
            "calibrated": bundle.calibrated,
            "explainer": bundle.explainer,
            "mean_transformed": bundle.mean_transformed,
            "feature_groups": bundle.feature_groups,
        },
        buffer,
        compress=3,
    )
    return buffer.getvalue()


_loaded_lock = threading.Lock()
_loaded: dict[int, Bundle] = {}


def _load(row: TrainedModel) -> Bundle:
    with _loaded_lock:
        found = _loaded.get(row.pk)
    if found is not None:
        return found
    raw = joblib.load(io.BytesIO(bytes(row.blob)))
    bundle = Bundle(**raw, version=row.version, as_of=row.as_of)
    with _loaded_lock:
        _loaded.clear()
        _loaded[row.pk] = bundle
    return bundle


def model_save(*, bundle: Bundle, as_of: date, n_samples: int, metrics: dict) -> TrainedModel:
    blob = _dump(bundle)
    for _attempt in range(3):
        try:
            with transaction.atomic():
                version = (TrainedModel.objects.aggregate(v=Max("version"))["v"] or 0) + 1
                return TrainedModel.objects.create(
                    version=version,
                    trained_at=timezone.now(),
                    as_of=as_of,
                    n_samples=n_samples,
                    algorithm=ALGORITHM,
                    features=NUMERIC + CATEGORICAL,
                    metrics=metrics,
                    blob=blob,
                )
        except IntegrityError:  # another trainer took the version number: take the next
            continue
    raise ApplicationError("Could not store the trained model (version conflict).")


def stored_model(as_of: date) -> TrainedModel | None:
    """The newest model trained as of ``as_of`` or up to MAX_MODEL_AGE_DAYS before it
    (never one trained on later data)."""
    return (
        TrainedModel.objects.filter(
            as_of__lte=as_of, as_of__gte=as_of - timedelta(days=MAX_MODEL_AGE_DAYS)
        )
        .order_by("-as_of", "-version")
        .first()
    )


def model_for(data: EngineData, as_of: date) -> Bundle:
    """The model to score deals as of ``as_of``; trains and stores one on demand."""
    row = stored_model(as_of)
    if row is not None:
        return _load(row)
    failed = data.memo.get(("model_failed", as_of))
    if failed is not None:
        raise ApplicationError(failed)
    try:
        bundle, metrics, n = train(data, as_of)
    except ApplicationError as exc:
        data.memo[("model_failed", as_of)] = exc.message
        raise
    row = model_save(bundle=bundle, as_of=as_of, n_samples=n, metrics=metrics)
    bundle.version, bundle.as_of = row.version, row.as_of
    with _loaded_lock:
        _loaded.clear()
        _loaded[row.pk] = bundle
    return bundle


# --- Scoring and explanation -------------------------------------------------------------


def _value_label(group: str, value: object, products: dict[str, str], amount: float) -> str:
    label = LABELS[group]
    if group in CATEGORICAL:
        text = str(value)
        if group == "product":
            text = products.get(text, text)
        return f"{label}: {text.replace('_', ' ')}"
    number = float(value)  # type: ignore[arg-type]
    if group == "log_amount":
        return f"{label} ({amount:,.0f})"
    if group in ("log_age", "log_days_in_stage"):
        return f"{label} ({math.expm1(number):.0f} days)"
    if group == "owner_win_rate":
        return f"{label} ({number:.0%})"
    return f"{label} ({number:.0f})"


def data_product_names(data: EngineData) -> dict[str, str]:
    key = ("product_names",)
    if key not in data.memo:
        from apps.crm.models import Product

        data.memo[key] = {str(pk): name for pk, name in Product.objects.values_list("pk", "name")}
    return data.memo[key]


def score(
    data: EngineData,
    bundle: Bundle,
    state: pd.DataFrame,
    *,
    as_of: date,
    period_end: date,
    top: int = 4,
    explain: bool = True,
) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
    """Calibrated probabilities and (with ``explain``) each deal's top signed factors:
    log-odds contributions of the linear model relative to the average training deal,
    summed over a categorical feature's one-hot columns."""
    if state.empty:
        return np.array([]), []
    x = features(
        data,
        state,
        day=day_number(as_of),
        period_end=day_number(period_end),
        cut=cutoff_micros(as_of),
    )
    probabilities = bundle.calibrated.predict_proba(x)[:, 1]
    if not explain:
        return probabilities, []
    transformed = np.asarray(bundle.explainer.named_steps["columns"].transform(x))
    coef = bundle.explainer.named_steps["model"].coef_.ravel()
    contributions = (transformed - bundle.mean_transformed) * coef
    groups = np.asarray(bundle.feature_groups)
    names = list(dict.fromkeys(bundle.feature_groups))
    by_group = np.column_stack([contributions[:, groups == g].sum(axis=1) for g in names])
    amounts = np.expm1(x["log_amount"].to_numpy())
    columns = {name: x[name].to_numpy() for name in names}
    products = data_product_names(data)
    order = np.argsort(-np.abs(by_group), axis=1)[:, :top]
    factors: list[list[tuple[str, float]]] = []
    for i in range(len(x)):
        factors.append(
            [
                (
                    _value_label(names[j], columns[names[j]][i], products, amounts[i]),
                    round(float(by_group[i, j]), 4),
                )
                for j in order[i].tolist()
            ]
        )
    return probabilities, factors
