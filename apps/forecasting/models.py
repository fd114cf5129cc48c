"""Forecasting records: managers' calls, stored forecasts, weekly snapshots, scenarios.

Money is in the base currency (settings.BASE_CURRENCY), Decimal with 2 places. A period is
kept by its fiscal name (``2025-Q3``) and inclusive bounds, so a row never depends on the
fiscal-period table being generated. A *scope key* names what a number is about:
``company``, ``team:<id>`` (the team and every team below it) or ``rep:<id>``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import MoneyField


class ForecastCall(models.Model):
    """One submission of a manager's call for a team and period: a commit and a best-case
    figure with a comment. Nothing is ever updated or deleted: a new submission is a new
    row, the latest by ``submitted_at`` is the team's current call, and the rows are the
    history of calls through the quarter.

    ``rollup_commit`` / ``rollup_best_case`` keep the roll-up of the level below as it was
    shown in the form when the call was made, so the manager's adjustment
    (call - roll-up) stays auditable later.
    """

    team = models.ForeignKey("org.Team", on_delete=models.PROTECT, related_name="forecast_calls")
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="forecast_calls"
    )
    period_name = models.CharField(max_length=32)
    period_start = models.DateField()
    period_end = models.DateField()
    week = models.PositiveSmallIntegerField(
        help_text="Week of the period the call was made in: 1 = its first seven days."
    )
    commit = MoneyField()
    best_case = MoneyField()
    rollup_commit = MoneyField()
    rollup_best_case = MoneyField()
    comment = models.TextField(blank=True)
    submitted_at = models.DateTimeField()

    class Meta:
        ordering = ["-submitted_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(commit__gte=0, best_case__gte=0), name="call_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(best_case__gte=models.F("commit")),
                name="call_best_case_at_least_commit",
            ),
        ]
        indexes = [
            models.Index(fields=["period_name", "team", "-submitted_at"], name="call_period_team"),
        ]

    def __str__(self) -> str:
        return f"{self.team} {self.period_name} commit {self.commit} ({self.submitted_at:%Y-%m-%d})"

    @property
    def commit_adjustment(self):
        return self.commit - self.rollup_commit

    @property
    def best_case_adjustment(self):
        return self.best_case - self.rollup_best_case


class ForecastRun(models.Model):
    """One computation of stored forecasts: the nightly run over every scope, or the
    recompute of the scopes a deal change touches."""

    class Kind(models.TextChoices):
        FULL = "full", "Every scope"
        SCOPES = "scopes", "Scopes after a change"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    as_of = models.DateField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    values = models.IntegerField(default=0)
    periods = models.JSONField(default=list)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.kind} forecast run as of {self.as_of}"


class ForecastValue(models.Model):
    """The current forecast of one method for one scope and period (replaced, not
    appended, by each recompute; the weekly :class:`ForecastSnapshot` keeps history)."""

    run = models.ForeignKey(ForecastRun, on_delete=models.SET_NULL, null=True, related_name="+")
    scope_key = models.CharField(max_length=32)
    team = models.ForeignKey(
        "org.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    rep = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    period_name = models.CharField(max_length=32)
    period_start = models.DateField()
    period_end = models.DateField()
    method = models.CharField(max_length=32)
    label = models.CharField(max_length=80)
    expected = MoneyField()
    won_to_date = MoneyField()
    p10 = MoneyField(null=True, blank=True)
    p50 = MoneyField(null=True, blank=True)
    p90 = MoneyField(null=True, blank=True)
    open_deals = models.IntegerField(default=0)
    detail = models.JSONField(default=dict, blank=True)
    as_of = models.DateField()
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["scope_key", "period_start", "method"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope_key", "period_name", "method"], name="uniq_forecast_value"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope_key} {self.period_name} {self.method}: {self.expected}"


class ForecastSnapshot(models.Model):
    """A forecast as it stood in one week of its period: a method's expected value, or a
    manager's latest commit / best-case call. Taken weekly (one row per scope, period,
    week and source; taking it again in the same week replaces it) and scored once the
    period has closed: ``actual`` is the period's bookings from the KPI engine."""

    scope_key = models.CharField(max_length=32)
    team = models.ForeignKey(
        "org.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    rep = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    period_name = models.CharField(max_length=32)
    period_start = models.DateField()
    period_end = models.DateField()
    week = models.PositiveSmallIntegerField()
    taken_on = models.DateField()
    source = models.CharField(
        max_length=32,
        help_text="A method name, or call_commit / call_best_case for a manager's call.",
    )
    label = models.CharField(max_length=80)
    value = MoneyField()
    p10 = MoneyField(null=True, blank=True)
    p90 = MoneyField(null=True, blank=True)
    actual = MoneyField(null=True, blank=True)
    error = MoneyField(null=True, blank=True)
    abs_pct_error = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["period_start", "scope_key", "week", "source"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope_key", "period_name", "week", "source"], name="uniq_forecast_snapshot"
            ),
        ]
        indexes = [models.Index(fields=["scope_key", "period_start"], name="snap_scope_period")]

    def __str__(self) -> str:
        return f"{self.scope_key} {self.period_name} w{self.week} {self.source}: {self.value}"


class Scenario(models.Model):
    """Named what-if inputs for the multi-year outlook, saved per user."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="forecast_scenarios"
    )
    name = models.CharField(max_length=80)
    growth_pct = models.DecimalField(
        max_digits=6, decimal_places=2, default=0, help_text="Extra yearly growth, percent."
    )
    win_rate_delta_pts = models.DecimalField(
        max_digits=5, decimal_places=2, default=0, help_text="Win-rate change, percentage points."
    )
    headcount_delta = models.IntegerField(default=0, help_text="Reps added (+) or removed (-).")
    months = models.PositiveSmallIntegerField(default=36)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="uniq_scenario_name_per_user"),
            models.CheckConstraint(
                condition=models.Q(months__gte=36, months__lte=60), name="scenario_months_36_60"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class BacktestScore(models.Model):
    """One method's replayed forecast for a closed period, as of the end of one of its
    weeks (using only what was known then, rebuilt from history by the engine's backtest),
    against the period's actual bookings. Refreshed by the weekly job; replaced per scope."""

    scope_key = models.CharField(max_length=32)
    period_name = models.CharField(max_length=32)
    period_start = models.DateField()
    week = models.PositiveSmallIntegerField()
    as_of = models.DateField()
    method = models.CharField(max_length=32)
    label = models.CharField(max_length=80)
    forecast = MoneyField()
    actual = MoneyField()
    error = MoneyField()
    abs_pct_error = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["scope_key", "period_start", "week", "method"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope_key", "period_name", "week", "method"], name="uniq_backtest_score"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope_key} {self.period_name} w{self.week} {self.method}: {self.error}"


class DealScoreValue(models.Model):
    """The stored ML close probability of one open deal for one stored period, with its top
    factors, as computed by the forecast recompute (nightly for every deal; after a deal
    change for its owners' deals). The Forecast page reads these rows and never calls the
    engine for scores in a request. Replaced per period (full run) or per owner (after a
    change); ``probability`` and ``stage_probability`` are ratios (0..1) of winning within
    the period."""

    run = models.ForeignKey(ForecastRun, on_delete=models.SET_NULL, null=True, related_name="+")
    opportunity = models.ForeignKey(
        "crm.Opportunity", on_delete=models.CASCADE, related_name="forecast_scores"
    )
    period_name = models.CharField(max_length=32)
    period_start = models.DateField()
    period_end = models.DateField()
    as_of = models.DateField()
    probability = models.FloatField()
    stage_probability = models.FloatField()
    top_factors = models.JSONField(
        default=list, blank=True, help_text="[[label, signed log-odds contribution], ...]"
    )
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["period_start", "-probability", "opportunity_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["opportunity", "period_name"], name="uniq_deal_score_period"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    probability__gte=0,
                    probability__lte=1,
                    stage_probability__gte=0,
                    stage_probability__lte=1,
                ),
                name="deal_score_probability_0_1",
            ),
        ]
        indexes = [models.Index(fields=["period_name"], name="deal_score_period")]

    def __str__(self) -> str:
        return f"deal {self.opportunity_id} {self.period_name}: {self.probability:.3f}"
