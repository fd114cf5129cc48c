"""Plotly figure builders for the Forecast page: pure functions from selector results to
a ``Figure`` (no database, no request, no settings). Values are plotted as floats for
display only; all arithmetic happened upstream in Decimal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import plotly.graph_objects as go

from apps.dashboards.charts import COLORS, Number, as_float, chart_layout

METHOD_COLORS = {
    "weighted": "#2b7de9",
    "historical": "#7a5cd6",
    "ml": "#0e9aa7",
    "monte_carlo": "#d9822b",
    "call_commit": "#1a8a5a",
    "call_best_case": "#8fcfa9",
}


@dataclass(frozen=True)
class MethodBar:
    method: str
    label: str
    expected: Number
    p10: Number = None
    p90: Number = None


def forecast_vs_quota(
    bars: Sequence[MethodBar],
    *,
    won_to_date: Number,
    quota: Number,
    call_commit: Number,
    call_best_case: Number,
    title: str,
    money: str,
) -> go.Figure:
    """One bar per forecast method (expected bookings for the whole period) with its
    P10-P90 range as an error bar where the method gives one; the bookings closed to date,
    the quota and the latest calls as horizontal reference lines."""
    fig = go.Figure()
    for bar in bars:
        low = (
            None
            if bar.p10 is None or bar.expected is None
            else as_float(bar.expected) - as_float(bar.p10)
        )
        high = (
            None
            if bar.p90 is None or bar.expected is None
            else as_float(bar.p90) - as_float(bar.expected)
        )
        error = (
            {"type": "data", "array": [high], "arrayminus": [low], "color": COLORS["ink"]}
            if low is not None and high is not None
            else None
        )
        fig.add_bar(
            x=[bar.label],
            y=[as_float(bar.expected)],
            name=bar.label,
            marker_color=METHOD_COLORS.get(bar.method, COLORS["actual"]),
            error_y=error,
            hovertemplate="%{x}: " + money + "%{y:,.0f}<extra></extra>",
        )
    lines = (
        ("Closed to date", won_to_date, COLORS["actual"], "solid"),
        ("Quota", quota, COLORS["target"], "dash"),
        ("Call: commit", call_commit, METHOD_COLORS["call_commit"], "dot"),
        ("Call: best case", call_best_case, METHOD_COLORS["call_best_case"], "dot"),
    )
    for name, value, color, dash in lines:
        if value is None:
            continue
        # A full-width reference line; an empty trace of the same style names it in the
        # legend (shapes have no legend entry).
        fig.add_hline(y=as_float(value), line={"color": color, "width": 2, "dash": dash})
        fig.add_scatter(
            x=[None],
            y=[None],
            name=name,
            mode="lines",
            line={"color": color, "width": 2, "dash": dash},
            hoverinfo="skip",
        )
    fig = chart_layout(fig, title, money=money, height=400)
    fig.update_layout(barmode="group", margin={"b": 96})
    return fig


@dataclass(frozen=True)
class CallMark:
    at: datetime
    commit: Number
    best_case: Number


def calls_history(
    calls: Sequence[CallMark],
    *,
    snapshots: dict[str, Sequence[tuple[date, Number]]],
    labels: dict[str, str],
    title: str,
    money: str,
) -> go.Figure:
    """The commit and best-case calls through the period (steps: a call stands until the
    next one), with each method's weekly snapshot for comparison."""
    fig = go.Figure()
    if calls:
        x = [c.at.isoformat() for c in calls]
        fig.add_scatter(
            x=x,
            y=[as_float(c.commit) for c in calls],
            name="Call: commit",
            mode="lines+markers",
            line={"color": METHOD_COLORS["call_commit"], "width": 3, "shape": "hv"},
        )
        fig.add_scatter(
            x=x,
            y=[as_float(c.best_case) for c in calls],
            name="Call: best case",
            mode="lines+markers",
            line={"color": METHOD_COLORS["call_best_case"], "width": 3, "shape": "hv"},
        )
    for source, points in snapshots.items():
        fig.add_scatter(
            x=[d.isoformat() for d, _ in points],
            y=[as_float(v) for _, v in points],
            name=labels.get(source, source),
            mode="lines+markers",
            line={
                "color": METHOD_COLORS.get(source, COLORS["neutral"]),
                "width": 1.5,
                "dash": "dot",
            },
        )
    fig = chart_layout(fig, title, money=money, height=400)
    fig.update_layout(margin={"b": 96})
    return fig


@dataclass(frozen=True)
class OutlookMonth:
    month: date
    value: Number
    low: Number
    high: Number
    baseline: Number


def outlook(
    history: Sequence[tuple[date, Number]],
    points: Sequence[OutlookMonth],
    *,
    title: str,
    money: str,
) -> go.Figure:
    """Monthly bookings: actuals, then the projection with the scenario applied, its 80 %
    interval as a band, and the baseline projection without the scenario (dashed)."""
    fig = go.Figure()
    fig.add_scatter(
        x=[m.isoformat() for m, _ in history],
        y=[as_float(v) for _, v in history],
        name="Actual bookings",
        mode="lines",
        line={"color": COLORS["actual"], "width": 2},
    )
    months = [p.month.isoformat() for p in points]
    fig.add_scatter(
        x=months + months[::-1],
        y=[as_float(p.high) for p in points] + [as_float(p.low) for p in points][::-1],
        fill="toself",
        fillcolor="rgba(217,130,43,0.15)",
        line={"width": 0},
        name="80% interval",
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=months,
        y=[as_float(p.baseline) for p in points],
        name="Baseline",
        mode="lines",
        line={"color": COLORS["target"], "width": 1.5, "dash": "dash"},
    )
    fig.add_scatter(
        x=months,
        y=[as_float(p.value) for p in points],
        name="Scenario",
        mode="lines",
        line={"color": METHOD_COLORS["monte_carlo"], "width": 2.5},
    )
    return chart_layout(fig, title, money=money, height=380)
