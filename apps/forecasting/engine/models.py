"""Persisted state of the forecast engine: the trained close-probability models.

A model is trained as of a date (only deals and history known by the end of that day),
serialised with joblib and kept with its evaluation metrics, so the weekly retraining is
auditable and scoring always says which version it used.
"""

from __future__ import annotations

from django.db import models


class TrainedModel(models.Model):
    """One fitted close-probability model (see docs/forecasting-methods.md, "ML")."""

    version = models.PositiveIntegerField(unique=True)
    trained_at = models.DateTimeField()
    as_of = models.DateField(help_text="Trained on what was known at the end of this day.")
    n_samples = models.PositiveIntegerField()
    algorithm = models.CharField(max_length=120)
    features = models.JSONField(default=list, help_text="Feature names, in model order.")
    metrics = models.JSONField(
        default=dict,
        help_text="Brier score vs the stage-probability baseline, calibration table, etc.",
    )
    blob = models.BinaryField(help_text="The fitted model, serialised with joblib.")

    class Meta:
        ordering = ["-version"]
        indexes = [models.Index(fields=["as_of", "-version"], name="trainedmodel_asof")]

    def __str__(self) -> str:
        return f"model v{self.version} as of {self.as_of}"
