"""Cross-cutting records: exchange rates and background job runs."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models

currency_validator = RegexValidator(r"^[A-Z]{3}$", "Use a three-letter ISO 4217 code, e.g. USD.")


class CurrencyField(models.CharField):
    """An ISO 4217 currency code (three upper-case letters)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("validators", [currency_validator])
        super().__init__(*args, **kwargs)


class MoneyField(models.DecimalField):
    """A money amount: Decimal with 2 places, up to 10^16. Never a float."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", 18)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(*args, **kwargs)


class ExchangeRate(models.Model):
    """How many units of the base currency one unit of ``currency`` is worth on ``rate_date``.

    A KPI converts an amount at the rate effective on the record's date: the rate of that
    day, or else the latest earlier one. ``base_currency`` records which base the rate was
    quoted against so that a change of BASE_CURRENCY cannot silently reuse old rates.
    """

    currency = CurrencyField()
    base_currency = CurrencyField()
    rate_date = models.DateField()
    rate = models.DecimalField(max_digits=20, decimal_places=10)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["currency", "-rate_date"]
        constraints = [
            models.UniqueConstraint(
                fields=["currency", "base_currency", "rate_date"], name="uniq_rate_per_day"
            ),
            models.CheckConstraint(condition=models.Q(rate__gt=0), name="rate_positive"),
            models.CheckConstraint(
                condition=~models.Q(currency=models.F("base_currency")), name="rate_not_to_self"
            ),
        ]

    def __str__(self) -> str:
        return f"1 {self.currency} = {self.rate} {self.base_currency} on {self.rate_date}"


class JobRun(models.Model):
    """One run of a background job (rollup rebuild, forecast, digest, import, ...).

    The latest successful run is the data freshness shown by /healthz and on every page.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    kind = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    rows = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["kind", "-started_at"], name="jobrun_kind_started"),
            models.Index(fields=["status", "-finished_at"], name="jobrun_status_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.status} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
