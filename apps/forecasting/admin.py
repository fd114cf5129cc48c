"""Admin for forecasting records. Calls, stored forecasts, snapshots and backtest scores
are written by the services and the background jobs (a call is never edited: the history
is the audit), so the admin lists them read-only; scenarios are a user's own inputs."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.forecasting.models import (
    BacktestScore,
    DealScoreValue,
    ForecastCall,
    ForecastRun,
    ForecastSnapshot,
    ForecastValue,
    Scenario,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ForecastCall)
class ForecastCallAdmin(ReadOnlyAdmin):
    list_display = (
        "team",
        "period_name",
        "week",
        "commit",
        "best_case",
        "rollup_commit",
        "rollup_best_case",
        "submitted_by",
        "submitted_at",
    )
    list_filter = ("period_name", "team")
    list_select_related = ("team", "submitted_by")
    search_fields = ("team__name", "period_name", "comment")
    date_hierarchy = "submitted_at"


@admin.register(ForecastRun)
class ForecastRunAdmin(ReadOnlyAdmin):
    list_display = ("kind", "as_of", "started_at", "finished_at", "values")
    list_filter = ("kind",)
    search_fields = ("kind", "as_of")


@admin.register(ForecastValue)
class ForecastValueAdmin(ReadOnlyAdmin):
    list_display = ("scope_key", "period_name", "method", "expected", "p10", "p90", "computed_at")
    list_filter = ("period_name", "method")
    search_fields = ("scope_key",)


@admin.register(ForecastSnapshot)
class ForecastSnapshotAdmin(ReadOnlyAdmin):
    list_display = (
        "scope_key",
        "period_name",
        "week",
        "source",
        "value",
        "actual",
        "error",
        "abs_pct_error",
    )
    list_filter = ("period_name", "source")
    search_fields = ("scope_key",)


@admin.register(BacktestScore)
class BacktestScoreAdmin(ReadOnlyAdmin):
    list_display = ("scope_key", "period_name", "week", "method", "forecast", "actual", "error")
    list_filter = ("period_name", "method")
    search_fields = ("scope_key", "period_name")


@admin.register(DealScoreValue)
class DealScoreValueAdmin(ReadOnlyAdmin):
    list_display = (
        "opportunity",
        "period_name",
        "probability",
        "stage_probability",
        "as_of",
        "computed_at",
    )
    list_filter = ("period_name",)
    list_select_related = ("opportunity",)
    raw_id_fields = ("opportunity", "run")
    search_fields = ("opportunity__name",)


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "owner",
        "growth_pct",
        "win_rate_delta_pts",
        "headcount_delta",
        "months",
    )
    list_select_related = ("owner",)
    search_fields = ("name",)
