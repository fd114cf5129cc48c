"""The forecast section, from apps.forecasting's ``ForecastSummary``: every method's
expected bookings and its P10-P90 range, and the latest forecast call (commit / best case).
The numbers are the forecasting app's stored forecasts; nothing is recomputed here."""

from __future__ import annotations

from collections.abc import Callable
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
