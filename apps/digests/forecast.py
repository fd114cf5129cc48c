"""The forecast section, from apps.forecasting's ``ForecastSummary``: every method's
expected bookings and its P10-P90 range, and the latest forecast call (commit / best case).
The numbers are the forecasting app's stored forecasts; nothing is recomputed here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from apps.dashboards import formatting
from apps.kpis.selectors import KpiPeriod, KpiScope


def _money(value: Any) -> str:
    return formatting.money(value, settings.BASE_CURRENCY)


def forecast_block(
    summary: Any,
    *,
    scope: KpiScope,
    period: KpiPeriod,
    url_for: Callable[[str, dict[str, object]], str],
) -> Any:
    from apps.digests.content import Block, Metric
    from apps.digests.models import Section

    try:
        path = reverse("forecasting:index")
    except NoReverseMatch:  # pragma: no cover - the forecast app is wired in urls.py
        path = "/forecast/"
    rows = []
    for method in summary.methods:
        low, high = method.p10, method.p90
        spread = (
            f"{_money(low)} \u2013 {_money(high)}"
            if low is not None and high is not None
            else formatting.EM_DASH
        )
        rows.append([method.label, _money(method.expected), spread, _money(method.won_to_date)])
    metrics = []
    if summary.call_commit is not None:
        metrics.append(Metric("call_commit", "Latest call: commit", _money(summary.call_commit)))
        metrics.append(
            Metric("call_best_case", "Latest call: best case", _money(summary.call_best_case))
        )
    computed = summary.computed_at
    return Block(
        key=Section.FORECAST,
        title=f"Forecast · {period.name}",
        url=url_for(path, {"period": period.name, "team": scope.team_id}),
        link_text="Open the forecast",
        metrics=metrics,
        columns=["Method", "Expected", "Range P10\u2013P90", "Won so far"],
        rows=rows,
        note=(f"Computed {computed:%d %b %Y %H:%M}." if computed else "")
        + ("" if metrics else " No forecast call submitted yet."),
    )


# --- "The forecast" of a period, for the forecast-attainment alert ---------------------------

#: Which stored method is "the forecast", in order of preference: the Monte Carlo P50 when
#: stored, else the weighted pipeline's expected value.
FORECAST_PREFERENCE = (("monte_carlo", "p50"), ("weighted", "expected"))

FORECAST_BASIS_TEXT = {
    ("monte_carlo", "p50"): "Monte Carlo P50",
    ("weighted", "expected"): "weighted pipeline, expected value",
}


@dataclass(frozen=True)
class ForecastBasis:
    """The one figure used as "the forecast for the period", and where it came from."""

    method: str
    field: str
    value: Decimal
    p10: Decimal | None
    p90: Decimal | None

    @property
    def text(self) -> str:
        return FORECAST_BASIS_TEXT[(self.method, self.field)]


def forecast_basis(methods: Iterable[Any]) -> ForecastBasis | None:
    """The forecast for the period from stored ``MethodForecast`` rows: the Monte Carlo
    P50 when one is stored, else the weighted pipeline's expected value (won to date
    included in both); None when neither is stored. P10 and P90 come with Monte Carlo."""
    by_method = {m.method: m for m in methods}
    for method, attr in FORECAST_PREFERENCE:
        found = by_method.get(method)
        value = getattr(found, attr, None) if found is not None else None
        if value is not None:
            return ForecastBasis(
                method=method,
                field=attr,
                value=Decimal(value),
                p10=found.p10 if method == "monte_carlo" else None,
                p90=found.p90 if method == "monte_carlo" else None,
            )
    return None
