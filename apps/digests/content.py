"""What a digest says: every number of every section, read through the KPI selectors and
the dashboards' selectors as the recipient (or, for an external address, the
subscription's owner), so a digest never shows more than its reader may see and never a
number computed anywhere else.

The result is plain data (:class:`DigestContent`): labels, formatted values, links and
Plotly figures. :mod:`apps.digests.render` turns it into the HTML and text parts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import plotly.graph_objects as go
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.dashboards import charts, formatting
from apps.dashboards.selectors import (
    WATERFALL_STEPS,
    drilldown_deals,
    pipeline_changes,
    rep_attainment,
    slipped_moves,
)
from apps.digests.models import DigestSubscription, Section
from apps.kpis.selectors import (
    KpiFilters,
    KpiPeriod,
    KpiResult,
    KpiScope,
    kpi_value,
    period_parse,
    period_shift,
    scope_resolve,
)
from apps.org.models import Role, Team, User
from apps.org.policy import scope_for
from apps.quotas import fiscal

logger = logging.getLogger(__name__)

HEADLINE_KPIS = (
    "bookings",
    "quota",
    "attainment",
    "open_pipeline",
    "pipeline_coverage",
    "win_rate",
    "avg_deal_size",
    "new_logos",
)
CUSTOMER_KPIS = ("mrr", "nrr", "grr", "logo_churn", "clv", "nps")
TOP_DEALS = 5
CHART_WIDTH = 560


def site_url() -> str:
    return getattr(settings, "SITE_URL", "http://127.0.0.1:8000").rstrip("/")


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (line breaks included) made one space: for
    mail headers, where a line break in a name would otherwise end the header (Django
    refuses such a header, so the mail would never go out) or start a new one."""
    return " ".join(text.split())


def absolute(path: str, params: dict[str, object] | None = None) -> str:
    """An absolute link to ``path`` on SITE_URL with the non-empty ``params``."""
    query = {k: str(v) for k, v in (params or {}).items() if v is not None and v != ""}
    return f"{site_url()}{path}" + (f"?{urlencode(query)}" if query else "")


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    value: str
    change: str = formatting.EM_DASH
    tone: str = "flat"
    raw: Any = None


@dataclass
class Block:
    """One section of the digest."""

    key: str
    title: str
    url: str
    link_text: str
    metrics: list[Metric] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]], str]] = field(default_factory=list)
    chart: go.Figure | None = None
    chart_height: int = 300
    chart_alt: str = ""
    note: str = ""

    @property
    def cid(self) -> str:
        return f"chart-{self.key}"


@dataclass
class DigestContent:
    subscription: DigestSubscription
    viewer: User
    period: KpiPeriod
    scope: KpiScope
    as_of: date
    since: datetime
    blocks: list[Block]
    skipped: list[str]

    @property
    def subject(self) -> str:
        """The mail's subject: one line whatever the team's name holds."""
        return one_line(f"{self.scope.label} digest · {self.period.name} to {self.as_of:%d %b %Y}")

    @property
    def charts(self) -> list[Block]:
        return [b for b in self.blocks if b.chart is not None]


def digest_viewer(subscription: DigestSubscription) -> User:
    """Whose visibility the digest is read with: the recipient user, or for an external
    address the subscription's owner."""
    return subscription.recipient if subscription.recipient_id else subscription.owner


def digest_scope(subscription: DigestSubscription, viewer: User) -> KpiScope:
    """The subscription's scope, checked against the viewer's visibility now (a role or
    team change since the subscription was made is caught here, before anything is read).
    Raises ApplicationError when the viewer may not see it."""
    if not viewer.is_active:
        raise ApplicationError(f"{viewer} is inactive; the digest is not sent.")
    if subscription.team_id is None:
        if not scope_for(viewer).everything:
            raise ApplicationError(
                f"{viewer} may not see the whole company; choose one of their teams."
            )
        return scope_resolve(user=viewer)
    return scope_resolve(user=viewer, team_id=subscription.team_id)


def digest_period(as_of: date) -> KpiPeriod:
    """The fiscal quarter the digest reports on: the one containing ``as_of`` (QTD)."""
    quarter = fiscal.period_containing(as_of, "quarter", settings.FISCAL_YEAR_START_MONTH)
    return period_parse(quarter.name)


def _scope_params(scope: KpiScope, period: KpiPeriod) -> dict[str, object]:
    return {"period": period.name, "team": scope.team_id}


def _metric(result: KpiResult) -> Metric:
    kpi = result.kpi
    change, tone = formatting.change(result.value, result.previous, kpi.unit, kpi.direction)
    return Metric(
        name=kpi.name,
        label=kpi.label,
        value=formatting.kpi_display(result.value, kpi.unit, settings.BASE_CURRENCY),
        change=change,
        tone=tone,
        raw=result.value,
    )


def _money(value: Any) -> str:
    return formatting.money(value, settings.BASE_CURRENCY)


def _symbol() -> str:
    return formatting.SYMBOLS.get(settings.BASE_CURRENCY, "")


# --- Sections ------------------------------------------------------------------------------


def _headline(viewer: User, scope: KpiScope, period: KpiPeriod) -> Block:
    results = {
        name: kpi_value(name=name, period=period, user=viewer, team_id=scope.team_id)
        for name in HEADLINE_KPIS
    }
    months = period_parse(f"{period.start.isoformat()}..{period.end.isoformat()}")
    bookings = kpi_value(name="bookings", period=months, user=viewer, team_id=scope.team_id)
    quota = dict(kpi_value(name="quota", period=months, user=viewer, team_id=scope.team_id).series)
    points = [
        charts.MonthPoint(
            label=period_parse(name).start.strftime("%b %Y"),
            bookings=value,
            quota=quota.get(name),
            url="",
        )
        for name, value in bookings.series
    ]
    fig = charts.bookings_against_quota(
        points, title=f"Bookings against quota · {period.name}", money=_symbol()
    )
    previous = results["bookings"].previous_period.name
    return Block(
        key=Section.HEADLINE,
        title=f"Headline · {period.name} to date",
        url=absolute(reverse("dashboards:overview"), _scope_params(scope, period)),
        link_text="Open the overview",
        metrics=[_metric(r) for r in results.values()],
        chart=fig,
        chart_alt=(
            f"Bookings by month against quota in {period.name}: "
            f"{_money(results['bookings'].value)} booked of {_money(results['quota'].value)}."
        ),
        note=f"Change against {previous} (the whole previous quarter).",
    )


def _forecast(viewer: User, scope: KpiScope, period: KpiPeriod) -> Block | None:
    """The latest forecast from apps.forecasting, when that app provides one."""
    try:
        from apps.forecasting.selectors import forecast_latest  # type: ignore[attr-defined]
    except ImportError:
        return None
    summary = forecast_latest(scope=scope, period=period)
    if summary is None:
        return None
    from apps.digests.forecast import forecast_block

    return forecast_block(summary, scope=scope, period=period, url_for=absolute)


def _since(subscription: DigestSubscription, occurrence: datetime, as_of: date) -> datetime:
    """Where "pipeline changes since the last digest" starts: the start of the day of the
    last digest sent (in TIME_ZONE, as the pipeline page's ``since``), else one schedule
    period before this one."""
    last = (
        subscription.deliveries.filter(kind="digest", status="sent", sent_at__lt=occurrence)
        .order_by("-sent_at")
        .values_list("sent_at", flat=True)
        .first()
    )
    if last is not None:
        day = timezone.localdate(last)
    else:
        back = {"daily": 1, "weekly": 7, "monthly": 30}[subscription.frequency]
        day = as_of - timedelta(days=back)
    day = min(day, timezone.localdate())
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def _pipeline(viewer: User, scope: KpiScope, period: KpiPeriod, since: datetime) -> Block:
    changes = pipeline_changes(
        user=viewer, period=period, scope=scope, filters=KpiFilters(), since=since
    )
    labels = dict(WATERFALL_STEPS)
    since_text = since.date().isoformat()
    rows = [
        [labels[key], formatting.integer(changes.deals[key]), _money(value)]
        for key, value in changes.steps.items()
        if changes.deals[key]
    ]
    fig = charts.pipeline_waterfall(
        start=changes.start,
        steps=[(labels[k], v) for k, v in changes.steps.items()],
        end=changes.end,
        start_label=f"On {since:%d %b}",
        end_label="Now",
        title=f"Pipeline closing in {period.name} since {since:%d %b}",
        money=_symbol(),
    )
    moved = any(changes.deals.values()) or changes.start or changes.end
    return Block(
        key=Section.PIPELINE,
        title=f"Pipeline changes since {since:%d %b %Y}",
        url=absolute(
            reverse("dashboards:pipeline"), {**_scope_params(scope, period), "since": since_text}
        ),
        link_text="Open the pipeline",
        metrics=[
            Metric("pipeline_then", f"Open pipeline on {since:%d %b}", _money(changes.start)),
            Metric("pipeline_now", "Open pipeline now", _money(changes.end)),
        ],
        columns=["Movement", "Deals", "Change"],
        rows=rows,
        chart=fig if moved else None,
        chart_alt=(
            f"Open pipeline closing in {period.name}: {_money(changes.start)} on "
            f"{since:%d %b}, {_money(changes.end)} now."
        ),
        note="" if rows else "No deal moved.",
    )


def _deal_rows(deals: Any) -> list[list[str]]:
    return [
        [d.name, d.owner.get_full_name() or d.owner.username, _money(d.base_amount)] for d in deals
    ]


def _deals(viewer: User, scope: KpiScope, period: KpiPeriod) -> Block:
    filters = KpiFilters()
    params = _scope_params(scope, period)
    records = reverse("dashboards:records")
    tables = []
    for metric, title in (("won_deals", "Biggest won"), ("lost_deals", "Biggest lost")):
        deals = drilldown_deals(
            user=viewer, metric=metric, period=period, scope=scope, filters=filters
        ).order_by("-base_amount", "id")[:TOP_DEALS]
        tables.append(
            (
                title,
                ["Deal", "Owner", "Amount"],
                _deal_rows(deals),
                absolute(records, {**params, "metric": metric, "sort": "-amount"}),
            )
        )
    moves = slipped_moves(
        user=viewer, period=period, scope=scope, filters=filters, limit=TOP_DEALS
    ).select_related("deal", "deal__owner", "deal__account")
    tables.append(
        (
            "Slipped out of the quarter",
            ["Deal", "Owner", "Close date moved", "Amount"],
            [
                [
                    m.deal.name,
                    m.deal.owner.get_full_name() or m.deal.owner.username,
                    f"{m.old_close:%d %b} → {m.new_close:%d %b}",
                    f"{m.deal.currency} {formatting.compact_number(m.deal.amount)}",
                ]
                for m in moves
            ],
            absolute(reverse("dashboards:pipeline"), params) + "#slipped",
        )
    )
    return Block(
        key=Section.DEALS,
        title=f"Biggest deals · {period.name}",
        url=absolute(records, {**params, "metric": "closed_deals", "sort": "-amount"}),
        link_text="All closed deals",
        tables=tables,
    )


def _attainment_rows(
    viewer: User, scope: KpiScope, period: KpiPeriod
) -> list[tuple[str, Any, Any, Any]]:
    """(label, bookings, quota, attainment) of the company's regions (the teams directly
    below it), or of a team's sub-teams and then the reps directly in it. Teams through
    the KPI engine; reps through the dashboards' per-rep attainment (three queries for
    all of them), which reads the same rollups as the engine's rep scope."""
    if scope.kind == "company":
        teams = Team.objects.filter(parent__parent__isnull=True, parent__isnull=False)
    else:
        teams = Team.objects.filter(parent_id=scope.team_id)
    rows = []
    for team in teams.order_by("name"):
        values = [
            kpi_value(name=name, period=period, user=viewer, team_id=team.pk).value
            for name in ("bookings", "quota", "attainment")
        ]
        rows.append((team.name, *values))
    if scope.kind == "team":
        direct = set(
            User.objects.filter(team_id=scope.team_id, role=Role.REP).values_list("id", flat=True)
        )
        reps = [
            r for r in rep_attainment(user=viewer, period=period, scope=scope) if r.rep_id in direct
        ]
        rows += [
            (r.name, r.bookings, r.quota, r.attainment) for r in sorted(reps, key=lambda r: r.name)
        ]
    return rows


def _attainment(viewer: User, scope: KpiScope, period: KpiPeriod) -> Block:
    rows, bars = [], []
    for label, bookings, quota, attainment in _attainment_rows(viewer, scope, period):
        rows.append([label, _money(bookings), _money(quota), formatting.percent(attainment)])
        bars.append(charts.AttainmentBar(label=label, attainment=attainment, url=""))
    fig = None
    if any(b.attainment is not None for b in bars):
        fig = charts.attainment_bars(bars, title=f"Quota attainment · {period.name}")
    return Block(
        key=Section.ATTAINMENT,
        title=f"Attainment · {period.name}",
        url=absolute(reverse("dashboards:attainment"), _scope_params(scope, period)),
        link_text="Open attainment",
        columns=[
            "Team" if scope.kind == "company" else "Team or rep",
            "Bookings",
            "Quota",
            "Attainment",
        ],
        rows=rows,
        chart=fig,
        chart_height=max(220, 60 + 34 * len(bars)),
        chart_alt="Quota attainment by team: " + "; ".join(f"{r[0]} {r[3]}" for r in rows),
        note="" if rows else "No teams or reps below this scope.",
    )


def _previous_name(period: KpiPeriod) -> str:
    return period_shift(period, -1).name


def _customers(viewer: User, scope: KpiScope, period: KpiPeriod) -> Block | None:
    if scope.kind != "company":
        return None
    metrics = [_metric(kpi_value(name=name, period=period, user=viewer)) for name in CUSTOMER_KPIS]
    return Block(
        key=Section.CUSTOMERS,
        title=f"Customers · {period.name}",
        url=absolute(reverse("dashboards:customers"), {"period": period.name}),
        link_text="Open customers",
        metrics=metrics,
        note=f"Company-wide; change against {_previous_name(period)}.",
    )


def _manager(viewer: User, scope: KpiScope, period: KpiPeriod, as_of: date) -> Block | None:
    from apps.performance.selectors import reviews_due

    overdue = [d for d in reviews_due(user=viewer, today=as_of) if d.overdue_on(as_of)]
    rows = [
        [
            str(d.rep),
            d.rep.team.name if d.rep.team else formatting.EM_DASH,
            d.period.name,
            f"{d.due_on:%d %b %Y}",
        ]
        for d in overdue
    ]
    tables = [
        (
            f"Overdue reviews ({len(rows)})",
            ["Rep", "Team", "Period", "Was due"],
            rows,
            absolute(reverse("reviews:index")),
        )
    ]
    calls = _calls_missing(viewer, period, as_of)
    if calls is not None:
        tables.append(
            (
                f"Forecast calls not submitted ({len(calls)})",
                ["Team", "Manager"],
                [[t.name, str(t.manager) if t.manager_id else formatting.EM_DASH] for t in calls],
                absolute(reverse("forecasting:index"), _scope_params(scope, period)),
            )
        )
    return Block(
        key=Section.MANAGER,
        title="Waiting on you",
        url=absolute(reverse("reviews:index")),
        link_text="Open reviews",
        tables=tables,
    )


def _calls_missing(viewer: User, period: KpiPeriod, as_of: date) -> list[Team] | None:
    try:
        from apps.forecasting.selectors import calls_missing  # type: ignore[attr-defined]
    except ImportError:
        return None
    return list(calls_missing(manager=viewer, period=period, on=as_of))


# --- The digest ----------------------------------------------------------------------------


def digest_content(
    *, subscription: DigestSubscription, as_of: date, occurrence: datetime | None = None
) -> DigestContent:
    """Everything one digest shows for ``as_of`` (the local date of the occurrence).

    Raises ApplicationError when the reader may not see the subscription's scope."""
    viewer = digest_viewer(subscription)
    scope = digest_scope(subscription, viewer)
    period = digest_period(as_of)
    occurrence = occurrence or timezone.now()
    since = _since(subscription, occurrence, as_of)
    wanted = [s for s in Section.values if s in (subscription.sections or [])]
    blocks: list[Block] = []
    skipped: list[str] = []
    for section in wanted:
        block: Block | None
        if section == Section.HEADLINE:
            block = _headline(viewer, scope, period)
        elif section == Section.FORECAST:
            block = _forecast(viewer, scope, period)
        elif section == Section.PIPELINE:
            block = _pipeline(viewer, scope, period, since)
        elif section == Section.DEALS:
            block = _deals(viewer, scope, period)
        elif section == Section.ATTAINMENT:
            block = _attainment(viewer, scope, period)
        elif section == Section.CUSTOMERS:
            block = _customers(viewer, scope, period)
        elif subscription.recipient_id is not None and viewer.role in (
            Role.MANAGER,
            Role.EXECUTIVE,
        ):
            block = _manager(viewer, scope, period, as_of)
        else:
            block = None
        if block is None:
            skipped.append(Section(section).label)
        else:
            blocks.append(block)
    return DigestContent(
        subscription=subscription,
        viewer=viewer,
        period=period,
        scope=scope,
        as_of=as_of,
        since=since,
        blocks=blocks,
        skipped=skipped,
    )
