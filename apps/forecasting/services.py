"""Writes for forecasting: calls, deal categories, stored forecasts, snapshots, scoring and
scenarios. The forecast methods themselves live in the engine
(:mod:`apps.forecasting.engine.api`), called only through its API.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.core.services import job_run_record
from apps.crm.models import ForecastCategory, Opportunity, OpportunityHistory, Stage
from apps.crm.services import opportunity_update
from apps.forecasting import calc, scopes
from apps.forecasting.models import (
    BacktestScore,
    DealScoreValue,
    ForecastCall,
    ForecastRun,
    ForecastSnapshot,
    ForecastValue,
    Scenario,
)
from apps.forecasting.selectors import call_rollup, latest_calls
from apps.kpis.selectors import KpiPeriod, KpiScope, kpi_value, period_parse, period_shift
from apps.org.models import Role, Team, User
from apps.org.policy import can_submit_forecast_call, deal_editable_fields
from apps.quotas import fiscal

logger = logging.getLogger(__name__)
CENT = Decimal("0.01")
#: Arbitrary constant naming the forecast writers' Postgres advisory lock.
FORECAST_LOCK_KEY = 7_040_001
#: Hard time limits of the recompute tasks (seconds): a run still "running" after its limit
#: has certainly lost its worker (the pool kills a task at its hard limit).
RECOMPUTE_TIME_LIMIT_SECONDS = 60 * 60
RECOMPUTE_OWNERS_TIME_LIMIT_SECONDS = 15 * 60
#: Seconds the per-owner recompute waits, so the KPI rollup update it reads runs first.
RECOMPUTE_COUNTDOWN_SECONDS = 5
#: Forecast categories a person may put an open deal in (closed is set by a won stage).
SETTABLE_CATEGORIES = (
    ForecastCategory.PIPELINE,
    ForecastCategory.BEST_CASE,
    ForecastCategory.COMMIT,
    ForecastCategory.OMITTED,
)


def engine_api():
    """The forecast engine's API module; ApplicationError when it is not installed."""
    try:
        from apps.forecasting.engine import api
    except ImportError as exc:
        raise ApplicationError(f"The forecast engine is not available ({exc}).") from None
    return api


def _money(value: Any, field_name: str) -> Decimal:
    try:
        amount = Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError, TypeError):
        raise ApplicationError(
            f"{field_name} must be an amount.", extra={"field": field_name}
        ) from None
    if not amount.is_finite():
        raise ApplicationError(f"{field_name} must be an amount.", extra={"field": field_name})
    return amount


def _lock() -> None:
    """Serialise forecast writers (Postgres advisory lock released at commit)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [FORECAST_LOCK_KEY])


def forecast_periods(as_of: date) -> list[KpiPeriod]:
    """The current and the next fiscal quarter at ``as_of``."""
    quarter = fiscal.period_containing(as_of, "quarter", settings.FISCAL_YEAR_START_MONTH)
    current = period_parse(quarter.name)
    return [current, period_shift(current, 1)]


# --- Calls ---------------------------------------------------------------------------------


@transaction.atomic
def call_submit(
    *,
    user: User,
    team: Team,
    period: KpiPeriod,
    commit: Decimal | str,
    best_case: Decimal | str,
    comment: str = "",
    at: datetime | None = None,
) -> ForecastCall:
    """Record ``user``'s commit and best-case call for ``team`` and ``period``.

    Kept for good: a later call is a new row. The roll-up of the level below, as it
    stands now, is stored with it so the adjustment stays auditable. Raises
    ApplicationError when the user may not call this team, the period is not a fiscal
    month or quarter still open at ``at``, or the amounts are invalid."""
    at = at or timezone.now()
    if not can_submit_forecast_call(user, team):
        raise ApplicationError("You may not submit a forecast call for this team.")
    if period.kind not in ("quarter", "month"):
        raise ApplicationError(
            "Calls are made for a fiscal quarter or month.", extra={"field": "period"}
        )
    today = timezone.localtime(at).date()
    if period.end < today:
        raise ApplicationError(
            f"{period.name} has closed; calls are made while a period is open.",
            extra={"field": "period"},
        )
    commit_amount = _money(commit, "commit")
    best_amount = _money(best_case, "best_case")
    if commit_amount < 0 or best_amount < 0:
        raise ApplicationError("A call cannot be negative.", extra={"field": "commit"})
    if best_amount < commit_amount:
        raise ApplicationError(
            "Best case must be at least the commit (best case includes the commit deals).",
            extra={"field": "best_case"},
        )
    comment = (comment or "").strip()
    if len(comment) > 2000:
        raise ApplicationError(
            "Keep the comment under 2000 characters.", extra={"field": "comment"}
        )
    rollup = call_rollup(team=team, period=period)
    return ForecastCall.objects.create(
        team=team,
        submitted_by=user,
        period_name=period.name,
        period_start=period.start,
        period_end=period.end,
        week=calc.week_of_period(today, period.start),
        commit=commit_amount,
        best_case=best_amount,
        rollup_commit=rollup.commit,
        rollup_best_case=rollup.best_case,
        comment=comment,
        submitted_at=at,
    )


# --- Deal categories -----------------------------------------------------------------------


def deal_category_set(*, user: User, opportunity: Opportunity, category: str) -> Opportunity:
    """Move an open deal to another forecast category, through the CRM service (which
    records the change in the deal's history). Who may: as for any deal edit (policy)."""
    if category not in SETTABLE_CATEGORIES:
        raise ApplicationError(
            f"Choose one of {', '.join(SETTABLE_CATEGORIES)}.", extra={"field": "category"}
        )
    allowed = deal_editable_fields(
        user, owner_id=opportunity.owner_id, all_fields=frozenset({"forecast_category"})
    )
    if "forecast_category" not in allowed:
        raise ApplicationError("You may not change this deal.")
    if opportunity.stage.outcome != Stage.Outcome.OPEN:
        raise ApplicationError("Only open deals have a forecast category to change.")
    with transaction.atomic():
        opp, _changed = opportunity_update(
            opportunity=opportunity,
            changed_by=user,
            history_source=OpportunityHistory.Source.APP,
            forecast_category=category,
        )
    return opp


# --- Stored forecasts ----------------------------------------------------------------------


@dataclass
class RecomputeResult:
    values: int = 0
    scopes: int = 0
    deal_scores: int = 0
    periods: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _value_rows(
    target: scopes.ScopeTarget,
    period: KpiPeriod,
    forecasts: Iterable[Any],
    *,
    run: ForecastRun,
    as_of: date,
    now: datetime,
) -> list[ForecastValue]:
    def q(value: Decimal | None) -> Decimal | None:
        return None if value is None else Decimal(value).quantize(CENT)

    def money(value: Decimal) -> Decimal:  # every method gives these two
        return Decimal(value).quantize(CENT)

    return [
        ForecastValue(
            run=run,
            scope_key=target.key,
            team_id=target.team_id,
            rep_id=target.rep_id,
            period_name=period.name,
            period_start=period.start,
            period_end=period.end,
            method=f.method,
            label=f.label,
            expected=money(f.expected),
            won_to_date=money(f.won_to_date),
            p10=q(f.p10),
            p50=q(f.p50),
            p90=q(f.p90),
            open_deals=f.open_deals,
            detail=f.detail,
            as_of=as_of,
            computed_at=now,
        )
        for f in forecasts
    ]


def _score_rows(
    period: KpiPeriod, scores: Iterable[Any], *, run: ForecastRun, as_of: date, now: datetime
) -> list[DealScoreValue]:
    return [
        DealScoreValue(
            run=run,
            opportunity_id=s.opportunity_id,
            period_name=period.name,
            period_start=period.start,
            period_end=period.end,
            as_of=as_of,
            probability=float(s.probability),
            stage_probability=float(s.stage_probability),
            top_factors=[[str(label), float(value)] for label, value in s.top_factors],
            computed_at=now,
        )
        for s in scores
    ]


def _owners_scope(owner_ids: frozenset[int]) -> KpiScope:
    """A scope of exactly these owners' deals, for scoring them (a deal's score does not
    depend on the scope it is asked for: the model and its features are per deal)."""
    return KpiScope(kind="team", owner_ids=owner_ids, label="Changed owners")


def _recompute(
    targets: list[scopes.ScopeTarget],
    *,
    kind: str,
    as_of: date | None,
    score_owner_ids: frozenset[int] | None = None,
) -> RecomputeResult:
    """Compute every method for ``targets`` and the deal scores, then store both in one
    transaction. Deal scores: a full run scores every open deal of each stored period
    (one company-scope call per period) and replaces those periods' rows; a run after a
    change (``score_owner_ids``) scores and replaces only those owners' deals."""
    api = engine_api()
    as_of = as_of or timezone.localdate()
    periods = forecast_periods(as_of)
    result = RecomputeResult(periods=[p.name for p in periods])
    now = timezone.now()
    full = kind == ForecastRun.Kind.FULL
    score_scope = company_scope() if full else _owners_scope(score_owner_ids or frozenset())
    # Compute first (outside the write transaction: the engine only reads), then replace
    # the stored rows of exactly these scopes and periods in one transaction.
    computed: list[tuple[scopes.ScopeTarget, KpiPeriod, list[Any]]] = []
    scored: list[tuple[KpiPeriod, list[Any]]] = []
    # One load of the deal history for every scope (the engine skips its per-call check).
    with api.reusing_data():
        for target in targets:
            for period in periods:
                computed.append(
                    (
                        target,
                        period,
                        api.forecasts_compute(scope=target.scope, period=period, as_of=as_of),
                    )
                )
        if full or score_owner_ids:
            for period in periods:
                scored.append(
                    (period, api.deal_scores(scope=score_scope, period=period, as_of=as_of))
                )
    with transaction.atomic():
        _lock()
        run = ForecastRun.objects.create(
            kind=kind, as_of=as_of, started_at=now, periods=result.periods
        )
        rows: list[ForecastValue] = []
        for target, period, forecasts in computed:
            rows += _value_rows(target, period, forecasts, run=run, as_of=as_of, now=now)
        stale = ForecastValue.objects.filter(period_name__in=result.periods)
        if not full:
            stale = stale.filter(scope_key__in=[t.key for t in targets])
        # A full run also drops scopes that no longer exist (a deactivated team or rep).
        stale.delete()
        ForecastValue.objects.bulk_create(rows, batch_size=1000)
        score_rows: list[DealScoreValue] = []
        for period, scores in scored:
            score_rows += _score_rows(period, scores, run=run, as_of=as_of, now=now)
        if full:
            # Every stored period is rescored; scores of periods that have ended are
            # dropped (a past quarter's "probability to win within it" means nothing now).
            DealScoreValue.objects.filter(
                Q(period_name__in=result.periods) | Q(period_end__lt=periods[0].start)
            ).delete()
        elif score_owner_ids:
            # The owners' deals, and any deal scored now that was stored under another
            # owner (reassigned): a deal that closed or left the period loses its row.
            DealScoreValue.objects.filter(period_name__in=result.periods).filter(
                Q(opportunity__owner_id__in=score_owner_ids)
                | Q(opportunity_id__in=[r.opportunity_id for r in score_rows])
            ).delete()
        DealScoreValue.objects.bulk_create(score_rows, batch_size=2000)
        run.values = len(rows)
        run.finished_at = timezone.now()
        run.save(update_fields=["values", "finished_at"])
    result.values, result.scopes, result.deal_scores = len(rows), len(targets), len(score_rows)
    return result


def company_scope() -> KpiScope:
    return scopes.company_target().scope


def forecasts_recompute(
    *, as_of: date | None = None, task_id: str | None = None
) -> RecomputeResult:
    """Every method for every scope (company, every active team, every active rep) and
    the current and next fiscal quarter, and the ML score of every open deal closing in
    them, stored in one transaction (replacing what was stored for them). Idempotent;
    records a JobRun ``forecasting.recompute`` (with ``task_id``, the Celery task's id,
    when run by a worker) and first closes the runs a lost worker left running."""
    with job_run_record(
        kind="forecasting.recompute", task_id=task_id, time_limit_s=RECOMPUTE_TIME_LIMIT_SECONDS
    ) as run:
        result = _recompute(scopes.all_targets(), kind=ForecastRun.Kind.FULL, as_of=as_of)
        run.rows = result.values
        run.detail = {
            **run.detail,
            "scopes": result.scopes,
            "periods": result.periods,
            "deal_scores": result.deal_scores,
        }
    return result


def forecasts_recompute_owners(
    *, owner_ids: Iterable[int], as_of: date | None = None, task_id: str | None = None
) -> RecomputeResult:
    """Recompute the scopes deals of these owners count in (each owner, their teams up
    to the company) and the stored scores of these owners' open deals, after a change;
    records a JobRun ``forecasting.recompute_scopes`` (closing first, as the full
    recompute does, the runs a lost worker left running)."""
    owners = frozenset(owner_ids)
    keys: dict[str, scopes.ScopeTarget] = {}
    for owner_id in sorted(owners):
        for target in scopes.targets_for_owner(owner_id):
            keys.setdefault(target.key, target)
    if not keys:
        return RecomputeResult()
    with job_run_record(
        kind="forecasting.recompute_scopes",
        task_id=task_id,
        time_limit_s=RECOMPUTE_OWNERS_TIME_LIMIT_SECONDS,
    ) as run:
        result = _recompute(
            list(keys.values()),
            kind=ForecastRun.Kind.SCOPES,
            as_of=as_of,
            score_owner_ids=owners,
        )
        run.rows = result.values
        run.detail = {
            **run.detail,
            "scopes": sorted(keys),
            "periods": result.periods,
            "deal_scores": result.deal_scores,
        }
    return result


def forecast_deal_changed(*, opportunity_id: int) -> bool:
    """:func:`forecast_deals_changed` for one deal."""
    return forecast_deals_changed(opportunity_ids=[opportunity_id])


def forecast_deals_changed(*, opportunity_ids: Iterable[int]) -> bool:
    """Queue one recompute of the forecasts changes to these deals can move: every owner
    the deals ever had (a reassigned deal leaves one scope and enters another). The task
    waits a few seconds so the KPI rollup update queued by the same change runs first.
    Returns True when a task was scheduled."""
    ids = list(opportunity_ids)
    owners = set(
        OpportunityHistory.objects.filter(opportunity_id__in=ids).values_list("owner_id", flat=True)
    )
    owners |= set(Opportunity.objects.filter(pk__in=ids).values_list("owner_id", flat=True))
    if not owners or settings.CELERY_TASK_ALWAYS_EAGER:
        # Without a worker (the embedded default) a recompute would run inside the request
        # that saved the deal, for seconds; the stored forecasts are refreshed by
        # `manage.py recompute_forecasts` (or the nightly task where beat runs) instead.
        return False
    from apps.forecasting.tasks import forecasts_recompute_owners_task

    # Coalesce a burst of edits of the same owners' deals into one recompute: the guard
    # lives as long as the task waits, and the task clears it when it starts.
    guard = pending_key(sorted(owners))
    if not cache.add(guard, "1", timeout=RECOMPUTE_COUNTDOWN_SECONDS + 60):
        return False
    try:
        forecasts_recompute_owners_task.apply_async(
            kwargs={"owner_ids": sorted(owners)}, countdown=RECOMPUTE_COUNTDOWN_SECONDS
        )
    except Exception:
        # The broker is away: the nightly recompute settles it.
        cache.delete(guard)
        logger.exception("could not enqueue the forecast recompute")
        return False
    return True


def pending_key(owner_ids: list[int]) -> str:
    """Cache key set while a recompute for exactly these owners is queued."""
    return "forecasting:recompute-pending:" + ",".join(str(i) for i in owner_ids)


# --- Snapshots and accuracy ----------------------------------------------------------------


@dataclass
class SnapshotResult:
    snapshots: int = 0
    scored: int = 0
    periods: list[str] = field(default_factory=list)
    backtest: int = 0


def _system_viewer() -> User:
    """An unsaved executive used to read company-wide KPIs in background jobs (the KPI
    selectors take a viewer; a job acts for the whole company)."""
    return User(username="system:forecasting", role=Role.EXECUTIVE, is_active=True)


def actual_bookings(*, scope_key: str, period: KpiPeriod) -> Decimal:
    """The period's bookings for a scope key, from the KPI engine (one definition)."""
    viewer = _system_viewer()
    kind, _, ident = scope_key.partition(":")
    if kind == "team":
        value = kpi_value(name="bookings", period=period, user=viewer, team_id=int(ident)).value
    elif kind == "rep":
        value = kpi_value(name="bookings", period=period, user=viewer, rep_id=int(ident)).value
    else:
        value = kpi_value(name="bookings", period=period, user=viewer).value
    return Decimal(value or 0).quantize(CENT)


def snapshots_take(*, on: date) -> int:
    """Store, for the week of the current quarter containing ``on``, every stored method
    forecast of that quarter and each team's latest commit and best-case call. Taking it
    again in the same week replaces that week's rows (idempotent)."""
    period = forecast_periods(on)[0]
    week = calc.week_of_period(on, period.start)
    roots = scopes.root_team_ids()
    rows: list[dict[str, Any]] = []
    for value in ForecastValue.objects.filter(period_name=period.name):
        rows.append(
            {
                "scope_key": value.scope_key,
                "team_id": value.team_id,
                "rep_id": value.rep_id,
                "source": value.method,
                "label": value.label,
                "value": value.expected,
                "p10": value.p10,
                "p90": value.p90,
            }
        )
    team_ids = set(Team.objects.values_list("id", flat=True))
    for team_id, call in latest_calls(team_ids=team_ids, period=period).items():
        key = scopes.team_key(team_id, roots)
        own_team = None if key == scopes.COMPANY else team_id
        for source, label, amount in (
            ("call_commit", "Manager call: commit", call.commit),
            ("call_best_case", "Manager call: best case", call.best_case),
        ):
            rows.append(
                {
                    "scope_key": key,
                    "team_id": own_team,
                    "rep_id": None,
                    "source": source,
                    "label": label,
                    "value": amount,
                    "p10": None,
                    "p90": None,
                }
            )
    with transaction.atomic():
        _lock()
        for row in rows:
            ForecastSnapshot.objects.update_or_create(
                scope_key=row.pop("scope_key"),
                period_name=period.name,
                week=week,
                source=row.pop("source"),
                defaults={
                    **row,
                    "period_start": period.start,
                    "period_end": period.end,
                    "taken_on": on,
                    "actual": None,
                    "error": None,
                    "abs_pct_error": None,
                    "scored_at": None,
                },
            )
    return len(rows)


def snapshots_score(*, on: date) -> int:
    """Score every snapshot of a period that ended before ``on`` against the period's
    actual bookings (KPI engine): error = forecast - actual, APE = |error| / actual
    ("no data" when the actual is zero). Re-scoring gives the same numbers (idempotent);
    a period is re-scored when its bookings change (a late-booked deal)."""
    pending = (
        ForecastSnapshot.objects.filter(period_end__lt=on)
        .values_list("scope_key", "period_name")
        .distinct()
    )
    scored = 0
    now = timezone.now()
    for scope_key, period_name in sorted(set(pending)):
        period = period_parse(period_name)
        actual = actual_bookings(scope_key=scope_key, period=period)
        with transaction.atomic():
            _lock()
            snaps = ForecastSnapshot.objects.select_for_update().filter(
                scope_key=scope_key, period_name=period_name
            )
            for snap in snaps:
                error = calc.forecast_error(snap.value, actual)
                ape = calc.abs_pct_error(snap.value, actual)
                if snap.scored_at and snap.actual == actual:
                    continue
                snap.actual, snap.error, snap.abs_pct_error, snap.scored_at = (
                    actual,
                    error,
                    ape,
                    now,
                )
                snap.save(update_fields=["actual", "error", "abs_pct_error", "scored_at"])
                scored += 1
    return scored


def backtest_module():
    """The engine's backtest service (``backtest_run``, ``closed_periods``), or None."""
    try:
        from apps.forecasting.engine import backtest
    except ImportError:
        return None
    return backtest


def backtests_refresh(*, on: date, periods: int = 2, regions: bool = True) -> int:
    """Replay the last ``periods`` closed fiscal quarters week by week with the engine's
    backtest (only what was known each week) for the company and, with ``regions``, each
    team right below it; store the scores (replacing those scopes' previous ones).
    Returns rows stored; 0 when the engine cannot replay (too little history)."""
    backtest = backtest_module()
    if backtest is None:
        return 0
    roots = scopes.root_team_ids()
    below_root = set(Team.objects.filter(parent_id__in=roots).values_list("id", flat=True))
    targets = [
        t
        for t in scopes.all_targets()
        if t.key == scopes.COMPANY or (regions and t.team_id in below_root)
    ]
    closed = backtest.closed_periods(periods, before=on)
    labels: dict[str, str] = {}
    rows: list[BacktestScore] = []
    now = timezone.now()
    for target in targets:
        try:
            report = backtest.backtest_run(scope=target.scope, periods=closed, today=on)
        except ApplicationError:
            continue
        starts = {p.name: p.start for p in closed}
        for r in report.rows:
            label = labels.setdefault(r.method, _method_label(r.method))
            rows.append(
                BacktestScore(
                    scope_key=target.key,
                    period_name=r.period,
                    period_start=starts[r.period],
                    week=r.week,
                    as_of=r.as_of,
                    method=r.method,
                    label=label,
                    forecast=Decimal(r.forecast).quantize(CENT),
                    actual=Decimal(r.actual).quantize(CENT),
                    error=Decimal(r.error).quantize(CENT),
                    abs_pct_error=calc.abs_pct_error(Decimal(r.forecast), Decimal(r.actual)),
                    computed_at=now,
                )
            )
    with transaction.atomic():
        _lock()
        BacktestScore.objects.filter(scope_key__in=[t.key for t in targets]).delete()
        BacktestScore.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def _method_label(method: str) -> str:
    try:
        return engine_api().METHOD_LABELS.get(method, method)
    except (ApplicationError, AttributeError):
        return method


def forecasts_snapshot(*, on: date | None = None, backtest: bool = True) -> SnapshotResult:
    """The weekly job: snapshot this week's forecasts and calls, score the closed
    periods, and refresh the backtest of the last two closed quarters (company and
    regions). Records a JobRun ``forecasting.snapshot``."""
    on = on or timezone.localdate()
    with job_run_record(kind="forecasting.snapshot") as run:
        result = SnapshotResult(
            snapshots=snapshots_take(on=on),
            scored=snapshots_score(on=on),
            periods=[forecast_periods(on)[0].name],
        )
        if backtest:
            result.backtest = backtests_refresh(on=on)
        run.rows = result.snapshots + result.scored + result.backtest
        run.detail = {
            "snapshots": result.snapshots,
            "scored": result.scored,
            "backtest_rows": result.backtest,
            "on": on.isoformat(),
        }
    return result


# --- Scenarios -----------------------------------------------------------------------------


def _number(value: Any, field_name: str, low: Decimal, high: Decimal) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise ApplicationError(
            f"{field_name} must be a number.", extra={"field": field_name}
        ) from None
    if not number.is_finite() or not low <= number <= high:
        raise ApplicationError(
            f"{field_name} must be between {low} and {high}.", extra={"field": field_name}
        )
    return number


def scenario_inputs_check(
    *, growth_pct: Any, win_rate_delta_pts: Any, headcount_delta: Any, months: Any
) -> tuple[Decimal, Decimal, int, int]:
    """Validated scenario inputs (growth -50..200 %, win rate -50..50 pts, headcount
    -500..500 reps, 36..60 months)."""
    growth = _number(growth_pct, "growth_pct", Decimal(-50), Decimal(200)).quantize(CENT)
    win = _number(win_rate_delta_pts, "win_rate_delta_pts", Decimal(-50), Decimal(50)).quantize(
        CENT
    )
    heads = _number(headcount_delta, "headcount_delta", Decimal(-500), Decimal(500))
    span = _number(months, "months", Decimal(36), Decimal(60))
    if heads != heads.to_integral_value() or span != span.to_integral_value():
        raise ApplicationError(
            "Headcount and months are whole numbers.", extra={"field": "headcount_delta"}
        )
    return growth, win, int(heads), int(span)


@transaction.atomic
def scenario_save(
    *,
    user: User,
    name: str,
    growth_pct: Any,
    win_rate_delta_pts: Any,
    headcount_delta: Any,
    months: Any = 36,
) -> Scenario:
    """Save (create or overwrite by name) one of ``user``'s named scenarios."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ApplicationError(
            "Give the scenario a name (up to 80 characters).", extra={"field": "name"}
        )
    growth, win, heads, span = scenario_inputs_check(
        growth_pct=growth_pct,
        win_rate_delta_pts=win_rate_delta_pts,
        headcount_delta=headcount_delta,
        months=months,
    )
    scenario, _ = Scenario.objects.update_or_create(
        owner=user,
        name=name,
        defaults={
            "growth_pct": growth,
            "win_rate_delta_pts": win,
            "headcount_delta": heads,
            "months": span,
        },
    )
    return scenario


@transaction.atomic
def scenario_delete(*, user: User, scenario_id: int) -> None:
    deleted, _ = Scenario.objects.filter(owner=user, pk=scenario_id).delete()
    if not deleted:
        raise ApplicationError("There is no such scenario of yours.")
