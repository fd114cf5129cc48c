"""The model-training service behind the weekly task and :func:`api.model_train`."""

from __future__ import annotations

import hashlib
from datetime import date

from django.utils import timezone

from apps.core.services import job_run_record
from apps.forecasting.engine import data, ml
from apps.forecasting.engine.models import TrainedModel

JOB_KIND = "forecast_model_train"


def _digest(fingerprint: tuple) -> str:
    return hashlib.sha256(repr(fingerprint).encode()).hexdigest()[:16]


def model_train(*, as_of: date | None = None) -> ml.TrainResult:
    """Train the close-probability model on what was known at the end of ``as_of``
    (default today) and store it as the next version; records a JobRun.

    Idempotent: if a model was already trained as of that day on the same data (same
    fingerprint of deals, history, stages and rates), it is returned unchanged.
    """
    as_of = as_of or timezone.localdate()
    with job_run_record(kind=JOB_KIND) as run:
        loaded = data.load()
        digest = _digest(loaded.fingerprint)
        existing = (
            TrainedModel.objects.filter(as_of=as_of, metrics__data_fingerprint=digest)
            .order_by("-version")
            .first()
        )
        if existing is not None:
            run.detail = {"version": existing.version, "reused": True}
            return ml.TrainResult(
                existing.version, existing.as_of, existing.n_samples, existing.metrics, False
            )
        bundle, metrics, n = ml.train(loaded, as_of)
        metrics["data_fingerprint"] = digest
        row = ml.model_save(bundle=bundle, as_of=as_of, n_samples=n, metrics=metrics)
        run.rows = n
        run.detail = {
            "version": row.version,
            "as_of": as_of.isoformat(),
            "brier": metrics.get("brier"),
            "brier_stage_baseline": metrics.get("brier_stage_baseline"),
        }
        return ml.TrainResult(row.version, row.as_of, n, metrics, True)
