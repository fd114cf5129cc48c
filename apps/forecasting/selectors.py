"""Reads for forecasting: call roll-ups and history, stored forecasts, accuracy, deals.

Every read that takes a viewer goes through :mod:`apps.org.policy`. Money is Decimal in
the base currency. Bookings ("won to date") and open pipeline by forecast category are read
from the KPI engine's rollup tables, the same rows the Bookings and Open pipeline KPIs sum,
so a roll-up always agrees with the dashboards.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import FilteredRelation, Max, Q, QuerySet, Sum

from apps.crm.models import ForecastCategory, Stage
from apps.dashboards.selectors import drilldown_deals
from apps.forecasting import calc
from apps.forecasting.models import (
    BacktestScore,
    ForecastCall,
    ForecastRun,
    ForecastSnapshot,
    ForecastValue,
    Scenario,
)
from apps.forecasting.scopes import key_for, root_team_ids
from apps.kpis.models import ClosedDealRollup, PipelineRollup
from apps.kpis.selectors import KpiFilters, KpiPeriod, KpiScope
from apps.org.models import Role, Team, User
from apps.org.policy import Scope, scope_for, subtree_ids

CENT = Decimal("0.01")


def _money(value: Any) -> Decimal:
    if value is None:
        return Decimal("0.00")
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    return value.quantize(CENT)


# --- Who may submit ------------------------------------------------------------------------


def submittable_teams(*, user: User) -> QuerySet[Team]:
    """Active teams ``user`` may submit calls for (none for reps and RevOps admins)."""
    teams = Team.objects.filter(is_active=True)
    if not user.is_active:
        return teams.none()
    if user.is_superuser or user.role == Role.EXECUTIVE:
        return teams
    if user.role != Role.MANAGER:
        return teams.none()
    return teams.filter(pk__in=scope_for(user).team_ids)


# --- Roll-up of the level below ------------------------------------------------------------


@dataclass(frozen=True)
class RollupLine:
    """One row under a team: a person's own deals, or a child team's contribution."""

    kind: str  # "person" or "team"
    label: str
    commit: Decimal
    best_case: Decimal
    won: Decimal | None = None  # people only
    team_id: int | None = None
    manager: str = ""
    call: ForecastCall | None = None  # the child team's latest call, if any

    @property
    def source(self) -> str:
        if self.kind == "person":
            return "Deals"
        return "Latest call" if self.call is not None else "Roll-up (no call yet)"


@dataclass(frozen=True)
class CallRollup:
    team: Team
    period: KpiPeriod
    commit: Decimal
    best_case: Decimal
    lines: tuple[RollupLine, ...]
    latest_call: ForecastCall | None


def owner_deals(*, owner_ids: set[int], period: KpiPeriod) -> dict[int, calc.OwnerDeals]:
    """Won to date and open Commit / Best case amounts of each owner for ``period`` (two
    queries over the rollups: the Bookings and Open pipeline KPIs' rows)."""
    if not owner_ids:
        return {}
    won = dict(
        ClosedDealRollup.objects.filter(
            owner_id__in=owner_ids,
            outcome=Stage.Outcome.WON,
            month__gte=period.start,
            month__lte=period.end,
        )
        .values("owner_id")
        .annotate(amount=Sum("amount"))
        .values_list("owner_id", "amount")
    )
    open_rows = (
        PipelineRollup.objects.filter(
            owner_id__in=owner_ids,
            forecast_category__in=[ForecastCategory.COMMIT, ForecastCategory.BEST_CASE],
            month__gte=period.start,
            month__lte=period.end,
        )
        .values("owner_id", "forecast_category")
        .annotate(amount=Sum("amount"))
    )
    commit: dict[int, Decimal] = defaultdict(Decimal)
    best: dict[int, Decimal] = defaultdict(Decimal)
    for row in open_rows:
        target = commit if row["forecast_category"] == ForecastCategory.COMMIT else best
        target[row["owner_id"]] += _money(row["amount"])
    return {
        owner: calc.OwnerDeals(
            won=_money(won.get(owner)),
            open_commit=_money(commit.get(owner)),
            open_best_case=_money(best.get(owner)),
        )
        for owner in set(won) | set(commit) | set(best)
    }


def latest_calls(*, team_ids: set[int], period: KpiPeriod) -> dict[int, ForecastCall]:
    """Each team's most recent call for the period (one query)."""
    result: dict[int, ForecastCall] = {}
    calls = ForecastCall.objects.filter(period_name=period.name, team_id__in=team_ids)
    for call in calls.select_related("submitted_by").order_by("team_id", "-submitted_at", "-id"):
        result.setdefault(call.team_id, call)
    return result


def call_rollup(*, team: Team, period: KpiPeriod) -> CallRollup:
    """The roll-up of the level below ``team`` for ``period`` (see
    :func:`apps.forecasting.calc.team_rollup`), with one line per own member and per
    child team. Five queries whatever the size of the subtree."""
    teams = list(Team.objects.values("id", "parent_id", "name", "is_active", "manager_id"))
    tree: dict[int | None, list[int]] = defaultdict(list)
    for t in teams:
        tree[t["parent_id"]].append(t["id"])
    subtree = subtree_ids([team.pk], dict(tree))
    by_id = {t["id"]: t for t in teams}
    children = {
        tid: sorted(
            (c for c in tree.get(tid, []) if by_id[c]["is_active"]), key=lambda c: by_id[c]["name"]
        )
        for tid in subtree
    }
    people = list(
        User.objects.filter(team_id__in=subtree).values(
            "id", "team_id", "first_name", "last_name", "username"
        )
    )
    names = {
        p["id"]: " ".join(x for x in (p["first_name"], p["last_name"]) if x) or p["username"]
        for p in people
    }
    members: dict[int, list[int]] = defaultdict(list)
    for p in people:
        members[p["team_id"]].append(p["id"])
    deals = owner_deals(owner_ids={p["id"] for p in people}, period=period)
    latest = latest_calls(team_ids=subtree, period=period)
    calls = {tid: calc.Call(c.commit, c.best_case) for tid, c in latest.items()}
    node = calc.team_rollup(team.pk, children=children, members=members, owners=deals, calls=calls)
    # A child team's manager usually belongs to the subtree (their own team); fetch the
    # names of any who do not (a sixth query, only then).
    outside = {t["manager_id"] for t in teams if t["id"] in subtree and t["manager_id"]} - set(
        names
    )
    for user in User.objects.filter(pk__in=outside) if outside else ():
        names[user.pk] = str(user)
    managers = {t["id"]: names.get(t["manager_id"], "") for t in teams if t["manager_id"]}
    lines: list[RollupLine] = []
    for owner_id in sorted(members.get(team.pk, []), key=lambda o: names[o]):
        d = deals.get(owner_id, calc.OwnerDeals())
        lines.append(RollupLine("person", names[owner_id], d.commit, d.best_case, won=d.won))
    for child in node.children:
        lines.append(
            RollupLine(
                "team",
                by_id[child.team_id]["name"],
                child.commit,
                child.best_case,
                team_id=child.team_id,
                manager=managers.get(child.team_id, ""),
                call=latest.get(child.team_id),
            )
        )
    return CallRollup(
        team=team,
        period=period,
        commit=node.commit,
        best_case=node.best_case,
        lines=tuple(lines),
        latest_call=latest.get(team.pk),
    )


def call_history(
    *, user: User, team: Team, period: KpiPeriod, visible: Scope | None = None
) -> QuerySet[ForecastCall]:
    """Every call submitted for ``team`` and ``period``, newest first; empty when the
    viewer may not see the team (``visible``: the viewer's resolved scope, if known)."""
    calls = ForecastCall.objects.filter(team=team, period_name=period.name)
    if not (visible or scope_for(user)).sees_team(team.pk):
        return calls.none()
    return calls.select_related("submitted_by").order_by("-submitted_at", "-id")


def calls_missing(*, manager: User, period: KpiPeriod, on: date) -> list[Team]:
    """The active teams ``manager`` runs with no call for ``period`` yet in the week of
    the period that contains ``on`` (week 1 = the period's first seven days). Two queries."""
    teams = list(Team.objects.filter(manager=manager, is_active=True).order_by("name"))
    if not teams:
        return []
    week = calc.week_of_period(on, period.start)
    called = set(
        ForecastCall.objects.filter(team__in=teams, period_name=period.name, week=week).values_list(
            "team_id", flat=True
        )
    )
    return [t for t in teams if t.pk not in called]


# --- Stored forecasts ----------------------------------------------------------------------


def forecast_values(*, scope_key: str, period: KpiPeriod) -> list[ForecastValue]:
    """The stored forecasts of one scope and period, in method order (one query)."""
    order = {"weighted": 0, "historical": 1, "ml": 2, "monte_carlo": 3}
    rows = list(ForecastValue.objects.filter(scope_key=scope_key, period_name=period.name))
    return sorted(rows, key=lambda v: (order.get(v.method, 9), v.method))


@dataclass(frozen=True)
class ForecastSummary:
    """The latest stored forecasts of a scope and period with the latest call (for the
    scope's team; the company's call is the root team's)."""

    period_name: str
    scope_label: str
    computed_at: datetime | None
    methods: list  # list[apps.forecasting.engine.api.MethodForecast]
    call_commit: Decimal | None
    call_best_case: Decimal | None
    call_submitted_at: datetime | None


def method_forecast(value: ForecastValue):
    """A stored row as the engine's :class:`MethodForecast`."""
    from apps.forecasting.engine.api import MethodForecast

    return MethodForecast(
        method=value.method,
        label=value.label,
        expected=value.expected,
        won_to_date=value.won_to_date,
        p10=value.p10,
        p50=value.p50,
        p90=value.p90,
        open_deals=value.open_deals,
        detail=value.detail,
    )


def _call_team_id(scope: KpiScope, roots: set[int]) -> int | None:
    if scope.kind == "team":
        return scope.team_id
    if scope.kind == "company":
        return min(roots) if roots else None
    return None


def forecast_latest(*, scope: KpiScope, period: KpiPeriod) -> ForecastSummary | None:
    """The stored forecasts for an already-resolved (visibility-checked) scope and period,
    with the scope's latest call; None when nothing was computed for them yet."""
    roots = root_team_ids()
    values = forecast_values(scope_key=key_for(scope, roots=roots), period=period)
    if not values:
        return None
    team_id = _call_team_id(scope, roots)
    call = None
    if team_id is not None:
        call = (
            ForecastCall.objects.filter(team_id=team_id, period_name=period.name)
            .order_by("-submitted_at", "-id")
            .first()
        )
    return ForecastSummary(
        period_name=period.name,
        scope_label=scope.label,
        computed_at=max(v.computed_at for v in values),
        methods=[method_forecast(v) for v in values],
        call_commit=call.commit if call else None,
        call_best_case=call.best_case if call else None,
        call_submitted_at=call.submitted_at if call else None,
    )


# --- Deals with their stored scores -------------------------------------------------------

#: Fields of each listed deal; ``score__*`` are NULL for a deal without a stored score.
DEAL_FIELDS = (
    "id",
    "name",
    "account__name",
    "owner_id",
    "owner__first_name",
    "owner__last_name",
    "stage__name",
    "stage__probability",
    "forecast_category",
    "close_date",
    "amount",
    "currency",
    "base_amount",
    "score__probability",
    "score__top_factors",
    "score__as_of",
    "score__computed_at",
)


def scored_open_deals(
    *, user: User, period: KpiPeriod, scope: KpiScope, filters: KpiFilters
) -> list[dict[str, Any]]:
    """The open deals of ``scope`` closing in ``period`` that ``user`` may see, narrowed by
    the filters (the dashboards' open-pipeline drill-down), each with the ML score stored
    for the period by the forecast recompute (:class:`DealScoreValue`) or NULLs when the
    deal has none yet. One query (a left join on the unique (deal, period) score); never
    a call to the engine. A deal's score does not depend on the scope or the filters."""
    deals = drilldown_deals(
        user=user, metric="open_pipeline", period=period, scope=scope, filters=filters
    )
    scored = deals.annotate(
        score=FilteredRelation(
            "forecast_scores", condition=Q(forecast_scores__period_name=period.name)
        )
    )
    return list(scored.values(*DEAL_FIELDS))


# --- Accuracy ------------------------------------------------------------------------------


def accuracy_rows(*, scope_key: str) -> list[calc.AccuracyRow]:
    """Accuracy of every forecast source (methods and calls) over the scored snapshots of
    ``scope_key`` (one query)."""
    scored = ForecastSnapshot.objects.filter(scope_key=scope_key, scored_at__isnull=False)
    return calc.accuracy_table(
        calc.ScoredForecast(s, label, week, _money(err), ape)
        for s, label, week, err, ape in scored.values_list(
            "source", "label", "week", "error", "abs_pct_error"
        )
    )


def accuracy_periods(*, scope_key: str) -> list[str]:
    """Names of the closed periods scored for a scope, oldest first."""
    rows = (
        ForecastSnapshot.objects.filter(scope_key=scope_key, scored_at__isnull=False)
        .values("period_name")
        .annotate(start=Max("period_start"))
        .order_by("start")
    )
    return [r["period_name"] for r in rows]


@dataclass(frozen=True)
class CallPoint:
    week: int
    submitted_at: datetime
    commit: Decimal
    best_case: Decimal


def call_points(*, team_id: int, period: KpiPeriod) -> list[CallPoint]:
    """The team's calls through the period, oldest first, for the history chart."""
    rows = ForecastCall.objects.filter(team_id=team_id, period_name=period.name).order_by(
        "submitted_at", "id"
    )
    return [
        CallPoint(week, at, commit, best)
        for week, at, commit, best in rows.values_list(
            "week", "submitted_at", "commit", "best_case"
        )
    ]


def snapshot_history(*, scope_key: str, period: KpiPeriod) -> dict[str, list[tuple[int, Decimal]]]:
    """Weekly snapshot values of each source for the scope and period: ``{source: [(week,
    value)]}`` (one query)."""
    result: dict[str, list[tuple[int, Decimal]]] = defaultdict(list)
    rows = ForecastSnapshot.objects.filter(scope_key=scope_key, period_name=period.name).order_by(
        "week"
    )
    for source, week, value in rows.values_list("source", "week", "value"):
        result[source].append((week, _money(value)))
    return dict(result)


# --- Scenarios -----------------------------------------------------------------------------


def scenarios_for(*, user: User) -> QuerySet[Scenario]:
    """The viewer's own saved scenarios."""
    return Scenario.objects.filter(owner=user).order_by("name")


def scenario_get(*, user: User, scenario_id: int) -> Scenario | None:
    return Scenario.objects.filter(owner=user, pk=scenario_id).first()


# --- Runs ----------------------------------------------------------------------------------


def last_forecast_run() -> ForecastRun | None:
    """The latest finished forecast computation (the page's data freshness)."""
    return ForecastRun.objects.filter(finished_at__isnull=False).order_by("-finished_at").first()


def backtest_rows(*, scope_key: str) -> tuple[list[calc.AccuracyRow], list[str]]:
    """Accuracy of each method replayed over past closed periods (the engine's backtest,
    stored weekly), aggregated like the live accuracy table, and the periods replayed."""
    scores = BacktestScore.objects.filter(scope_key=scope_key)
    rows = list(
        scores.values_list(
            "method", "label", "week", "error", "abs_pct_error", "period_name", "period_start"
        )
    )
    periods = sorted({(start, name) for *_rest, name, start in rows})
    table = calc.accuracy_table(
        calc.ScoredForecast(m, label, week, _money(err), ape)
        for m, label, week, err, ape, _n, _s in rows
    )
    return table, [name for _start, name in periods]
