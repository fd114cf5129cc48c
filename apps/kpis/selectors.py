"""Reads of KPIs: every screen, digest, export and API endpoint gets its numbers here.

``kpi_value`` answers any registered KPI for a period, a scope (company, team subtree or
rep) and filters (region, segment, product, deal type), with the previous period's and the
year-ago value and a time series. It reads the rollup tables (plus indexed detail queries
for medians and slipped deals) in a fixed number of queries whatever the data size, and
applies the visibility policy of :mod:`apps.org.policy`.

Attribution: a deal counts for its owner (rep scope) and for its owner's *current* team
and every team above it (team scope); region and segment are the account's.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import Aggregate, F, FloatField, Func, IntegerField, Q, Sum

from apps.core.db import without_jit
from apps.core.errors import ApplicationError
from apps.crm.models import Account, Opportunity, OpportunityHistory, Stage
from apps.kpis import calc
from apps.kpis.models import (
    RETENTION_SPANS,
    SLIPPED_SPANS,
    AccountMrrRollup,
    CloseDateMove,
    ClosedDealRollup,
    MrrMonthRollup,
    NpsRollup,
    PipelineRollup,
    QuotaRollup,
    RetentionRollup,
    SlippedDealRollup,
    StageEntryRollup,
)
from apps.kpis.registry import Kpi, kpi_get
from apps.kpis.services import add_months, stage_levels
from apps.org.models import Team, User
from apps.org.policy import scope_for, subtree_ids
from apps.quotas import fiscal

CENT = Decimal("0.01")
SERIES_LENGTH = {"month": 12, "quarter": 8, "year": 5}


class KpiPermissionError(ApplicationError):
    """The user may not see the requested scope (API: 403)."""


# --- Periods -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KpiPeriod:
    """A fiscal month/quarter/year or an explicit range of whole months (bounds inclusive)."""

    name: str
    kind: str
    start: date
    end: date

    @property
    def next_start(self) -> date:
        return self.end + timedelta(days=1)

    @property
    def months(self) -> tuple[date, ...]:
        result, month = [], self.start
        while month <= self.end:
            result.append(month)
            month = add_months(month, 1)
        return tuple(result)


def _from_fiscal(period: fiscal.Period) -> KpiPeriod:
    return KpiPeriod(period.name, period.kind, period.start, period.end)


def _range(start: date, months: int) -> KpiPeriod:
    end = add_months(start, months) - timedelta(days=1)
    return KpiPeriod(f"{start.isoformat()}..{end.isoformat()}", "range", start, end)


def period_parse(text: str) -> KpiPeriod:
    """``FY2024``, ``2024-Q3``, ``2024-07`` (fiscal, per FISCAL_YEAR_START_MONTH) or an
    explicit range ``2024-01-01..2024-06-30`` of whole calendar months."""
    raw = (text or "").strip()
    if not raw:
        raise ApplicationError("A period is required, e.g. 2024-Q3, 2024-07 or FY2024.")
    if ".." in raw:
        left, _, right = raw.partition("..")
        try:
            start, end = date.fromisoformat(left.strip()), date.fromisoformat(right.strip())
        except ValueError:
            raise ApplicationError(
                f"{raw!r} is not a date range; use YYYY-MM-DD..YYYY-MM-DD."
            ) from None
        if end < start:
            raise ApplicationError(f"{raw!r}: the range ends before it starts.")
        if start.day != 1 or (end + timedelta(days=1)).day != 1:
            raise ApplicationError(
                f"{raw!r}: a range must cover whole months (start on the 1st, end on the "
                "last day of a month), because KPIs are kept by month."
            )
        months = (end.year - start.year) * 12 + end.month - start.month + 1
        return _range(start, months)
    try:
        return _from_fiscal(fiscal.parse_period(raw, settings.FISCAL_YEAR_START_MONTH))
    except fiscal.FiscalError as exc:
        raise ApplicationError(str(exc)) from None


def period_shift(period: KpiPeriod, steps: int) -> KpiPeriod:
    """The period ``steps`` periods of the same kind and length later (negative: earlier)."""
    start_month = settings.FISCAL_YEAR_START_MONTH
    if period.kind == "range":
        length = len(period.months)
        return _range(add_months(period.start, steps * length), length)
    base = fiscal.period_containing(period.start, period.kind, start_month)  # type: ignore[arg-type]
    return _from_fiscal(fiscal.shift(base, steps, start_month))


def period_year_ago(period: KpiPeriod) -> KpiPeriod:
    if period.kind == "range":
        return _range(add_months(period.start, -12), len(period.months))
    start_month = settings.FISCAL_YEAR_START_MONTH
    base = fiscal.period_containing(period.start, period.kind, start_month)  # type: ignore[arg-type]
    return _from_fiscal(fiscal.year_ago(base, start_month))


def period_series(period: KpiPeriod) -> list[KpiPeriod]:
    """The periods charted with ``period``: for a fiscal period the last N of its kind
    ending with it (12 months, 8 quarters, 5 years); for a range, each of its months."""
    if period.kind == "range":
        return [_range(m, 1) for m in period.months]
    n = SERIES_LENGTH[period.kind]
    return [period_shift(period, -k) for k in range(n - 1, -1, -1)]


def _trailing_year(period: KpiPeriod) -> KpiPeriod:
    """The twelve months ending with the period's last month."""
    last_month = date(period.end.year, period.end.month, 1)
    return _range(add_months(last_month, -11), 12)


def _aware(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))


# --- Scopes and filters ------------------------------------------------------------------


@dataclass(frozen=True)
class KpiScope:
    """Resolved scope: ``owner_ids`` None means the whole company."""

    kind: str
    team_id: int | None = None
    rep_id: int | None = None
    owner_ids: frozenset[int] | None = None
    label: str = "Company"


@dataclass(frozen=True)
class KpiFilters:
    region: int | None = None
    segment: str | None = None
    product: int | None = None
    deal_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "segment": self.segment,
            "product": self.product,
            "deal_type": self.deal_type,
        }


def scope_resolve(
    *,
    user: User,
    team_id: int | None = None,
    rep_id: int | None = None,
    teams: Sequence[tuple[int, int | None, str, int | None]] | None = None,
) -> KpiScope:
    """Turn a requested scope into owner ids, checking visibility. With neither a team nor
    a rep: the company for those who see everything, a manager's own team, a rep's self.

    ``teams``: every row of the team table as (id, parent id, name, manager id), when the
    caller has read it in this request (the dashboards' frame does); read here otherwise.

    Queries, once :func:`apps.org.policy.scope_for` has resolved the viewer (it keeps the
    result for the request): none for the company; one for a rep (the name); for a team
    one read of the team table (names, tree and managers at once; none with ``teams``)
    and one of the people in the subtree, except a manager's own team when it is their
    whole visible scope, whose people the policy already holds.
    """
    if team_id is not None and rep_id is not None:
        raise ApplicationError("Ask for a team or a rep, not both.")
    visible = scope_for(user)
    if team_id is None and rep_id is None and visible.everything:
        return KpiScope(kind="company")
    if rep_id is None:
        if team_id is not None and not visible.sees_team(team_id):
            raise KpiPermissionError("You may not see this team's numbers.")
        # id, parent, name and manager of every team (a small table): the default team,
        # the team's name and its subtree from one read.
        if teams is None:
            teams = list(Team.objects.values_list("id", "parent_id", "name", "manager_id"))
        if team_id is None:  # a manager's own (first) team, else nobody's manager
            managed = [pk for pk, _, _, manager in teams if manager == user.pk]
            team_id = min(managed, default=None)
            if team_id is not None and not visible.sees_team(team_id):
                raise KpiPermissionError("You may not see this team's numbers.")
    if team_id is not None:
        assert teams is not None
        name = next((label for pk, _, label, _ in teams if pk == team_id), None)
        if name is None:
            raise ApplicationError(f"There is no team with id {team_id}.")
        tree: dict[int | None, list[int]] = {}
        for pk, parent_id, _, _ in teams:
            tree.setdefault(parent_id, []).append(pk)
        subtree = subtree_ids([team_id], tree)
        if not visible.everything and subtree == visible.team_ids:
            # The viewer's whole scope: the policy's people are the people of these teams
            # and the viewer, who belongs here only as a member of one of them.
            owners = visible.user_ids
            if user.team_id not in subtree:
                owners = owners - {user.pk}
        else:
            owners = frozenset(
                User.objects.filter(team_id__in=subtree).values_list("id", flat=True)
            )
        return KpiScope(kind="team", team_id=team_id, owner_ids=owners, label=name)
    rep_id = user.pk if rep_id is None else rep_id
    if not visible.sees_user(rep_id):
        raise KpiPermissionError("You may not see this person's numbers.")
    rep = User.objects.filter(pk=rep_id).values_list("first_name", "last_name", "username")
    found = rep.first()
    if found is None:
        raise ApplicationError(f"There is no user with id {rep_id}.")
    label = " ".join(p for p in found[:2] if p) or found[2]
    return KpiScope(kind="rep", rep_id=rep_id, owner_ids=frozenset({rep_id}), label=label)


def _deal_q(scope: KpiScope, filters: KpiFilters, prefix: str = "") -> Q:
    """Scope + filters on a rollup row (``prefix`` '' ) or an opportunity (``prefix``
    'account__' for account fields)."""
    account = "account__" if prefix else ""
    q = Q()
    if scope.owner_ids is not None:
        q &= Q(owner_id__in=scope.owner_ids)
    if filters.region is not None:
        q &= Q(**{f"{account}region_id": filters.region})
    if filters.segment is not None:
        q &= Q(**{f"{account}segment": filters.segment})
    if filters.product is not None:
        q &= Q(product_id=filters.product)
    if filters.deal_type is not None:
        q &= Q(deal_type=filters.deal_type)
    return q


def _account_q(filters: KpiFilters) -> Q:
    q = Q()
    if filters.region is not None:
        q &= Q(region_id=filters.region)
    if filters.segment is not None:
        q &= Q(segment=filters.segment)
    return q


def _money(value: Any) -> Decimal:
    """A database sum as Decimal cents (SQLite sums floats; Postgres returns Decimal)."""
    if value is None:
        return Decimal("0.00")
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    return value.quantize(CENT)


# --- Data loaders (one query each, covering every period asked for) ---------------------


@dataclass
class _MonthTotals:
    won: int = 0
    lost: int = 0
    won_amount: Decimal = field(default_factory=lambda: Decimal("0.00"))
    lost_amount: Decimal = field(default_factory=lambda: Decimal("0.00"))
    won_cycle_days: int = 0
    new_logos: int = 0
    open_deals: int = 0
    open_amount: Decimal = field(default_factory=lambda: Decimal("0.00"))
    weighted: Decimal = field(default_factory=lambda: Decimal("0.00"))

    def add(self, other: _MonthTotals) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


#: Rollup rows already loaded in the current ``kpi_batch`` (None outside of one).
_BATCH: contextvars.ContextVar[dict[tuple, Any] | None] = contextvars.ContextVar(
    "kpi_batch", default=None
)


@contextlib.contextmanager
def kpi_batch() -> Iterator[None]:
    """Share rollup reads between the ``kpi_value`` calls made inside the block (one page
    asking for bookings, win rate, deal size... of the same scope and months reads the
    closed-deal rollup once). Use it for one request only: rows are not refreshed inside."""
    token = _BATCH.set({})
    try:
        yield
    finally:
        _BATCH.reset(token)


class _Loader:
    """Loads rollup rows for one request, once per source, over the union of months."""

    def __init__(self, scope: KpiScope, filters: KpiFilters, first: date, last: date) -> None:
        self.scope, self.filters, self.first, self.last = scope, filters, first, last
        self._closed: dict[date, _MonthTotals] | None = None
        self._pipeline: dict[date, _MonthTotals] | None = None
        batch = _BATCH.get()
        if batch is not None:
            key = (scope, filters, first, last)
            self._closed = batch.get(("closed", *key))
            self._pipeline = batch.get(("pipeline", *key))

    def _remember(self, source: str, data: dict[date, _MonthTotals]) -> None:
        batch = _BATCH.get()
        if batch is not None:
            batch[(source, self.scope, self.filters, self.first, self.last)] = data

    def closed(self) -> dict[date, _MonthTotals]:
        if self._closed is None:
            rows = (
                ClosedDealRollup.objects.filter(
                    _deal_q(self.scope, self.filters),
                    month__gte=self.first,
                    month__lte=self.last,
                )
                .values("month", "outcome")
                .annotate(
                    n=Sum("deals"),
                    amount=Sum("amount"),
                    days=Sum("cycle_days"),
                    logos=Sum("new_logos"),
                )
            )
            data: dict[date, _MonthTotals] = defaultdict(_MonthTotals)
            for row in rows:
                totals = data[row["month"]]
                if row["outcome"] == Stage.Outcome.WON:
                    totals.won += row["n"]
                    totals.won_amount += _money(row["amount"])
                    totals.won_cycle_days += int(row["days"] or 0)
                    totals.new_logos += row["logos"]
                else:
                    totals.lost += row["n"]
                    totals.lost_amount += _money(row["amount"])
            self._closed = data
            self._remember("closed", data)
        return self._closed

    def pipeline(self) -> dict[date, _MonthTotals]:
        if self._pipeline is None:
            rows = (
                PipelineRollup.objects.filter(
                    _deal_q(self.scope, self.filters),
                    month__gte=self.first,
                    month__lte=self.last,
                )
                .values("month")
                .annotate(n=Sum("deals"), amount=Sum("amount"), weighted=Sum("weighted_amount"))
            )
            data: dict[date, _MonthTotals] = defaultdict(_MonthTotals)
            for row in rows:
                totals = data[row["month"]]
                totals.open_deals += row["n"]
                totals.open_amount += _money(row["amount"])
                totals.weighted += _money(row["weighted"])
            self._pipeline = data
            self._remember("pipeline", data)
        return self._pipeline

    def totals(self, period: KpiPeriod, *, pipeline: bool = False) -> _MonthTotals:
        source = self.pipeline() if pipeline else self.closed()
        result = _MonthTotals()
        for month in period.months:
            if month in source:
                result.add(source[month])
        return result


def _span(periods: Iterable[KpiPeriod]) -> tuple[date, date]:
    items = list(periods)
    return min(p.start for p in items), max(p.end for p in items)


# --- Per-KPI computation -------------------------------------------------------------------


def _quota_by_period(scope: KpiScope, periods: list[KpiPeriod]) -> dict[str, Decimal | None]:
    """Quota per period for the scope, from the monthly quota rollup (one query).

    Rep: the rep's monthly quotas. Team (or company): per month, the team's own quota when
    one is set (the top-down target), else the sum of the quotas of the reps in its subtree.
    A period without any quota row has no quota (None).
    """
    first, last = _span(periods)
    if scope.kind == "rep":
        q = Q(rep_id=scope.rep_id)
        team_ids: set[int] = set()
    elif scope.kind == "team":
        team_ids = {scope.team_id} if scope.team_id is not None else set()
        q = Q(team_id__in=team_ids) | Q(rep_id__in=scope.owner_ids or [])
    else:
        team_ids = set(
            Team.objects.filter(kind=Team.Kind.COMPANY, parent__isnull=True).values_list(
                "id", flat=True
            )
        )
        q = Q(team_id__in=team_ids) | Q(rep_id__isnull=False)
    team_month: dict[date, Decimal] = defaultdict(Decimal)
    rep_month: dict[date, Decimal] = defaultdict(Decimal)
    for month, rep_id, team_id, amount in QuotaRollup.objects.filter(
        q, month__gte=first, month__lte=last
    ).values_list("month", "rep_id", "team_id", "amount"):
        if team_id is not None and team_id in team_ids:
            team_month[month] += _money(amount)
        elif rep_id is not None:
            rep_month[month] += _money(amount)
    result: dict[str, Decimal | None] = {}
    for period in periods:
        total, found = Decimal("0.00"), False
        for month in period.months:
            if month in team_month:
                total, found = total + team_month[month], True
            elif month in rep_month:
                total, found = total + rep_month[month], True
        result[period.name] = total if found else None
    return result


class _Median(Aggregate):
    """Postgres ``percentile_cont(0.5)``: the median computed in the database."""

    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def _median_cycle(
    scope: KpiScope, filters: KpiFilters, periods: list[KpiPeriod]
) -> dict[str, Decimal | None]:
    """Median created -> close days of won deals, per period: one indexed detail query
    (won deals by close date). Postgres computes the medians itself; elsewhere the day
    counts are fetched and the median taken here."""
    first, last = _span(periods)
    won = Opportunity.objects.filter(
        _deal_q(scope, filters, prefix="opp"),
        stage__outcome=Stage.Outcome.WON,
        close_date__gte=first,
        close_date__lte=last,
    )
    if connection.vendor == "postgresql":
        days = Func(
            F("close_date"),
            F("created_date"),
            arg_joiner=" - ",
            template="(%(expressions)s)",
            output_field=IntegerField(),
        )
        medians = won.aggregate(
            **{
                f"p{i}": _Median(days, filter=Q(close_date__gte=p.start, close_date__lte=p.end))
                for i, p in enumerate(periods)
            }
        )
        return {
            p.name: None if medians[f"p{i}"] is None else Decimal(repr(medians[f"p{i}"]))
            for i, p in enumerate(periods)
        }
    cycles = [
        (close, (close - created).days)
        for close, created in won.values_list("close_date", "created_date")
    ]
    return {
        p.name: calc.median(days for close, days in cycles if p.start <= close <= p.end)
        for p in periods
    }


@contextlib.contextmanager
def _report_cursor() -> Iterator[Any]:
    """A cursor for the hand-written report queries. On Postgres, without JIT: these run
    in milliseconds, and compiling them (prompted by pessimistic estimates for their
    correlated lookups) costs more than running them."""
    with without_jit(), connection.cursor() as cursor:
        yield cursor


def _deal_sql(scope: KpiScope, filters: KpiFilters) -> tuple[str, list[Any]]:
    """Scope and filters as SQL over ``o`` (opportunity) and ``a`` (account)."""
    where = ""
    params: list[Any] = []
    if scope.owner_ids is not None:
        owners = sorted(scope.owner_ids) or [0]
        where += f" AND o.owner_id IN ({', '.join(['%s'] * len(owners))})"
        params += owners
    for column, value in (
        ("a.region_id", filters.region),
        ("a.segment", filters.segment),
        ("o.product_id", filters.product),
        ("o.deal_type", filters.deal_type),
    ):
        if value is not None:
            where += f" AND {column} = %s"
            params.append(value)
    return where, params


def _slipped(scope: KpiScope, filters: KpiFilters, periods: list[KpiPeriod]) -> dict[str, int]:
    """Slipped deals per period: one query over the slipped-deal rollup for periods of 1,
    3 or 12 months (every fiscal period), plus one over the close-date moves
    (:func:`_slipped_from_moves`) when a range of another length is asked for. A deal
    is in one rollup row per period (its dimensions), so the rows add up under any scope
    and filter; both read the same definition."""
    fast = [p for p in periods if len(p.months) in SLIPPED_SPANS]
    slow = [p for p in periods if len(p.months) not in SLIPPED_SPANS]
    result = _slipped_from_moves(scope, filters, slow) if slow else {}
    if not fast:
        return result
    match = Q()
    for span in sorted({len(p.months) for p in fast}):
        match |= Q(months=span, month__in=sorted({p.start for p in fast if len(p.months) == span}))
    rows = (
        SlippedDealRollup.objects.filter(match, _deal_q(scope, filters))
        .values("month", "months")
        .annotate(deals=Sum("deals"))
    )
    found = {(row["month"], row["months"]): int(row["deals"] or 0) for row in rows}
    for p in fast:
        result[p.name] = found.get((p.start, len(p.months)), 0)
    return result


def _slipped_from_moves(
    scope: KpiScope, filters: KpiFilters, periods: list[KpiPeriod]
) -> dict[str, int]:
    """Slipped deals per period in one query: the close-date moves made during a period
    from inside it to after it (detail table indexed by change time), kept when the deal's
    last history row before the period ended is still open and after the period (one
    index lookup on (deal, time) each)."""
    quote = connection.ops.quote_name
    hist, stage = quote(OpportunityHistory._meta.db_table), quote(Stage._meta.db_table)
    opp, account = quote(Opportunity._meta.db_table), quote(Account._meta.db_table)
    moves = quote(CloseDateMove._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(periods))
    period_params: list[Any] = []
    for index, p in enumerate(periods):
        period_params += [
            index,
            p.start,
            p.end,
            adapt(_aware(p.start)),
            adapt(_aware(p.next_start)),
        ]
    cast = (
        "k, CAST(ps AS date), CAST(pe AS date), CAST(ws AS timestamptz), CAST(we AS timestamptz)"
        if connection.vendor == "postgresql"
        else "k, ps, pe, ws, we"
    )
    where, params = _deal_sql(scope, filters)
    # The deal and its account are looked up only when a scope or filter needs them.
    joins = (
        f"JOIN {opp} o ON o.id = mv.deal_id JOIN {account} a ON a.id = o.account_id"
        if where
        else ""
    )
    sql = f"""
        WITH raw_periods (k, ps, pe, ws, we) AS (VALUES {values}),
        periods (k, ps, pe, ws, we) AS (SELECT {cast} FROM raw_periods),
        moves AS (
            SELECT p.k, p.pe, p.we, mv.deal_id AS deal
            FROM periods p
            JOIN {moves} mv ON mv.changed_at >= p.ws AND mv.changed_at < p.we
                AND mv.new_close > p.pe AND mv.old_close >= p.ps AND mv.old_close <= p.pe
            {joins}
            WHERE 1 = 1{where}
        )
        SELECT m.k, COUNT(DISTINCT m.deal) FROM moves m
        WHERE EXISTS (
            SELECT 1 FROM (
                SELECT h3.close_date, h3.stage_id FROM {hist} h3
                WHERE h3.opportunity_id = m.deal AND h3.changed_at < m.we
                ORDER BY h3.changed_at DESC, h3.id DESC LIMIT 1
            ) state_at_end
            WHERE state_at_end.close_date > m.pe
              AND state_at_end.stage_id IN (SELECT id FROM {stage} WHERE outcome = 'open')
          )
        GROUP BY m.k
    """
    with _report_cursor() as cursor:
        cursor.execute(sql, [*period_params, *params])
        found = {int(k): int(n) for k, n in cursor.fetchall()}
    return {p.name: found.get(index, 0) for index, p in enumerate(periods)}


def _stage_conversion(
    scope: KpiScope, filters: KpiFilters, periods: list[KpiPeriod], level: int
) -> dict[str, Decimal | None]:
    first, last = _span(periods)
    rows = (
        StageEntryRollup.objects.filter(
            _deal_q(scope, filters), level=level, month__gte=first, month__lte=last
        )
        .values("month")
        .annotate(entered=Sum("entered"), advanced=Sum("advanced"))
    )
    by_month = {r["month"]: (r["entered"], r["advanced"]) for r in rows}
    result: dict[str, Decimal | None] = {}
    for p in periods:
        entered = sum(by_month.get(m, (0, 0))[0] for m in p.months)
        advanced = sum(by_month.get(m, (0, 0))[1] for m in p.months)
        result[p.name] = calc.stage_conversion(entered, advanced)
    return result


@dataclass(frozen=True)
class _Retention:
    totals: calc.RetentionTotals
    mrr: Decimal
    active_accounts: int


def _retention(filters: KpiFilters, periods: list[KpiPeriod]) -> dict[str, _Retention]:
    """Opening/closing MRR sums for every period: one query over the retention and MRR
    month summaries for periods of 1, 3 or 12 months (every fiscal period), plus one over
    the account rows (:func:`_retention_from_accounts`) when a range of another length is
    asked for. Both read the same definitions, so they give the same figures."""
    fast = [p for p in periods if len(p.months) in RETENTION_SPANS]
    slow = [p for p in periods if len(p.months) not in RETENTION_SPANS]
    result = _retention_from_accounts(filters, slow) if slow else {}
    if not fast:
        return result
    quote = connection.ops.quote_name
    retention, months_table = (
        quote(RetentionRollup._meta.db_table),
        quote(MrrMonthRollup._meta.db_table),
    )
    where = ""
    params: list[Any] = []
    if filters.region is not None:
        where += " AND region_id = %s"
        params.append(filters.region)
    if filters.segment is not None:
        where += " AND segment = %s"
        params.append(filters.segment)
    openings = sorted({p.start for p in fast})
    spans = sorted({len(p.months) for p in fast})
    closings = sorted({p.next_start for p in fast})

    def marks(items: Sequence[object]) -> str:
        return ", ".join(["%s"] * len(items))

    sql = f"""
        SELECT 0, month, months, SUM(opening), SUM(retained), SUM(closing), SUM(accounts),
               SUM(churned)
        FROM {retention}
        WHERE month IN ({marks(openings)}) AND months IN ({marks(spans)}){where}
        GROUP BY month, months
        UNION ALL
        SELECT 1, month, 0, SUM(mrr), SUM(paying), 0, 0, 0
        FROM {months_table}
        WHERE month IN ({marks(closings)}){where}
        GROUP BY month
    """
    kept: dict[tuple[date, int], tuple[Any, ...]] = {}
    closing: dict[date, tuple[Any, ...]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [*openings, *spans, *params, *closings, *params])
        for kind, month, span, *sums in cursor.fetchall():
            if isinstance(month, str):  # SQLite answers a UNION's dates as text
                month = date.fromisoformat(month)
            if kind == 0:
                kept[(month, int(span))] = tuple(sums)
            else:
                closing[month] = tuple(sums)
    for p in fast:
        row = kept.get((p.start, len(p.months)), (None,) * 5)
        mrr, active = closing.get(p.next_start, (None, None))[:2]
        totals = calc.RetentionTotals(
            opening=_money(row[0]),
            retained=_money(row[1]),
            closing=_money(row[2]),
            accounts=int(row[3] or 0),
            churned=int(row[4] or 0),
        )
        result[p.name] = _Retention(totals, _money(mrr), int(active or 0))
    return result


def _retention_from_accounts(
    filters: KpiFilters, periods: list[KpiPeriod]
) -> dict[str, _Retention]:
    """Opening/closing MRR sums for every period in one query over the account MRR rollup:
    the accounts of the opening month start (index on month), each matched with its row at
    the closing month start (index on month, account)."""
    table = connection.ops.quote_name(AccountMrrRollup._meta.db_table)

    def account_filter(alias: str) -> tuple[str, list[Any]]:
        where = ""
        params: list[Any] = []
        if filters.region is not None:
            where += f" AND {alias}.region_id = %s"
            params.append(filters.region)
        if filters.segment is not None:
            where += f" AND {alias}.segment = %s"
            params.append(filters.segment)
        return where, params

    where_a, params_a = account_filter("a")
    where_m, params_m = account_filter("m")
    values = ", ".join(["(%s, %s, %s)"] * len(periods))
    period_params: list[Any] = []
    for index, p in enumerate(periods):
        period_params += [index, p.start, p.next_start]
    cast = "k, CAST(o AS date), CAST(c AS date)" if connection.vendor == "postgresql" else "k, o, c"
    # The same months again as literal lists, so the month index prunes the rows read.
    openings = ", ".join(["%s"] * len(periods))
    closings = openings
    opening_params = [p.start for p in periods]
    closing_params = [p.next_start for p in periods]
    sql = f"""
        WITH raw_periods (k, o, c) AS (VALUES {values}),
        periods (k, o, c) AS (SELECT {cast} FROM raw_periods),
        kept AS (
            SELECT p.k, SUM(a.mrr) AS opening,
                   SUM(CASE WHEN COALESCE(b.mrr, 0) < a.mrr THEN COALESCE(b.mrr, 0)
                            ELSE a.mrr END) AS retained,
                   SUM(COALESCE(b.mrr, 0)) AS closing,
                   COUNT(*) AS accounts,
                   SUM(CASE WHEN COALESCE(b.mrr, 0) <= 0 THEN 1 ELSE 0 END) AS churned
            FROM periods p
            JOIN {table} a ON a.month = p.o AND a.mrr > 0{where_a}
            LEFT JOIN {table} b ON b.month = p.c AND b.account_id = a.account_id
                AND b.month IN ({closings})
            WHERE a.month IN ({openings})
            GROUP BY p.k
        ),
        closing AS (
            SELECT p.k, SUM(m.mrr) AS mrr, SUM(CASE WHEN m.mrr > 0 THEN 1 ELSE 0 END) AS active
            FROM periods p
            JOIN {table} m ON m.month = p.c{where_m}
            WHERE m.month IN ({closings})
            GROUP BY p.k
        )
        SELECT p.k, kept.opening, kept.retained, kept.closing, kept.accounts, kept.churned,
               closing.mrr, closing.active
        FROM periods p
        LEFT JOIN kept ON kept.k = p.k
        LEFT JOIN closing ON closing.k = p.k
    """
    with _report_cursor() as cursor:
        cursor.execute(
            sql,
            [
                *period_params,
                *params_a,
                *closing_params,
                *opening_params,
                *params_m,
                *closing_params,
            ],
        )
        found = {int(row[0]): row[1:] for row in cursor.fetchall()}
    result: dict[str, _Retention] = {}
    for index, p in enumerate(periods):
        row = found.get(index, (None,) * 7)
        totals = calc.RetentionTotals(
            opening=_money(row[0]),
            retained=_money(row[1]),
            closing=_money(row[2]),
            accounts=int(row[3] or 0),
            churned=int(row[4] or 0),
        )
        result[p.name] = _Retention(totals, _money(row[5]), int(row[6] or 0))
    return result


def _monthly_churn(filters: KpiFilters, first: date, last: date) -> dict[date, Decimal | None]:
    """Logo churn of each month in [first, last]: of the accounts with MRR > 0 on the
    month's first day, the share with MRR 0 on the next month's first day (one query)."""
    rows = (
        MrrMonthRollup.objects.filter(_account_q(filters), month__gte=first, month__lte=last)
        .values("month")
        .annotate(accounts=Sum("paying"), churned=Sum("churned"))
        .filter(accounts__gt=0)
    )
    return {r["month"]: calc.ratio(r["churned"], r["accounts"]) for r in rows}


def _nps(filters: KpiFilters, periods: list[KpiPeriod]) -> dict[str, Decimal | None]:
    first, last = _span(periods)
    rows = (
        NpsRollup.objects.filter(_account_q(filters), month__gte=first, month__lte=last)
        .values("month")
        .annotate(p=Sum("promoters"), n=Sum("passives"), d=Sum("detractors"))
    )
    by_month = {r["month"]: (r["p"], r["n"], r["d"]) for r in rows}
    result: dict[str, Decimal | None] = {}
    for period in periods:
        counts = [by_month.get(m, (0, 0, 0)) for m in period.months]
        result[period.name] = calc.net_promoter_score(
            sum(c[0] for c in counts), sum(c[1] for c in counts), sum(c[2] for c in counts)
        )
    return result


# --- The one entry point -----------------------------------------------------------------

Value = Decimal | int | None

_CLOSED = frozenset(
    {
        "bookings",
        "won_deals",
        "lost_deals",
        "win_rate",
        "win_rate_value",
        "avg_deal_size",
        "sales_cycle_mean",
        "new_logos",
        "bookings_growth",
        "bookings_growth_yoy",
        "pipeline_velocity",
        "attainment",
        "pipeline_coverage",
    }
)
_PIPELINE = frozenset(
    {"open_pipeline", "weighted_pipeline", "pipeline_velocity", "pipeline_coverage"}
)
_RETENTION = frozenset({"mrr", "arr", "grr", "nrr", "logo_churn", "clv"})


@dataclass(frozen=True)
class KpiResult:
    """A KPI for one period and scope. ``value``/``previous``/``year_ago`` are None when
    there is no data; ``series`` lists (period name, value) oldest first, ending with the
    period itself."""

    kpi: Kpi
    period: KpiPeriod
    previous_period: KpiPeriod
    year_ago_period: KpiPeriod
    scope: KpiScope
    filters: KpiFilters
    value: Value
    previous: Value
    year_ago: Value
    series: tuple[tuple[str, Value], ...]
    stage_id: int | None = None

    @property
    def unit(self) -> str:
        return self.kpi.unit


def _conversion_level(stage_id: int | None) -> tuple[int, int | None]:
    """The open-stage level of ``stage_id`` (default: the first open stage)."""
    levels, n_open = stage_levels()
    if n_open == 0:
        raise ApplicationError("Stage conversion needs at least one open stage.")
    if stage_id is None:
        first = next(sid for sid, level in levels.items() if level == 1)
        return 1, first
    level = levels.get(stage_id)
    if level is None:
        raise ApplicationError(f"There is no stage with id {stage_id}.")
    if not 1 <= level <= n_open:
        raise ApplicationError("Stage conversion is measured from an open stage.")
    return level, stage_id


def _compute(
    kpi: Kpi,
    scope: KpiScope,
    filters: KpiFilters,
    periods: list[KpiPeriod],
    level: int,
) -> dict[str, Value]:
    name = kpi.name
    extra: list[KpiPeriod] = []
    if name == "bookings_growth":
        extra = [period_shift(p, -1) for p in periods]
    elif name == "bookings_growth_yoy":
        extra = [period_year_ago(p) for p in periods]
    elif name == "pipeline_velocity":
        extra = [_trailing_year(p) for p in periods]
    first, last = _span([*periods, *extra])
    loader = _Loader(scope, filters, first, last)

    if name in ("quota", "attainment", "pipeline_coverage"):
        quotas = _quota_by_period(scope, periods)
    if name == "sales_cycle_median":
        return dict(_median_cycle(scope, filters, periods))
    if name == "slipped_deals":
        return dict(_slipped(scope, filters, periods))
    if name == "stage_conversion":
        return dict(_stage_conversion(scope, filters, periods, level))
    if name == "nps":
        return dict(_nps(filters, periods))
    if name in _RETENTION:
        retention = _retention(filters, periods)
        churn: dict[date, Decimal | None] = {}
        if name == "clv":
            trailing = [_trailing_year(p) for p in periods]
            churn = _monthly_churn(filters, *_span(trailing))
        margin = settings.GROSS_MARGIN
        out: dict[str, Value] = {}
        for i, p in enumerate(periods):
            r = retention[p.name]
            if name == "mrr":
                out[p.name] = r.mrr
            elif name == "arr":
                out[p.name] = calc.arr(r.mrr)
            elif name == "grr":
                out[p.name] = calc.gross_revenue_retention(r.totals)
            elif name == "nrr":
                out[p.name] = calc.net_revenue_retention(r.totals)
            elif name == "logo_churn":
                out[p.name] = calc.logo_churn_rate(r.totals)
            else:
                monthly = calc.average_rate([churn.get(m) for m in trailing[i].months])
                out[p.name] = calc.customer_lifetime_value(
                    r.mrr, r.active_accounts, margin, monthly
                )
        return out

    out = {}
    for p in periods:
        t = loader.totals(p) if name in _CLOSED else _MonthTotals()
        o = loader.totals(p, pipeline=True) if name in _PIPELINE else _MonthTotals()
        if name == "bookings":
            out[p.name] = t.won_amount
        elif name == "won_deals":
            out[p.name] = t.won
        elif name == "lost_deals":
            out[p.name] = t.lost
        elif name == "win_rate":
            out[p.name] = calc.win_rate(t.won, t.lost)
        elif name == "win_rate_value":
            out[p.name] = calc.win_rate_by_value(t.won_amount, t.lost_amount)
        elif name == "avg_deal_size":
            out[p.name] = calc.average_deal_size(t.won_amount, t.won)
        elif name == "sales_cycle_mean":
            out[p.name] = calc.mean(t.won_cycle_days, t.won)
        elif name == "new_logos":
            out[p.name] = t.new_logos
        elif name == "bookings_growth":
            before = loader.totals(period_shift(p, -1)).won_amount
            out[p.name] = calc.growth(t.won_amount, before)
        elif name == "bookings_growth_yoy":
            before = loader.totals(period_year_ago(p)).won_amount
            out[p.name] = calc.growth(t.won_amount, before)
        elif name == "open_pipeline":
            out[p.name] = o.open_amount
        elif name == "weighted_pipeline":
            out[p.name] = o.weighted
        elif name == "pipeline_velocity":
            year = loader.totals(_trailing_year(p))
            out[p.name] = calc.pipeline_velocity(
                o.open_deals,
                calc.win_rate(year.won, year.lost),
                calc.average_deal_size(year.won_amount, year.won),
                calc.mean(year.won_cycle_days, year.won),
            )
        elif name == "quota":
            out[p.name] = quotas[p.name]
        elif name == "attainment":
            out[p.name] = calc.attainment(t.won_amount, quotas[p.name])
        elif name == "pipeline_coverage":
            out[p.name] = calc.pipeline_coverage(o.open_amount, quotas[p.name], t.won_amount)
        else:  # pragma: no cover - the registry and this dispatch are kept in step by a test
            raise ApplicationError(f"No computation for KPI {name!r}.")
    return out


def kpi_value(
    *,
    name: str,
    period: KpiPeriod | str,
    user: User,
    team_id: int | None = None,
    rep_id: int | None = None,
    filters: KpiFilters | None = None,
    stage_id: int | None = None,
    scope: KpiScope | None = None,
) -> KpiResult:
    """One KPI for ``period`` and the requested scope, with its previous-period and
    year-ago values and a series. Raises ApplicationError for anything it cannot answer
    (unknown KPI, bad period, unsupported scope or filter) and KpiPermissionError when the
    user may not see the scope.

    ``scope``: a scope already resolved by :func:`scope_resolve` for this ``user`` (a page
    asking for many KPIs resolves it once); ``team_id``/``rep_id`` must then be left out."""
    kpi = kpi_get(name)
    filters = filters or KpiFilters()
    if isinstance(period, str):
        period = period_parse(period)
    if stage_id is not None and name != "stage_conversion":
        raise ApplicationError("Only stage conversion takes a stage.")
    if scope is None:
        scope = scope_resolve(user=user, team_id=team_id, rep_id=rep_id)
    elif team_id is not None or rep_id is not None:
        raise ApplicationError("Pass a resolved scope or a team/rep, not both.")
    kpi.check(scope=scope.kind, filters=filters.as_dict())
    level, stage = _conversion_level(stage_id) if name == "stage_conversion" else (0, None)
    previous, year_ago = period_shift(period, -1), period_year_ago(period)
    series = period_series(period)
    wanted: dict[str, KpiPeriod] = {p.name: p for p in [*series, period, previous, year_ago]}
    values = _compute(kpi, scope, filters, list(wanted.values()), level)
    return KpiResult(
        kpi=kpi,
        period=period,
        previous_period=previous,
        year_ago_period=year_ago,
        scope=scope,
        filters=filters,
        value=values[period.name],
        previous=values[previous.name],
        year_ago=values[year_ago.name],
        series=tuple((p.name, values[p.name]) for p in series),
        stage_id=stage,
    )
