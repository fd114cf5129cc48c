"""Forecast calls and snapshots for the demo company (called by ``seed_demo``).

The demo's deals and their history are generated; managers' calls are not in that data, so
they are synthesised here, deterministically for a seed:

- For the previous fiscal quarter (closed) every team's manager calls every week. A team's
  roll-up in week w of W is its own members' actual bookings of the quarter times a factor
  growing from 0.6 to 1.0 (commit) and 0.95 to 1.35 (best case), plus its child teams'
  calls of the same week; the manager's call is that roll-up with a judgement of about
  +/- 6 %. Calls are scored against the real bookings, so the accuracy table has data.
- For the current quarter, weeks 1 to the week containing ``as_of``: the own part is the
  team members' real won-to-date plus open Commit (Best case) deals today, scaled from 0.8
  in week 1 to 1.0 in the current week; children and judgement as above.
- Weekly snapshots of the engine's methods (company and each region, as of each past
  week, using only what was known then) and of the calls; the closed quarter is scored,
  and the engine's backtest of the closed quarter is stored for the company.

The stored roll-up of each seeded call is the synthesised one, so adjustments shown for
demo calls are consistent with the demo's own arithmetic.
"""

from __future__ import annotations

import logging
import random
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.forecasting import calc, scopes, services
from apps.forecasting.models import ForecastCall, ForecastSnapshot
from apps.forecasting.selectors import owner_deals
from apps.kpis.selectors import KpiPeriod, period_shift
from apps.org.models import Role, Team, User

logger = logging.getLogger(__name__)
CENT = Decimal("0.01")


def _q(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def _moment(day: date) -> datetime:
    return datetime.combine(day, time(16, 0), tzinfo=ZoneInfo(settings.TIME_ZONE))


def _order(teams: list[Team]) -> list[Team]:
    """Teams deepest first, so children call before their parents."""
    parents = {t.pk: t.parent_id for t in teams}

    def depth(team: Team) -> int:
        level, parent = 0, team.parent_id
        while parent is not None and level < 50:
            level, parent = level + 1, parents.get(parent)
        return level

    return sorted(teams, key=lambda t: (-depth(t), t.name))


def _caller(team: Team, executive: User | None) -> User | None:
    if team.parent_id is None:
        return executive or team.manager
    return team.manager


def _seed_quarter(
    *,
    period: KpiPeriod,
    weeks: int,
    teams: list[Team],
    own_commit: dict[int, Decimal],
    own_best: dict[int, Decimal],
    factor,
    executive: User | None,
    rng: random.Random,
    now: datetime,
) -> list[ForecastCall]:
    calls: list[ForecastCall] = []
    children: dict[int, list[int]] = {}
    for team in teams:
        if team.parent_id is not None:
            children.setdefault(team.parent_id, []).append(team.pk)
    for week in range(1, weeks + 1):
        at = min(_moment(period.start + timedelta(days=7 * (week - 1) + 2)), now)
        week_calls: dict[int, tuple[Decimal, Decimal]] = {}
        for team in _order(teams):
            caller = _caller(team, executive)
            f_commit, f_best = factor(week)
            rollup_commit = own_commit.get(team.pk, Decimal(0)) * Decimal(str(f_commit))
            rollup_best = own_best.get(team.pk, Decimal(0)) * Decimal(str(f_best))
            for child in children.get(team.pk, []):
                if child in week_calls:
                    rollup_commit += week_calls[child][0]
                    rollup_best += week_calls[child][1]
            rollup_commit, rollup_best = _q(rollup_commit), _q(max(rollup_best, rollup_commit))
            commit = _q(rollup_commit * Decimal(str(1 + rng.gauss(0.0, 0.06))))
            best = _q(max(commit, rollup_best * Decimal(str(1 + rng.gauss(0.02, 0.06)))))
            week_calls[team.pk] = (commit, best)
            if caller is None:
                continue
            calls.append(
                ForecastCall(
                    team=team,
                    submitted_by=caller,
                    period_name=period.name,
                    period_start=period.start,
                    period_end=period.end,
                    week=calc.week_of_period(timezone.localtime(at).date(), period.start),
                    commit=commit,
                    best_case=best,
                    rollup_commit=rollup_commit,
                    rollup_best_case=rollup_best,
                    comment=rng.choice(COMMENTS) if rng.random() < 0.4 else "",
                    submitted_at=at,
                )
            )
    return calls


COMMENTS = (
    "Two enterprise deals slipped a week; holding the number.",
    "Upside from the renewal cycle, not in commit yet.",
    "Pulled one deal in from next quarter.",
    "Legal review on the largest deal; keeping it in best case.",
    "Pipeline coverage is thin for the last month.",
    "Confident: most of commit is in contract stage.",
)


def _own_members(teams: list[Team]) -> dict[int, list[int]]:
    members: dict[int, list[int]] = {}
    for user_id, team_id in User.objects.filter(team__in=teams).values_list("id", "team_id"):
        members.setdefault(team_id, []).append(user_id)
    return members


def _snapshot_rows(
    *, period: KpiPeriod, weeks: int, calls: list[ForecastCall], targets, as_of: date
) -> list[ForecastSnapshot]:
    roots = scopes.root_team_ids()
    rows: list[ForecastSnapshot] = []
    for call in calls:
        key = scopes.team_key(call.team_id, roots)
        for source, label, value in (
            ("call_commit", "Manager call: commit", call.commit),
            ("call_best_case", "Manager call: best case", call.best_case),
        ):
            rows.append(
                ForecastSnapshot(
                    scope_key=key,
                    team_id=None if key == scopes.COMPANY else call.team_id,
                    period_name=period.name,
                    period_start=period.start,
                    period_end=period.end,
                    week=call.week,
                    taken_on=timezone.localtime(call.submitted_at).date(),
                    source=source,
                    label=label,
                    value=value,
                )
            )
    try:
        api = services.engine_api()
        with api.reusing_data():  # one load of the deal history for every call
            for week in range(1, weeks + 1):
                day = min(period.start + timedelta(days=7 * (week - 1) + 2), as_of)
                for target in targets:
                    for m in api.forecasts_compute(scope=target.scope, period=period, as_of=day):
                        rows.append(
                            ForecastSnapshot(
                                scope_key=target.key,
                                team_id=target.team_id,
                                period_name=period.name,
                                period_start=period.start,
                                period_end=period.end,
                                week=week,
                                taken_on=day,
                                source=m.method,
                                label=m.label,
                                value=_q(m.expected),
                                p10=None if m.p10 is None else _q(m.p10),
                                p90=None if m.p90 is None else _q(m.p90),
                            )
                        )
    except Exception:  # the demo still gets its calls when the engine cannot run
        logger.exception("demo: method snapshots skipped")
    return rows


def forecast_demo_seed(*, as_of: date, seed: int) -> dict:
    """Synthesise managers' calls for the previous and current fiscal quarter as of
    ``as_of``, weekly snapshots of methods and calls, and score the closed quarter.
    Deterministic for (``seed``, data); replaces what it seeded before for those quarters.
    Returns counts: ``{"calls", "snapshots", "scored", "backtest_rows", "periods"}``."""
    rng = random.Random(seed)
    current = services.forecast_periods(as_of)[0]
    previous = period_shift(current, -1)
    teams = list(Team.objects.filter(is_active=True).select_related("manager"))
    if not teams:
        return {"calls": 0, "snapshots": 0, "scored": 0, "periods": []}
    executive = (
        User.objects.filter(role=Role.EXECUTIVE, is_active=True, title__iexact="CSO").first()
        or User.objects.filter(role=Role.EXECUTIVE, is_active=True).order_by("id").first()
    )
    members = _own_members(teams)
    now = timezone.now()
    roots = scopes.root_team_ids()

    # Previous quarter: own members' actual bookings (team subtree minus child subtrees).
    subtree_actual = {
        t.pk: services.actual_bookings(scope_key=scopes.team_key(t.pk, roots), period=previous)
        for t in teams
    }
    own_actual: dict[int, Decimal] = {}
    for team in teams:
        kids = [t.pk for t in teams if t.parent_id == team.pk]
        own_actual[team.pk] = max(
            subtree_actual[team.pk] - sum((subtree_actual[k] for k in kids), Decimal(0)),
            Decimal(0),
        )
    prev_weeks = calc.week_of_period(previous.end, previous.start)
    prev_calls = _seed_quarter(
        period=previous,
        weeks=prev_weeks,
        teams=teams,
        own_commit=own_actual,
        own_best=own_actual,
        factor=lambda w: (0.6 + 0.4 * w / prev_weeks, 1.35 - 0.4 * w / prev_weeks),
        executive=executive,
        rng=rng,
        now=now,
    )

    # Current quarter: own members' real won-to-date + open Commit / Best case today.
    deals = owner_deals(owner_ids={u for ids in members.values() for u in ids}, period=current)
    own_commit = {
        t: sum((deals[u].commit for u in ids if u in deals), Decimal(0))
        for t, ids in members.items()
    }
    own_best = {
        t: sum((deals[u].best_case for u in ids if u in deals), Decimal(0))
        for t, ids in members.items()
    }
    cur_weeks = calc.week_of_period(as_of, current.start)
    cur_calls = _seed_quarter(
        period=current,
        weeks=cur_weeks,
        teams=teams,
        own_commit=own_commit,
        own_best=own_best,
        factor=lambda w: (0.8 + 0.2 * w / cur_weeks, 0.8 + 0.2 * w / cur_weeks),
        executive=executive,
        rng=rng,
        now=now,
    )

    regions = {t.pk for t in teams if t.parent_id in roots}
    targets = [t for t in scopes.all_targets() if t.key == scopes.COMPANY or t.team_id in regions]
    snapshots = _snapshot_rows(
        period=previous, weeks=prev_weeks, calls=prev_calls, targets=targets, as_of=as_of
    ) + _snapshot_rows(
        period=current, weeks=cur_weeks, calls=cur_calls, targets=targets, as_of=as_of
    )
    with transaction.atomic():
        names = [previous.name, current.name]
        ForecastCall.objects.filter(period_name__in=names, team__in=teams).delete()
        ForecastSnapshot.objects.filter(period_name__in=names).delete()
        ForecastCall.objects.bulk_create(prev_calls + cur_calls, batch_size=500)
        # One row per (scope, period, week, source): a later duplicate wins.
        unique = {(s.scope_key, s.period_name, s.week, s.source): s for s in snapshots}
        ForecastSnapshot.objects.bulk_create(list(unique.values()), batch_size=500)
    scored = services.snapshots_score(on=as_of)
    try:
        replayed = services.backtests_refresh(on=as_of, periods=1, regions=False)
    except Exception:  # the demo keeps its calls and snapshots without a backtest
        logger.exception("demo: backtest skipped")
        replayed = 0
    return {
        "calls": len(prev_calls) + len(cur_calls),
        "snapshots": len(unique),
        "scored": scored,
        "backtest_rows": replayed,
        "periods": [previous.name, current.name],
    }
