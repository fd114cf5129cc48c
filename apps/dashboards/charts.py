"""Plotly figure builders: pure functions from selector results to a ``Figure``.

No database, no request, no settings: everything a chart shows is passed in, so pages and
digests can share them and tests can check them without a database. Every point that can
be drilled into carries its drill-down URL in ``customdata``; the page script follows it
on click. Values are plotted as floats (display only); all arithmetic happened upstream
in Decimal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go

# One palette for every page: brand blue for "actual", slate for targets, and the KPI's
# direction deciding green (good) or red (bad).
COLORS = {
    "actual": "#2b7de9",
    "target": "#5b6b82",
    "good": "#1a8a5a",
    "bad": "#c2412d",
    "neutral": "#8a97ab",
    "grid": "#e6ebf2",
    "ink": "#1c2736",
}
CATEGORY_COLORS = {
    "commit": "#1a9b63",
    "best_case": "#2b7de9",
    "pipeline": "#8fb8f0",
    "omitted": "#c3cad6",
    "closed": "#5b6b82",
}

Number = Decimal | int | float | None


def as_float(value: Number) -> float | None:
    """A Decimal/int/float for Plotly, keeping None (no data) as None."""
    return None if value is None else float(value)


def chart_layout(fig: go.Figure, title: str, *, height: int = 340, money: str = "") -> go.Figure:
    """The house style every chart shares (dashboards, forecast page, digests)."""
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 15, "color": COLORS["ink"]}},
        height=height,
        margin={"l": 56, "r": 20, "t": 52, "b": 44},
        paper_bgcolor="#ffffff",
        plot_bgcolor="#ffffff",
        font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        legend={"orientation": "h", "y": -0.18, "x": 0},
        hoverlabel={"font": {"size": 12}},
        separators=".,",
    )
    fig.update_xaxes(showgrid=False, linecolor=COLORS["grid"])
    fig.update_yaxes(gridcolor=COLORS["grid"], zerolinecolor=COLORS["grid"], tickprefix=money)
    return fig


def figure_json(fig: go.Figure) -> dict[str, Any]:
    """A plain-JSON form of the figure for ``json_script`` (numpy values made lists)."""
    return json.loads(fig.to_json())


def sparkline(values: Sequence[Number], *, tone: str = "neutral") -> go.Figure:
    """A tiny line without axes; None values leave a gap."""
    fig = go.Figure(
        go.Scatter(
            y=[as_float(v) for v in values],
            mode="lines",
            line={"color": COLORS.get(tone, COLORS["neutral"]), "width": 2},
            hoverinfo="skip",
            connectgaps=False,
        )
    )
    fig.update_layout(
        height=44,
        margin={"l": 0, "r": 0, "t": 2, "b": 2},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        showlegend=False,
        xaxis={"visible": False, "fixedrange": True},
        yaxis={"visible": False, "fixedrange": True},
    )
    return fig


@dataclass(frozen=True)
class MonthPoint:
    label: str
    bookings: Number
    quota: Number
    url: str


def bookings_against_quota(points: Sequence[MonthPoint], *, title: str, money: str) -> go.Figure:
    """Monthly bookings (bars) with cumulative bookings and cumulative quota (lines).
    A month without a quota adds nothing to the target line."""
    labels = [p.label for p in points]
    urls = [p.url for p in points]
    cumulative, running = [], 0.0
    for p in points:
        running += as_float(p.bookings) or 0.0
        cumulative.append(running)
    targets, target = [], 0.0
    has_quota = any(p.quota is not None for p in points)
    for p in points:
        target += as_float(p.quota) or 0.0
        targets.append(target if has_quota else None)
    fig = go.Figure()
    fig.add_bar(
        x=labels,
        y=[as_float(p.bookings) for p in points],
        name="Bookings in month",
        marker_color=COLORS["actual"],
        opacity=0.55,
        customdata=urls,
        hovertemplate="%{x}: %{y:,.0f}<extra>Bookings</extra>",
    )
    fig.add_scatter(
        x=labels,
        y=cumulative,
        name="Cumulative bookings",
        mode="lines+markers",
        line={"color": COLORS["actual"], "width": 3},
        customdata=urls,
        hovertemplate="%{x}: %{y:,.0f}<extra>Cumulative bookings</extra>",
    )
    if has_quota:
        fig.add_scatter(
            x=labels,
            y=targets,
            name="Cumulative quota",
            mode="lines",
            line={"color": COLORS["target"], "width": 2, "dash": "dash"},
            hovertemplate="%{x}: %{y:,.0f}<extra>Cumulative quota</extra>",
        )
    return chart_layout(fig, title, money=money)


@dataclass(frozen=True)
class AttainmentBar:
    label: str
    attainment: Number  # fraction; None without a quota
    url: str


def attainment_bars(bars: Sequence[AttainmentBar], *, title: str) -> go.Figure:
    """Horizontal bars of attainment (percent) against the 100 % line; at or above
    target green, below red; a bar without a quota is left out of the axis values."""
    shown = [b for b in bars if b.attainment is not None]
    values = [float(b.attainment) * 100 for b in shown]  # type: ignore[arg-type]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=[b.label for b in shown],
            orientation="h",
            marker_color=[COLORS["good"] if v >= 100 else COLORS["bad"] for v in values],
            customdata=[b.url for b in shown],
            text=[f"{v:.0f}%" for v in values],
            textposition="auto",
            hovertemplate="%{y}: %{x:.1f}%<extra></extra>",
        )
    )
    fig.add_vline(x=100, line_dash="dash", line_color=COLORS["target"])
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(ticksuffix="%")
    fig = chart_layout(fig, title, height=max(220, 70 + 34 * len(shown)))
    fig.update_layout(showlegend=False)
    return fig


@dataclass(frozen=True)
class FunnelStage:
    label: str
    deals: int
    amount: Number
    conversion: Number  # fraction of deals entering this stage that reached the next one
    url: str


def pipeline_funnel(stages: Sequence[FunnelStage], *, title: str, money: str) -> go.Figure:
    """Open pipeline by stage (value), labelled with the deal count; the stage-to-next
    conversion rate is in the hover text and on the axis label."""

    def label(s: FunnelStage) -> str:
        rate = "\u2014" if s.conversion is None else f"{float(s.conversion) * 100:.0f}%"
        return f"{s.label} \u2192 {rate}"

    fig = go.Figure(
        go.Funnel(
            y=[label(s) for s in stages],
            x=[as_float(s.amount) for s in stages],
            text=[f"{s.deals:,} deals" for s in stages],
            textinfo="text+value",
            texttemplate=f"{money}%{{value:,.3s}} \u00b7 %{{text}}",
            marker={"color": COLORS["actual"]},
            connector={"line": {"color": COLORS["grid"]}},
            customdata=[s.url for s in stages],
            hovertemplate="%{y}<br>%{text}<br>" + money + "%{x:,.0f}<extra></extra>",
        )
    )
    return chart_layout(fig, title, height=max(260, 80 + 48 * len(stages)))


@dataclass(frozen=True)
class StackSegment:
    month: str
    amount: Number
    url: str


def pipeline_by_close_month(
    series: dict[str, Sequence[StackSegment]],
    *,
    labels: dict[str, str],
    title: str,
    money: str,
) -> go.Figure:
    """Open pipeline by expected close month, stacked by forecast category (the order of
    ``series`` is the stacking order, most certain at the bottom)."""
    fig = go.Figure()
    for category, segments in series.items():
        fig.add_bar(
            x=[s.month for s in segments],
            y=[as_float(s.amount) for s in segments],
            name=labels.get(category, category),
            marker_color=CATEGORY_COLORS.get(category, COLORS["neutral"]),
            customdata=[s.url for s in segments],
            hovertemplate="%{x}: " + money + "%{y:,.0f}<extra>%{fullData.name}</extra>",
        )
    fig.update_layout(barmode="stack")
    return chart_layout(fig, title, money=money)


def pipeline_waterfall(
    *,
    start: Number,
    steps: Sequence[tuple[str, Number]],
    end: Number,
    start_label: str,
    end_label: str,
    title: str,
    money: str,
    step_urls: Sequence[str] | None = None,
) -> go.Figure:
    """Pipeline then, each movement (rises green, falls red), pipeline now; ``step_urls``
    are the drill-down links of the movements (the two totals have none)."""
    labels = [start_label, *[name for name, _ in steps], end_label]
    values = [as_float(start), *[as_float(v) for _, v in steps], as_float(end)]
    measures = ["absolute", *["relative"] * len(steps), "total"]
    fig = go.Figure(
        go.Waterfall(
            x=labels,
            y=values,
            measure=measures,
            increasing={"marker": {"color": COLORS["good"]}},
            decreasing={"marker": {"color": COLORS["bad"]}},
            totals={"marker": {"color": COLORS["actual"]}},
            connector={"line": {"color": COLORS["grid"]}},
            customdata=[None, *step_urls, None] if step_urls else None,
            texttemplate=money + "%{y:,.3s}",
            hovertemplate="%{x}: " + money + "%{y:,.0f}<extra></extra>",
        )
    )
    fig = chart_layout(fig, title, money=money)
    fig.update_layout(showlegend=False)
    return fig


def quota_vs_bookings(points: Sequence[MonthPoint], *, title: str, money: str) -> go.Figure:
    """Bookings (bars) against quota (line) per period, oldest first; each bar links to
    the period's won deals."""
    fig = go.Figure()
    fig.add_bar(
        x=[p.label for p in points],
        y=[as_float(p.bookings) for p in points],
        name="Bookings",
        marker_color=COLORS["actual"],
        customdata=[p.url for p in points],
        hovertemplate="%{x}: " + money + "%{y:,.0f}<extra>Bookings</extra>",
    )
    fig.add_scatter(
        x=[p.label for p in points],
        y=[as_float(p.quota) for p in points],
        name="Quota",
        mode="lines+markers",
        line={"color": COLORS["target"], "width": 2, "dash": "dash"},
        hovertemplate="%{x}: " + money + "%{y:,.0f}<extra>Quota</extra>",
    )
    return chart_layout(fig, title, money=money)


def band_histogram(
    bands: Sequence[tuple[str, int]], *, title: str, urls: Sequence[str] | None = None
) -> go.Figure:
    """Reps per attainment band; bands at or above target green, below red; ``urls``
    (one per band) make each bar open the list of its reps."""
    colors = []
    for label, _ in bands:
        if label == "No quota":
            colors.append(COLORS["neutral"])
        elif label.startswith(("100", "\u2265")):
            colors.append(COLORS["good"])
        else:
            colors.append(COLORS["bad"])
    fig = go.Figure(
        go.Bar(
            x=[label for label, _ in bands],
            y=[n for _, n in bands],
            marker_color=colors,
            text=[str(n) for _, n in bands],
            textposition="outside",
            customdata=list(urls) if urls else None,
            hovertemplate="%{x}: %{y} reps<extra></extra>",
        )
    )
    fig.update_yaxes(title_text="Reps", rangemode="tozero")
    fig = chart_layout(fig, title)
    fig.update_layout(showlegend=False)
    return fig


@dataclass(frozen=True)
class LabelledBar:
    label: str
    value: Number
    note: str
    url: str


def team_comparison(bars: Sequence[LabelledBar], *, title: str, money: str) -> go.Figure:
    """Bookings per team (bars, each linking to its won deals) with a note per bar (e.g.
    attainment and win rate) in the hover text and on the bar."""
    fig = go.Figure(
        go.Bar(
            x=[b.label for b in bars],
            y=[as_float(b.value) for b in bars],
            text=[b.note for b in bars],
            textposition="auto",
            marker_color=COLORS["actual"],
            customdata=[b.url for b in bars],
            hovertemplate="%{x}: " + money + "%{y:,.0f}<br>%{text}<extra></extra>",
        )
    )
    fig = chart_layout(fig, title, money=money)
    fig.update_layout(showlegend=False)
    return fig


def mrr_movements(
    labels: Sequence[str],
    movements: dict[str, Sequence[Number]],
    closing: Sequence[Number],
    *,
    title: str,
    money: str,
    urls: dict[str, Sequence[str]] | None = None,
) -> go.Figure:
    """Monthly MRR movements as relative bars (rises above zero, falls below) with the
    closing MRR as a line on a second axis; ``urls`` maps a movement name to the
    drill-down link of each of its bars."""
    colors = {
        "New": COLORS["good"],
        "Expansion": "#5cc29a",
        "Contraction": "#e59a8c",
        "Churn": COLORS["bad"],
    }
    fig = go.Figure()
    for name, values in movements.items():
        fig.add_bar(
            x=list(labels),
            y=[as_float(v) for v in values],
            name=name,
            marker_color=colors.get(name, COLORS["neutral"]),
            customdata=list((urls or {}).get(name, [])) or None,
            hovertemplate="%{x}: " + money + "%{y:,.0f}<extra>" + name + "</extra>",
        )
    fig.add_scatter(
        x=list(labels),
        y=[as_float(v) for v in closing],
        name="Closing MRR",
        mode="lines+markers",
        yaxis="y2",
        line={"color": COLORS["actual"], "width": 3},
        hovertemplate="%{x}: " + money + "%{y:,.0f}<extra>Closing MRR</extra>",
    )
    fig.update_layout(
        barmode="relative",
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "tickprefix": money,
            "tickformat": ".3s",
            "rangemode": "tozero",
        },
    )
    fig = chart_layout(fig, title, money=money)
    fig.update_layout(margin={"l": 56, "r": 64, "t": 52, "b": 44})
    return fig


def percent_lines(
    labels: Sequence[str],
    series: dict[str, Sequence[Number]],
    *,
    title: str,
    scale: int = 100,
    suffix: str = "%",
) -> go.Figure:
    """Several fraction series as percentage lines (``scale=1, suffix=""`` for scores
    such as NPS); None values leave gaps."""
    palette = [COLORS["actual"], COLORS["good"], COLORS["bad"], COLORS["target"]]
    fig = go.Figure()
    for index, (name, values) in enumerate(series.items()):
        fig.add_scatter(
            x=list(labels),
            y=[None if v is None else float(v) * scale for v in values],
            name=name,
            mode="lines+markers",
            line={"color": palette[index % len(palette)], "width": 2},
            hovertemplate="%{x}: %{y:.1f}" + suffix + "<extra>" + name + "</extra>",
        )
    fig.update_yaxes(ticksuffix=suffix)
    return chart_layout(fig, title)


def cohort_heatmap(
    cohorts: Sequence[str],
    sizes: Sequence[int],
    rows: Sequence[Sequence[Number]],
    *,
    title: str,
    urls: Sequence[Sequence[str | None]] | None = None,
) -> go.Figure:
    """Retention heatmap: one row per cohort, one column per month since start; ``urls``
    (same shape as ``rows``) link each reached cell to the accounts behind it."""
    z = [[None if v is None else round(float(v) * 100, 1) for v in row] for row in rows]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"M{k}" for k in range(len(z[0]) if z else 0)],
            y=[f"{c} ({n})" for c, n in zip(cohorts, sizes, strict=True)],
            colorscale=[[0, "#fdecea"], [0.5, "#f4d58d"], [1, COLORS["good"]]],
            zmin=0,
            zmax=100,
            text=[["" if v is None else f"{v:.0f}%" for v in row] for row in z],
            texttemplate="%{text}",
            customdata=[list(row) for row in urls] if urls else None,
            hovertemplate="%{y}, %{x}: %{z:.1f}% still paying<extra></extra>",
            colorbar={"ticksuffix": "%"},
        )
    )
    fig.update_yaxes(autorange="reversed")
    return chart_layout(fig, title, height=max(300, 90 + 26 * len(z)))


def simple_bars(
    labels: Sequence[str],
    values: Sequence[Number],
    *,
    title: str,
    money: str = "",
    colors: Sequence[str] | None = None,
    text: Sequence[str] | None = None,
) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=list(labels),
            y=[as_float(v) for v in values],
            marker_color=list(colors) if colors else COLORS["actual"],
            text=list(text) if text else None,
            textposition="outside",
            hovertemplate="%{x}: " + money + "%{y:,.0f}<extra></extra>",
        )
    )
    fig = chart_layout(fig, title, money=money)
    fig.update_layout(showlegend=False)
    return fig


def nps_split(
    labels: Sequence[str],
    promoters: Sequence[int],
    passives: Sequence[int],
    detractors: Sequence[int],
    *,
    title: str,
) -> go.Figure:
    """Promoters, passives and detractors per group as 100 % stacked bars."""
    fig = go.Figure()
    for name, values, color in (
        ("Detractors (0-6)", detractors, COLORS["bad"]),
        ("Passives (7-8)", passives, COLORS["neutral"]),
        ("Promoters (9-10)", promoters, COLORS["good"]),
    ):
        fig.add_bar(
            x=list(labels),
            y=list(values),
            name=name,
            marker_color=color,
            hovertemplate="%{x}: %{y} responses<extra>" + name + "</extra>",
        )
    fig.update_layout(barmode="stack", barnorm="percent")
    fig.update_yaxes(ticksuffix="%")
    return chart_layout(fig, title)
