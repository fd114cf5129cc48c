"""Dashboard reads that the KPI engine does not offer (yet), and the drill-down lists.

Aggregates here read only the rollup tables of :mod:`apps.kpis.models`, with the same
scope and filter rules as :mod:`apps.kpis.selectors`; ratios come from
:mod:`apps.kpis.calc`. Drill-down lists read detail rows (deals), restricted by the
visibility policy of :mod:`apps.org.policy` and then by the requested scope, and convert
each amount exactly as the rollups do (base currency at the close date's rate, rounded to
the cent per deal), so a list always adds up to the figure that was clicked.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, overload

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Case,
    Count,
    DecimalField,
    Exists,
    F,
    Field,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    When,
)
from django.db.models.functions import Round
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.core.db import without_jit
from apps.core.errors import ApplicationError
from apps.core.models import JobRun
from apps.crm.models import (
    Account,
    ForecastCategory,
    Opportunity,
    OpportunityHistory,
    Product,
    Segment,
    Stage,
)
from apps.customers.models import NpsResponse
from apps.kpis import calc
from apps.kpis.models import (
    AccountCohort,
    AccountMrrRollup,
    CloseDateMove,
    ClosedDealRollup,
    CohortRollup,
    DailyRate,
    MrrMonthRollup,
    NpsRollup,
    PipelineRollup,
    QuotaRollup,
)
from apps.kpis.selectors import KpiFilters, KpiPeriod, KpiScope
from apps.kpis.services import ROLLUP_RUN_KINDS, add_months
from apps.org.models import Region, Role, Team, User
from apps.org.policy import filter_by_owner, scope_for

CENT = Decimal("0.01")
HISTORY_BATCH = 20_000
MONEY: DecimalField[Decimal, Decimal] = DecimalField(max_digits=18, decimal_places=2)


@dataclass(frozen=True)
class DrillMetric:
    """A figure that can be drilled into: which deals make it up and what it adds."""

    key: str
    label: str
    adds: str  # "amount" (sum of base amounts) or "count" (number of rows)


DRILL_METRICS: dict[str, DrillMetric] = {
    m.key: m
    for m in (
        DrillMetric("bookings", "Bookings (won deals)", "amount"),
        DrillMetric("won_deals", "Won deals", "count"),
        DrillMetric("lost_deals", "Lost deals", "count"),
        DrillMetric("closed_deals", "Closed deals (won and lost)", "count"),
        DrillMetric("new_logos", "New logos (first won deal of an account)", "count"),
        DrillMetric("open_pipeline", "Open pipeline", "amount"),
    )
}

SORTS: dict[str, str] = {
    "close": "close_date",
    "amount": "base_amount",
    "name": "name",
    "account": "account__name",
    "owner": "owner__username",
    "stage": "stage__order",
    "created": "created_date",
}


def drill_metric(key: str) -> DrillMetric:
    try:
        return DRILL_METRICS[key]
    except KeyError:
        known = ", ".join(sorted(DRILL_METRICS))
        raise ApplicationError(f"Unknown figure {key!r}; choose one of {known}.") from None


def _base_amount():
    """The deal amount in the base currency at its close date's rate, rounded to cents."""
    rate = DailyRate.objects.filter(currency=OuterRef("currency"), day=OuterRef("close_date"))
    return Case(
        When(currency=settings.BASE_CURRENCY, then=F("amount")),
        default=Round(F("amount") * Subquery(rate.values("rate")[:1]), 2),
        output_field=MONEY,
    )


def _deal_filter_q(scope: KpiScope, filters: KpiFilters) -> Q:
    q = Q()
    if scope.owner_ids is not None:
        q &= Q(owner_id__in=scope.owner_ids)
    if filters.region is not None:
        q &= Q(account__region_id=filters.region)
    if filters.segment is not None:
        q &= Q(account__segment=filters.segment)
    if filters.product is not None:
        q &= Q(product_id=filters.product)
    if filters.deal_type is not None:
        q &= Q(deal_type=filters.deal_type)
    return q


def drilldown_deals(
    *,
    user: User,
    metric: str,
    period: KpiPeriod,
    scope: KpiScope,
    filters: KpiFilters,
    stage_id: int | None = None,
    forecast_category: str | None = None,
) -> QuerySet[Opportunity]:
    """The deals behind ``metric`` for ``period`` (close dates within its bounds,
    inclusive), the scope and the filters, each annotated with ``base_amount``.

    ``stage_id`` and ``forecast_category`` narrow open pipeline (a funnel bar or a stacked
    bar segment). The visibility policy applies first, whatever the scope asked for."""
    spec = drill_metric(metric)
    if forecast_category is not None and forecast_category not in ForecastCategory.values:
        raise ApplicationError(f"Unknown forecast category {forecast_category!r}.")
    if (stage_id is not None or forecast_category is not None) and spec.key != "open_pipeline":
        raise ApplicationError("A stage or forecast category narrows open pipeline only.")
    deals = filter_by_owner(Opportunity.objects.all(), scope_for(user)).filter(
        _deal_filter_q(scope, filters),
        close_date__gte=period.start,
        close_date__lte=period.end,
    )
    outcome = {
        "bookings": [Stage.Outcome.WON],
        "won_deals": [Stage.Outcome.WON],
        "new_logos": [Stage.Outcome.WON],
        "lost_deals": [Stage.Outcome.LOST],
        "closed_deals": [Stage.Outcome.WON, Stage.Outcome.LOST],
        "open_pipeline": [Stage.Outcome.OPEN],
    }[spec.key]
    deals = deals.filter(stage__outcome__in=outcome)
    if spec.key == "new_logos":
        # The account's first won deal: earliest close date, then lowest id (as the rollup).
        earlier = Opportunity.objects.filter(
            account_id=OuterRef("account_id"), stage__outcome=Stage.Outcome.WON
        ).filter(
            Q(close_date__lt=OuterRef("close_date"))
            | Q(close_date=OuterRef("close_date"), id__lt=OuterRef("id"))
        )
        deals = deals.filter(~Exists(earlier))
    if stage_id is not None:
        deals = deals.filter(stage_id=stage_id)
    if forecast_category is not None:
        deals = deals.filter(forecast_category=forecast_category)
    return deals.select_related("account", "owner", "stage", "product").annotate(
        base_amount=_base_amount()
    )


@dataclass(frozen=True)
class DrillTotals:
    deals: int
    amount: Decimal


def drilldown_totals(deals: QuerySet[Opportunity]) -> DrillTotals:
    """Count and base-currency sum of a drill-down list (one query)."""
    found = deals.order_by().aggregate(n=Count("id"), total=Sum("base_amount"))
    total = found["total"]
    if total is None:
        total = Decimal("0.00")
    elif not isinstance(total, Decimal):
        total = Decimal(str(total))
    return DrillTotals(deals=found["n"], amount=total.quantize(CENT))


# --- Pipeline aggregates (rollups) -----------------------------------------------------


def _rollup_q(scope: KpiScope, filters: KpiFilters) -> Q:
    q = Q()
    if scope.owner_ids is not None:
        q &= Q(owner_id__in=scope.owner_ids)
    for name, value in filters.as_dict().items():
        if value is not None:
            q &= Q(**{f"{name}_id" if name in ("region", "product") else name: value})
    return q


def _money(value: object) -> Decimal:
    if value is None:
        return Decimal("0.00")
    return (value if isinstance(value, Decimal) else Decimal(str(value))).quantize(CENT)


@dataclass(frozen=True)
class StageBar:
    stage_id: int
    name: str
    probability: Decimal
    deals: int
    amount: Decimal


def pipeline_by_stage(*, period: KpiPeriod, scope: KpiScope, filters: KpiFilters) -> list[StageBar]:
    """Open deals closing in ``period`` by stage, in stage order (count and base amount);
    every active open stage is listed, with zeros where it holds no deal (two queries)."""
    rows = (
        PipelineRollup.objects.filter(
            _rollup_q(scope, filters), month__gte=period.start, month__lte=period.end
        )
        .values("stage_id")
        .annotate(n=Sum("deals"), amount=Sum("amount"))
    )
    found = {r["stage_id"]: (r["n"], _money(r["amount"])) for r in rows}
    stages = Stage.objects.filter(outcome=Stage.Outcome.OPEN).order_by("order")
    return [
        StageBar(s.pk, s.name, s.probability, *found.get(s.pk, (0, Decimal("0.00"))))
        for s in stages
        if s.is_active or s.pk in found
    ]


@dataclass(frozen=True)
class CategoryMonth:
    month: date
    category: str
    deals: int
    amount: Decimal


def pipeline_by_month_and_category(
    *, period: KpiPeriod, scope: KpiScope, filters: KpiFilters
) -> dict[str, dict[date, CategoryMonth]]:
    """Open pipeline by expected close month and forecast category (one query):
    ``{category: {month: CategoryMonth}}`` over the months of ``period``."""
    rows = (
        PipelineRollup.objects.filter(
            _rollup_q(scope, filters), month__gte=period.start, month__lte=period.end
        )
        .values("month", "forecast_category")
        .annotate(n=Sum("deals"), amount=Sum("amount"))
        .order_by("month")
    )
    result: dict[str, dict[date, CategoryMonth]] = defaultdict(dict)
    for r in rows:
        cat = r["forecast_category"]
        result[cat][r["month"]] = CategoryMonth(r["month"], cat, r["n"], _money(r["amount"]))
    return dict(result)


# --- Pipeline changes since a date (from history) ---------------------------------------

WATERFALL_STEPS = (
    ("new", "New"),
    ("pulled_in", "Pulled in"),
    ("amount_up", "Amount up"),
    ("amount_down", "Amount down"),
    ("won", "Won"),
    ("lost", "Lost"),
    ("slipped_out", "Slipped out"),
)


@dataclass(frozen=True)
class PipelineChanges:
    """Open pipeline closing in a period, then (at ``since``) and now, and what moved it;
    ``start + sum(steps) == end`` (base currency, each deal converted at the rate of its
    close date in that state, as the rollups do)."""

    since: datetime
    start: Decimal
    end: Decimal
    steps: dict[str, Decimal]
    deals: dict[str, int]


def _rates(pairs: set[tuple[str, date]]) -> dict[tuple[str, date], Decimal]:
    base = settings.BASE_CURRENCY
    wanted = {(c, d) for c, d in pairs if c != base}
    if not wanted:
        return {}
    rows = DailyRate.objects.filter(
        currency__in={c for c, _ in wanted}, day__in={d for _, d in wanted}
    ).values_list("currency", "day", "rate")
    return {(c, d): r for c, d, r in rows if (c, d) in wanted}


def _convert(amount: Decimal, currency: str, day: date, rates) -> Decimal:
    if currency == settings.BASE_CURRENCY:
        return amount
    rate = rates.get((currency, day))
    if rate is None:
        raise ApplicationError(
            f"No {currency} exchange rate for {day.isoformat()}; the KPI rollups need a "
            "rebuild after rates are added."
        )
    return (amount * Decimal(str(rate))).quantize(CENT)


@dataclass(frozen=True)
class PipelineMove:
    """One deal's part in a waterfall step: its open amount in the period then and now
    (base currency, None when it was or is not open in the period) and the difference it
    makes to the step."""

    deal_id: int
    step: str
    before: Decimal | None
    after: Decimal | None
    change: Decimal


def pipeline_changes(
    *, user: User, period: KpiPeriod, scope: KpiScope, filters: KpiFilters, since: datetime
) -> PipelineChanges:
    """The waterfall of the open pipeline closing in ``period`` since ``since``: the
    totals of ``pipeline_moves`` per step.

    Rebuilding it reads every deal changed since ``since`` (at a million deals, about a
    hundred thousand for the last 30 days), so the result is cached per user, arguments
    and data version: the last finished rollup run, which follows every deal edit (an
    edit enqueues an incremental update). The moves behind it are cached with it, for the
    step drill-down. One query on a hit, six on a miss."""
    key = _changes_key(user=user, period=period, scope=scope, filters=filters, since=since)
    found = cache.get(key)
    if isinstance(found, PipelineChanges):
        return found
    start, end, moves = _moves_cached(
        key, user=user, period=period, scope=scope, filters=filters, since=since
    )
    steps = {key: Decimal("0.00") for key, _ in WATERFALL_STEPS}
    deals = {key: 0 for key, _ in WATERFALL_STEPS}
    for move in moves:
        steps[move.step] += move.change
        deals[move.step] += 1
    result = PipelineChanges(since=since, start=start, end=end, steps=steps, deals=deals)
    cache.set(key, result, CHANGES_CACHE_SECONDS)
    return result


def _moves_cached(
    key: str,
    *,
    user: User,
    period: KpiPeriod,
    scope: KpiScope,
    filters: KpiFilters,
    since: datetime,
) -> tuple[Decimal, Decimal, list[PipelineMove]]:
    """Rebuild ``pipeline_moves`` and keep each step's moves under the waterfall's ``key``
    (same viewer, arguments and data version), so the waterfall and the drill-down behind
    each of its steps share one rebuild from history, and the step totals always match
    the lists. Only the step lists are kept, not the whole list as well: a step's list
    reads its own (a third of the moves for "new" at a million deals: unpickling them all
    took 0.6 s), and pickling the 100,000 moves of the last 30 days at a million deals
    twice took 0.6 s of a cold page."""
    found = pipeline_moves(user=user, period=period, scope=scope, filters=filters, since=since)
    by_step: dict[str, list[PipelineMove]] = {step: [] for step, _ in WATERFALL_STEPS}
    for move in found[2]:
        by_step[move.step].append(move)
    cache.set_many(
        {f"{key}:moves:{step}": moves for step, moves in by_step.items()}, CHANGES_CACHE_SECONDS
    )
    return found


def _step_moves_cached(
    key: str,
    step: str,
    *,
    user: User,
    period: KpiPeriod,
    scope: KpiScope,
    filters: KpiFilters,
    since: datetime,
) -> list[PipelineMove]:
    """The moves of one step, as kept by :func:`_moves_cached` under the same ``key``
    (rebuilt and kept when they are not there)."""
    found = cache.get(f"{key}:moves:{step}")
    if isinstance(found, list):
        return found
    _, _, moves = _moves_cached(
        key, user=user, period=period, scope=scope, filters=filters, since=since
    )
    return [m for m in moves if m.step == step]


def _version(run_id: int, finished_at: datetime | None) -> str:
    # The finish time is part of it because ids alone repeat after a database restore winds
    # the sequence back, and a cached page of the data before the restore would then look
    # current.
    if finished_at is None:  # unreachable (queries exclude unfinished runs); nullable column
        return "none"
    return f"{run_id}@{finished_at.isoformat()}"


def data_version() -> str:
    """The last finished rollup run, as "id@finished_at" (one query): what cached dashboard
    results are keyed by. Every deal, quota, subscription or NPS edit enqueues a rollup
    update, so a new version follows every change within seconds."""
    found = (
        JobRun.objects.filter(
            kind__in=ROLLUP_RUN_KINDS,
            status=JobRun.Status.SUCCEEDED,
            finished_at__isnull=False,
        )
        .order_by("-id")
        .values_list("id", "finished_at")
        .first()
    )
    return "none" if found is None else _version(*found)


@dataclass(frozen=True)
class FrameState:
    """What the frame around every dashboard page shows, read in one query.

    ``last_run_at``: when the last successful background run of any kind finished (the
    data freshness), None before the first. ``data_version``: as :func:`data_version`.
    ``org_teams``: every row of the team table (id, parent id, name, manager id), for the
    KPI engine's scope check (:func:`apps.kpis.selectors.scope_resolve`). The filter bar's
    choices, limited by the visibility policy: ``teams`` (id, parent id, name) the viewer
    sees, ordered by name; ``reps`` (id, team id, first name, last name) the active reps
    they see, ordered by name; every region and product (id, name), by name;
    ``everything`` when the viewer sees the whole company. ``org_version`` is a digest of
    those choices: it changes with any rename, move, new or departed rep, team, region or
    product the viewer can see, whoever made it and however (a bulk import included),
    since it is computed from the rows themselves."""

    last_run_at: datetime | None
    data_version: str
    org_teams: tuple[tuple[int, int | None, str, int | None], ...]
    everything: bool
    teams: tuple[tuple[int, int | None, str], ...]
    reps: tuple[tuple[int, int | None, str, str], ...]
    regions: tuple[tuple[int, str], ...]
    products: tuple[tuple[int, str], ...]
    org_version: str


def frame_state(*, user: User) -> FrameState:
    """The frame's data in one query: a UNION ALL of the latest successful run, the latest
    rollup run, the team table, and the active reps the viewer may see, the regions and
    the products (small tables: a few hundred rows at most). The choices are limited by
    the viewer's scope from :func:`apps.org.policy.scope_for` (no query for an executive
    or a rep, the policy's own one for a manager, kept for the request).

    Hand-written SQL because every dashboard page runs it on every request: composing the
    same UNION of six parts with the ORM took longer than the query itself (about 3 ms a
    request on the benchmark machine, a third of the trivial page's whole time)."""
    visible = scope_for(user)
    quote = connection.ops.quote_name

    def table(model: type[Model]) -> str:
        return quote(model._meta.db_table)

    def column(model: type[Model], name: str) -> str:
        field = model._meta.get_field(name)
        assert isinstance(field, Field) and field.column  # a concrete column
        return quote(field.column)

    if visible.everything:
        reps_where, reps_params = "1 = 1", []
    elif visible.user_ids:
        placeholders = ", ".join(["%s"] * len(visible.user_ids))
        reps_where, reps_params = (
            f"{column(User, 'id')} IN ({placeholders})",
            sorted(visible.user_ids),
        )
    else:
        reps_where, reps_params = "1 = 0", []
    run_id, run_at, run_status = (column(JobRun, f) for f in ("id", "finished_at", "status"))
    kinds = ", ".join(["%s"] * len(ROLLUP_RUN_KINDS))
    runs = table(JobRun)
    # Every part has the same seven columns: part, id, two reference ids, two texts, a
    # time; the two job-run parts come first so that Postgres types the columns from them.
    sql = f"""
        SELECT 'run', {run_id}, {run_id}, {run_id}, {column(JobRun, "kind")}, '', {run_at}
          FROM {runs} WHERE {run_id} = (
            SELECT {run_id} FROM {runs} WHERE {run_status} = %s AND {run_at} IS NOT NULL
             ORDER BY {run_at} DESC, {run_id} DESC LIMIT 1)
        UNION ALL
        SELECT 'rollup', {run_id}, {run_id}, {run_id}, {column(JobRun, "kind")}, '', {run_at}
          FROM {runs} WHERE {run_id} = (
            SELECT {run_id} FROM {runs} WHERE {run_status} = %s AND {run_at} IS NOT NULL
               AND {column(JobRun, "kind")} IN ({kinds})
             ORDER BY {run_id} DESC LIMIT 1)
        UNION ALL
        SELECT 'team', {column(Team, "id")}, {column(Team, "parent")}, {column(Team, "manager")},
               {column(Team, "name")}, '', NULL
          FROM {table(Team)}
        UNION ALL
        SELECT 'rep', {column(User, "id")}, {column(User, "team")}, NULL,
               {column(User, "first_name")}, {column(User, "last_name")}, NULL
          FROM {table(User)}
         WHERE {column(User, "role")} = %s AND {column(User, "is_active")} = %s AND {reps_where}
        UNION ALL
        SELECT 'region', {column(Region, "id")}, NULL, NULL, {column(Region, "name")}, '', NULL
          FROM {table(Region)}
        UNION ALL
        SELECT 'product', {column(Product, "id")}, NULL, NULL, {column(Product, "name")}, '',
               NULL
          FROM {table(Product)}
    """
    params: list[Any] = [
        JobRun.Status.SUCCEEDED.value,
        JobRun.Status.SUCCEEDED.value,
        *ROLLUP_RUN_KINDS,
        Role.REP.value,
        True,
        *reps_params,
    ]
    rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for part, *row in cursor.fetchall():
            rows[part].append(tuple(row))
    org_teams = tuple(
        sorted((pk, parent, name, manager) for pk, parent, manager, name, _, _ in rows["team"])
    )
    teams = tuple(
        sorted(
            ((pk, parent, name) for pk, parent, name, _ in org_teams if visible.sees_team(pk)),
            key=lambda t: (t[2], t[0]),
        )
    )
    reps = tuple(
        sorted(
            ((pk, team, first, last) for pk, team, _, first, last, _ in rows["rep"]),
            key=lambda r: (r[2], r[3], r[0]),
        )
    )
    regions = tuple(sorted(((pk, name) for pk, _, _, name, _, _ in rows["region"]), key=_by_label))
    products = tuple(
        sorted(((pk, name) for pk, _, _, name, _, _ in rows["product"]), key=_by_label)
    )
    digest = hashlib.sha256(repr((visible.everything, teams, reps, regions, products)).encode())
    run = rows["run"][0] if rows["run"] else None
    rollup = rows["rollup"][0] if rows["rollup"] else None
    return FrameState(
        last_run_at=_aware(run[5]) if run else None,
        data_version=_version(rollup[0], _aware(rollup[5])) if rollup else "none",
        org_teams=org_teams,
        everything=visible.everything,
        teams=teams,
        reps=reps,
        regions=regions,
        products=products,
        org_version=digest.hexdigest(),
    )


def _aware(value: datetime | str | None) -> datetime | None:
    """A time read by hand-written SQL: SQLite returns UTC text, Postgres a datetime."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def _by_label(row: tuple[int, str]) -> tuple[str, int]:
    return row[1], row[0]


#: How long a computed waterfall is kept at most (a new rollup run replaces it sooner).
CHANGES_CACHE_SECONDS = 15 * 60


def _changes_key(
    *, user: User, period: KpiPeriod, scope: KpiScope, filters: KpiFilters, since: datetime
) -> str:
    """Cache key of a waterfall: the data version (one query), the viewer (visibility)
    and every argument."""
    version = data_version()
    owners = "all" if scope.owner_ids is None else ",".join(map(str, sorted(scope.owner_ids)))
    raw = "|".join(
        str(part)
        for part in (
            version,
            user.pk,
            period.start,
            period.end,
            owners,
            sorted(filters.as_dict().items()),
            since.isoformat(),
        )
    )
    return "dashboards:changes:" + hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class PipelineStepDeal:
    """A deal behind a waterfall step, with its part in it (base currency)."""

    deal: Opportunity
    before: Decimal | None
    after: Decimal | None
    change: Decimal


def _person(first: str, last: str, username: str) -> str:
    return (f"{first} {last}".strip() or username).lower()


#: The orders of a step's deals: the deal columns each reads and its key on them (the
#: change needs no column: it is the deal's part in the step, kept with the step).
STEP_SORTS: dict[str, tuple[tuple[str, ...], Callable[..., Any]]] = {
    "change": ((), lambda move: move.change),
    "name": (("name",), lambda move, name: name.lower()),
    "account": (("account__name",), lambda move, name: name.lower()),
    "owner": (
        ("owner__first_name", "owner__last_name", "owner__username"),
        lambda move, first, last, username: _person(first, last, username),
    ),
    "close": (("close_date",), lambda move, close: close),
}

#: Deals loaded per query when a whole step is read (the CSV download).
STEP_CHUNK = 2_000


class PipelineStepDeals(Sequence[PipelineStepDeal]):
    """The deals behind one waterfall step, in the order asked for, read a slice at a time.

    Its length and ``total`` are those of the step's moves, the figure of the step
    clicked, so a page of 50 rows costs one read of those 50 deals whatever the size of
    the step, and the rows of all pages add up to the step. (A deal deleted since the last
    rollup run still counts in the step, as in the waterfall, but is not listed.)"""

    def __init__(self, moves: list[PipelineMove]) -> None:
        self._moves = moves
        self.total = sum((m.change for m in moves), Decimal("0.00"))

    def __len__(self) -> int:
        return len(self._moves)

    @overload
    def __getitem__(self, index: int) -> PipelineStepDeal: ...

    @overload
    def __getitem__(self, index: slice) -> list[PipelineStepDeal]: ...

    def __getitem__(self, index: int | slice) -> PipelineStepDeal | list[PipelineStepDeal]:
        if isinstance(index, int):
            return self[index : index + 1 or None][0]
        moves = self._moves[index]
        deals = Opportunity.objects.select_related("account", "owner", "stage").in_bulk(
            [m.deal_id for m in moves]
        )
        return [
            PipelineStepDeal(deals[m.deal_id], m.before, m.after, m.change)
            for m in moves
            if m.deal_id in deals  # deleted since the list was ordered: left out
        ]

    def __iter__(self) -> Iterator[PipelineStepDeal]:
        for start in range(0, len(self), STEP_CHUNK):
            yield from self[start : start + STEP_CHUNK]


def pipeline_step_deals(
    *,
    user: User,
    period: KpiPeriod,
    scope: KpiScope,
    filters: KpiFilters,
    since: datetime,
    step: str,
    sort: str = "change",
) -> PipelineStepDeals:
    """The deals behind one waterfall step, ordered by ``sort`` (a key of
    :data:`STEP_SORTS`, ``-`` first for descending; equal keys keep the largest change
    first, then the deal id); their ``change`` adds up to the step of
    ``pipeline_changes`` for the same arguments. The moves come from the waterfall's cache
    (six queries when the waterfall was not computed yet); the order by change needs no
    query, the others one narrow read of the step's deals (their sort column) per 20,000
    deals. Rows are read a page at a time (:class:`PipelineStepDeals`)."""
    if step not in dict(WATERFALL_STEPS):
        raise ApplicationError(
            f"step must be one of {', '.join(k for k, _ in WATERFALL_STEPS)}; got {step!r}."
        )
    if sort.lstrip("-") not in STEP_SORTS:
        raise ApplicationError(
            f"sort must be one of {', '.join(sorted(STEP_SORTS))} (prefix - for descending)."
        )
    key = _changes_key(user=user, period=period, scope=scope, filters=filters, since=since)
    moves = _step_moves_cached(
        key, step, user=user, period=period, scope=scope, filters=filters, since=since
    )
    # Equal keys keep the largest change first, then the deal id (sorts are stable).
    moves = sorted(moves, key=lambda m: (-abs(m.change), m.deal_id))
    columns, sort_key = STEP_SORTS[sort.lstrip("-")]
    descending = sort.startswith("-")
    if not columns:
        return PipelineStepDeals(sorted(moves, key=sort_key, reverse=descending))
    # The sort column of every deal of the step: narrow rows, in batches that keep the
    # parameter list within every backend's limit.
    ids = [m.deal_id for m in moves]
    values: dict[int, list[Any]] = {}
    for chunk in range(0, len(ids), HISTORY_BATCH):
        rows = Opportunity.objects.filter(pk__in=ids[chunk : chunk + HISTORY_BATCH])
        values.update((pk, rest) for pk, *rest in rows.values_list("pk", *columns))
    listed = [m for m in moves if m.deal_id in values]
    listed.sort(key=lambda m: sort_key(m, *values[m.deal_id]), reverse=descending)
    return PipelineStepDeals(listed + [m for m in moves if m.deal_id not in values])


def pipeline_moves(
    *, user: User, period: KpiPeriod, scope: KpiScope, filters: KpiFilters, since: datetime
) -> tuple[Decimal, Decimal, list[PipelineMove]]:
    """See :func:`_pipeline_moves`; its queries run without JIT on Postgres: their
    estimates for the per-deal history lookup and rate lookup made the planner compile
    and optimise them, 0.8 s of the 2.5 s they took at a million deals."""
    with without_jit():
        return _pipeline_moves(user=user, period=period, scope=scope, filters=filters, since=since)


def _pipeline_moves(
    *, user: User, period: KpiPeriod, scope: KpiScope, filters: KpiFilters, since: datetime
) -> tuple[Decimal, Decimal, list[PipelineMove]]:
    """Rebuild the open pipeline closing in ``period`` as it stood at ``since`` from the
    deal history, and classify every difference to today's (four queries below 20,000
    changed deals).

    A deal counts "then" when its last history row at ``since`` was open and closed in the
    period, "now" when it is open and closes in the period. Then only: won, lost, or
    slipped out (still open, moved out of the period). Now only: new (created after
    ``since``) or pulled in. Both: the amount change, up or down."""
    latest = (
        OpportunityHistory.objects.filter(opportunity_id=OuterRef("pk"), changed_at__lte=since)
        .order_by("-changed_at", "-id")
        .values("id")[:1]
    )
    visible = filter_by_owner(Opportunity.objects.all(), scope_for(user)).filter(
        _deal_filter_q(scope, filters)
    )
    # A deal without a history row after ``since`` is today as it was then: it adds the
    # same amount to both ends and moves nothing. So only the deals changed since then are
    # compared (time index on history), and of those only the ones closing in the period
    # now or whose close date changed (a deal that left the period changed its close
    # date). The end total is summed over the live open deals in one aggregate and the
    # start follows from it, so ``start + sum(steps) == end`` holds by construction and
    # both equal a deal-by-deal recomputation.
    changed_since = OpportunityHistory.objects.filter(changed_at__gt=since)
    current_rows = (
        visible.filter(pk__in=changed_since.values("opportunity_id"))
        .filter(
            Q(close_date__gte=period.start, close_date__lte=period.end)
            | Q(
                pk__in=changed_since.filter(changed_fields__contains="close_date").values(
                    "opportunity_id"
                )
            )
        )
        .annotate(then_id=Subquery(latest))
        .order_by()  # the rows are classified, not shown: no sort of 100k deals
        .values_list("pk", "stage__outcome", "amount", "currency", "close_date", "then_id")
    )
    current = list(current_rows)
    end_total = (
        visible.filter(
            close_date__gte=period.start,
            close_date__lte=period.end,
            stage__outcome=Stage.Outcome.OPEN,
        )
        .annotate(base_amount=_base_amount())
        .aggregate(
            total=Sum("base_amount"), unconverted=Count("pk", filter=Q(base_amount__isnull=True))
        )
    )
    if end_total["unconverted"]:
        raise ApplicationError(
            f"{end_total['unconverted']} open deals have no exchange rate for their close "
            "date; the KPI rollups need a rebuild after rates are added."
        )
    then_ids = [row[5] for row in current if row[5] is not None]
    then: dict[int, list[Any]] = {}
    # The history rows as they stood at ``since``, by primary key (in batches, so the
    # parameter list stays within every backend's limit: one query below 20,000 deals).
    for chunk in range(0, max(len(then_ids), 1), HISTORY_BATCH):
        then.update(
            (pk, rest)
            for pk, *rest in OpportunityHistory.objects.filter(
                pk__in=then_ids[chunk : chunk + HISTORY_BATCH]
            ).values_list("pk", "stage__outcome", "amount", "currency", "close_date")
        )
    nothing = (None, None, None, None)
    rows = [(*row[:5], *then.get(row[5], nothing)) for row in current]
    pairs: set[tuple[str, date]] = set()
    for _, _, _, cur, close, _, _, then_cur, then_close in rows:
        pairs.add((cur, close))
        if then_cur is not None:
            pairs.add((then_cur, then_close))
    rates = _rates(pairs)
    moves: list[PipelineMove] = []

    def inside(day: date | None) -> bool:
        return day is not None and period.start <= day <= period.end

    for pk, outcome, amount, cur, close, then_outcome, then_amount, then_cur, then_close in rows:
        was = then_outcome == Stage.Outcome.OPEN and inside(then_close)
        now = outcome == Stage.Outcome.OPEN and inside(close)
        before = _convert(_money(then_amount), then_cur, then_close, rates) if was else None
        after = _convert(_money(amount), cur, close, rates) if now else None
        if before is not None and after is None:
            key = {Stage.Outcome.WON: "won", Stage.Outcome.LOST: "lost"}.get(outcome, "slipped_out")
            moves.append(PipelineMove(pk, key, before, None, -before))
        elif after is not None and before is None:
            key = "new" if then_outcome is None else "pulled_in"
            moves.append(PipelineMove(pk, key, None, after, after))
        elif before is not None and after is not None and after != before:
            key = "amount_up" if after > before else "amount_down"
            moves.append(PipelineMove(pk, key, before, after, after - before))
    end = _money(end_total["total"])
    start = end - sum((m.change for m in moves), Decimal("0.00"))
    return start, end, moves


# --- Aging and slipped deals (detail tables) --------------------------------------------


def aging_deals(
    *, user: User, period: KpiPeriod, scope: KpiScope, filters: KpiFilters, limit: int = 15
) -> QuerySet[Opportunity]:
    """The oldest open deals closing in ``period`` (by created date), each with the time
    of its last stage change (``stage_since``) and its base amount (two queries)."""
    stage_change = (
        OpportunityHistory.objects.filter(opportunity_id=OuterRef("pk"))
        .filter(Q(changed_fields__contains="stage") | Q(changed_fields__contains="created"))
        .order_by("-changed_at", "-id")
        .values("changed_at")[:1]
    )
    deals = drilldown_deals(
        user=user, metric="open_pipeline", period=period, scope=scope, filters=filters
    )
    # The oldest ids first, from narrow rows (the open deals of a quarter number tens of
    # thousands at a million deals: sorting them with their related rows spills to disk),
    # then the full rows of those few.
    oldest = list(
        deals.select_related(None)
        .order_by("created_date", "id")
        .values_list("pk", flat=True)[:limit]
    )
    return (
        deals.filter(pk__in=oldest)
        .annotate(stage_since=Subquery(stage_change))
        .order_by("created_date", "id")
    )


def slipped_moves(
    *, user: User, period: KpiPeriod, scope: KpiScope, filters: KpiFilters, limit: int = 15
) -> QuerySet[CloseDateMove]:
    """Close-date moves made during ``period`` out of it (old close in the period, new
    close after it) on deals still open, latest first (two queries, the second when
    evaluated)."""
    start = datetime.combine(period.start, time.min, tzinfo=timezone.get_current_timezone())
    end = datetime.combine(period.next_start, time.min, tzinfo=timezone.get_current_timezone())
    visible = filter_by_owner(Opportunity.objects.all(), scope_for(user)).filter(
        _deal_filter_q(scope, filters), stage__outcome=Stage.Outcome.OPEN
    )
    moves = CloseDateMove.objects.filter(
        changed_at__gte=start,
        changed_at__lt=end,
        old_close__gte=period.start,
        old_close__lte=period.end,
        new_close__gt=period.end,
        deal_id__in=visible.values("pk"),
    )
    # Latest first from narrow rows (time index), then the full rows of those few.
    latest = list(moves.order_by("-changed_at", "-id").values_list("pk", flat=True)[:limit])
    return CloseDateMove.objects.filter(pk__in=latest).order_by("-changed_at", "-id")


# --- Attainment per rep (rollups) --------------------------------------------------------


@dataclass(frozen=True)
class RepAttainment:
    rep_id: int
    name: str
    team: str
    bookings: Decimal
    won_deals: int
    quota: Decimal | None
    attainment: Decimal | None


def rep_attainment(*, user: User, period: KpiPeriod, scope: KpiScope) -> list[RepAttainment]:
    """Bookings, quota and attainment of every active rep in the scope that the user may
    see, for ``period`` (three queries). A rep's quota is the sum of their monthly quota
    rows (None without any), as the KPI engine's rep scope; attainment is
    :func:`apps.kpis.calc.attainment`. Sorted best first, reps without quota last."""
    visible = scope_for(user)
    candidates = User.objects.filter(role="rep", is_active=True).select_related("team")
    if scope.owner_ids is not None:
        candidates = candidates.filter(pk__in=scope.owner_ids)
    reps = [r for r in candidates if visible.sees_user(r.pk)]
    ids = [r.pk for r in reps]
    won = (
        ClosedDealRollup.objects.filter(
            owner_id__in=ids,
            outcome=Stage.Outcome.WON,
            month__gte=period.start,
            month__lte=period.end,
        )
        .values("owner_id")
        .annotate(amount=Sum("amount"), n=Sum("deals"))
    )
    booked = {r["owner_id"]: (_money(r["amount"]), r["n"]) for r in won}
    quotas = (
        QuotaRollup.objects.filter(rep_id__in=ids, month__gte=period.start, month__lte=period.end)
        .values("rep_id")
        .annotate(amount=Sum("amount"))
    )
    quota_by_rep = {r["rep_id"]: _money(r["amount"]) for r in quotas}
    rows = []
    for rep in reps:
        amount, n = booked.get(rep.pk, (Decimal("0.00"), 0))
        quota = quota_by_rep.get(rep.pk)
        rows.append(
            RepAttainment(
                rep_id=rep.pk,
                name=rep.get_full_name() or rep.username,
                team=rep.team.name if rep.team else "",
                bookings=amount,
                won_deals=n,
                quota=quota,
                attainment=calc.attainment(amount, quota),
            )
        )
    rows.sort(key=lambda r: (r.attainment is None, -(r.attainment or 0), r.name))
    return rows


NO_QUOTA = "No quota"
ATTAINMENT_BANDS = (
    ("< 50%", Decimal("0"), Decimal("0.5")),
    ("50-75%", Decimal("0.5"), Decimal("0.75")),
    ("75-100%", Decimal("0.75"), Decimal("1")),
    ("100-125%", Decimal("1"), Decimal("1.25")),
    ("≥ 125%", Decimal("1.25"), None),
)


def attainment_band(row: RepAttainment) -> str:
    """The band label of a rep's attainment (lower bound inclusive), or 'No quota'."""
    if row.attainment is None:
        return NO_QUOTA
    for label, low, high in ATTAINMENT_BANDS:
        if row.attainment >= low and (high is None or row.attainment < high):
            return label
    return ATTAINMENT_BANDS[0][0]  # a negative attainment cannot happen (amounts >= 0)


def attainment_bands(rows: list[RepAttainment]) -> list[tuple[str, int]]:
    """How many reps fall in each attainment band, reps without a quota counted apart."""
    found = [attainment_band(r) for r in rows]
    labels = [label for label, _, _ in ATTAINMENT_BANDS] + [NO_QUOTA]
    return [(label, found.count(label)) for label in labels]


# --- Rep scorecards (rollups) -----------------------------------------------------------


@dataclass
class _RepTally:
    """A rep's closed deals of the scorecard period: counts, won amount (base currency)
    and the summed sales-cycle days of the won deals."""

    won: int = 0
    lost: int = 0
    amount: Decimal = Decimal("0.00")
    days: int = 0


@dataclass(frozen=True)
class RepScorecard:
    rep_id: int
    name: str
    team: str
    bookings: Decimal
    previous_bookings: Decimal
    trend: Decimal | None  # growth of bookings vs the comparison period, a fraction
    quota: Decimal | None
    attainment: Decimal | None
    win_rate: Decimal | None
    cycle_days: Decimal | None
    deal_size: Decimal | None
    pipeline: Decimal


def rep_scorecards(
    *,
    user: User,
    period: KpiPeriod,
    compare: KpiPeriod,
    scope: KpiScope,
    filters: KpiFilters,
) -> list[RepScorecard]:
    """One scorecard per visible active rep of the scope (five queries): bookings, win
    rate, mean sales cycle and average deal size of ``period`` (deal filters applied),
    open pipeline closing in it, quota and attainment (quotas know no deal filters, so
    attainment is None when any deal filter is set), and the bookings trend against
    ``compare``. Every ratio comes from :mod:`apps.kpis.calc`. Sorted by bookings."""
    visible = scope_for(user)
    candidates = User.objects.filter(role="rep", is_active=True).select_related("team")
    if scope.owner_ids is not None:
        candidates = candidates.filter(pk__in=scope.owner_ids)
    reps = [r for r in candidates if visible.sees_user(r.pk)]
    ids = [r.pk for r in reps]
    first, last = min(period.start, compare.start), max(period.end, compare.end)
    closed = (
        ClosedDealRollup.objects.filter(
            _rollup_q(scope, filters), owner_id__in=ids, month__gte=first, month__lte=last
        )
        .values("owner_id", "outcome", "month")
        .annotate(n=Sum("deals"), amount=Sum("amount"), days=Sum("cycle_days"))
    )
    now: dict[int, _RepTally] = defaultdict(_RepTally)
    before: dict[int, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for row in closed:
        in_period = period.start <= row["month"] <= period.end
        in_compare = compare.start <= row["month"] <= compare.end
        won = row["outcome"] == Stage.Outcome.WON
        if in_period:
            card = now[row["owner_id"]]
            if won:
                card.won += row["n"]
                card.amount += _money(row["amount"])
                card.days += int(row["days"] or 0)
            else:
                card.lost += row["n"]
        if in_compare and won:
            before[row["owner_id"]] += _money(row["amount"])
    pipeline = (
        PipelineRollup.objects.filter(
            _rollup_q(scope, filters),
            owner_id__in=ids,
            month__gte=period.start,
            month__lte=period.end,
        )
        .values("owner_id")
        .annotate(amount=Sum("amount"))
    )
    open_amount = {r["owner_id"]: _money(r["amount"]) for r in pipeline}
    quota_by_rep: dict[int, Decimal] = {}
    if not any(v is not None for v in filters.as_dict().values()):
        quotas = (
            QuotaRollup.objects.filter(
                rep_id__in=ids, month__gte=period.start, month__lte=period.end
            )
            .values("rep_id")
            .annotate(amount=Sum("amount"))
        )
        quota_by_rep = {r["rep_id"]: _money(r["amount"]) for r in quotas}
    cards = []
    for rep in reps:
        c = now[rep.pk]
        quota = quota_by_rep.get(rep.pk)
        cards.append(
            RepScorecard(
                rep_id=rep.pk,
                name=rep.get_full_name() or rep.username,
                team=rep.team.name if rep.team else "",
                bookings=c.amount,
                previous_bookings=before[rep.pk],
                trend=calc.growth(c.amount, before[rep.pk]),
                quota=quota,
                attainment=calc.attainment(c.amount, quota),
                win_rate=calc.win_rate(c.won, c.lost),
                cycle_days=calc.mean(c.days, c.won),
                deal_size=calc.average_deal_size(c.amount, c.won),
                pipeline=open_amount.get(rep.pk, Decimal("0.00")),
            )
        )
    cards.sort(key=lambda card: (-card.bookings, card.name))
    return cards


# --- Customers (rollups) ----------------------------------------------------------------


def _account_rollup_q(filters: KpiFilters) -> Q:
    q = Q()
    if filters.region is not None:
        q &= Q(region_id=filters.region)
    if filters.segment is not None:
        q &= Q(segment=filters.segment)
    return q


@dataclass(frozen=True)
class MrrMovement:
    """MRR changes over one month (base currency): from the month's first day to the
    next month's first day, per account. Rises are positive, falls negative."""

    month: date
    new: Decimal
    expansion: Decimal
    contraction: Decimal
    churn: Decimal


def mrr_movements(*, period: KpiPeriod, filters: KpiFilters) -> list[MrrMovement]:
    """New (from 0), expansion, contraction and churn (to 0) MRR for each month of
    ``period``, from the MRR month summary (one query); company-wide, filtered by the
    account's region and segment."""
    rows = (
        MrrMonthRollup.objects.filter(
            _account_rollup_q(filters), month__gte=period.start, month__lte=period.end
        )
        .values("month")
        .annotate(
            new=Sum("new"),
            expansion=Sum("expansion"),
            contraction=Sum("contraction"),
            churn=Sum("churn"),
        )
        .order_by("month")
    )
    found = {r["month"]: r for r in rows}
    result = []
    for month in period.months:
        r = found.get(month)
        if r is None:
            result.append(MrrMovement(month, *(Decimal("0.00"),) * 4))
            continue
        result.append(
            MrrMovement(
                month,
                _money(r["new"]),
                _money(r["expansion"]),
                _money(r["contraction"]),
                -_money(r["churn"]),
            )
        )
    return result


@dataclass(frozen=True)
class Cohorts:
    """Logo retention: ``rows`` maps a cohort month (first month with MRR) to the share of
    its accounts still paying 0, 1, 2... months later (None: not reached yet)."""

    months: list[date]
    sizes: dict[date, int]
    rows: dict[date, list[Decimal | None]]


def cohort_retention(*, period: KpiPeriod, filters: KpiFilters, cohorts: int = 12) -> Cohorts:
    """Cohorts of the ``cohorts`` months ending with the period's last month, or with the
    current month when the period runs on (one query over the cohort rollup).
    An account belongs to the month it first had MRR (on a month's first day); a later
    month counts it retained when it still has MRR on that month's first day."""
    today = timezone.localdate()
    # The rollup carries months ahead of today (a subscription without an end is paying
    # until it ends), which would show as retention that has not happened yet.
    last = min(date(period.end.year, period.end.month, 1), date(today.year, today.month, 1))
    first = add_months(last, -(cohorts - 1))
    counts: dict[tuple[date, date], int] = defaultdict(int)
    for cohort, month, n in (
        CohortRollup.objects.filter(
            _account_rollup_q(filters),
            cohort__gte=first,
            cohort__lte=last,
            month__gte=first,
            month__lte=last,
        )
        .values("cohort", "month")
        .annotate(n=Sum("accounts"))
        .values_list("cohort", "month", "n")
    ):
        counts[(cohort, month)] = n
    months = [add_months(first, k) for k in range(cohorts)]
    # Every account pays in its cohort month: the cohort's size is its first cell's count.
    sizes = {m: counts[(m, m)] for m in months}
    rows: dict[date, list[Decimal | None]] = {}
    for index, month in enumerate(months):
        rows[month] = [
            calc.ratio(counts[(month, months[index + k])], sizes[month])
            if index + k < len(months)
            else None
            for k in range(cohorts)
        ]
    return Cohorts(months, sizes, rows)


@dataclass(frozen=True)
class CohortMember:
    """An account of a cohort and its MRR on the first day of the month looked at (base
    currency; 0 when it no longer pays)."""

    account_id: int
    name: str
    segment: str
    mrr: Decimal

    @property
    def paying(self) -> bool:
        return self.mrr > 0


def cohort_members(*, cohort: date, month: date, filters: KpiFilters) -> list[CohortMember]:
    """The accounts whose first month with MRR is ``cohort`` (first days of months), with
    their MRR on ``month``'s first day (three queries); the paying share is the cell of
    ``cohort_retention`` for that cohort and month."""
    paying = AccountMrrRollup.objects.filter(_account_rollup_q(filters), mrr__gt=0)
    ids = list(
        AccountCohort.objects.filter(_account_rollup_q(filters), cohort=cohort).values_list(
            "account_id", flat=True
        )
    )
    mrr = dict(paying.filter(month=month, account_id__in=ids).values_list("account_id", "mrr"))
    accounts = Account.objects.filter(pk__in=ids).values_list("pk", "name", "segment")
    rows = [CohortMember(pk, name, segment, _money(mrr.get(pk))) for pk, name, segment in accounts]
    rows.sort(key=lambda r: (not r.paying, r.name.lower(), r.account_id))
    return rows


@dataclass(frozen=True)
class NpsSplit:
    label: str
    promoters: int
    passives: int
    detractors: int

    @property
    def responses(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def score(self) -> Decimal | None:
        return calc.net_promoter_score(self.promoters, self.passives, self.detractors)


def nps_by_segment(*, period: KpiPeriod, filters: KpiFilters) -> list[NpsSplit]:
    """Promoters, passives and detractors of the period per account segment (one query
    over the NPS rollup); the score from :func:`apps.kpis.calc.net_promoter_score`."""
    rows = (
        NpsRollup.objects.filter(
            _account_rollup_q(filters), month__gte=period.start, month__lte=period.end
        )
        .values("segment")
        .annotate(p=Sum("promoters"), n=Sum("passives"), d=Sum("detractors"))
    )
    found = {r["segment"]: r for r in rows}
    return [
        NpsSplit(label, found[value]["p"], found[value]["n"], found[value]["d"])
        for value, label in Segment.choices
        if value in found
    ]


@dataclass(frozen=True)
class AccountMrr:
    account_id: int
    name: str
    segment: str
    opening: Decimal
    closing: Decimal

    @property
    def change(self) -> Decimal:
        return self.closing - self.opening


def account_mrr(*, period: KpiPeriod, filters: KpiFilters) -> list[AccountMrr]:
    """Every account with MRR on the period's first day (opening) or on the first day
    after it (closing), base currency, from the account MRR rollup (two queries), largest
    closing MRR first. The closing column adds up to the MRR KPI; over the rows with
    opening > 0, closing / opening is the NRR KPI."""
    last_month = date(period.end.year, period.end.month, 1)
    opening = dict(
        AccountMrrRollup.objects.filter(
            _account_rollup_q(filters), month=period.start, mrr__gt=0
        ).values_list("account_id", "mrr")
    )
    closing_rows = AccountMrrRollup.objects.filter(
        _account_rollup_q(filters), month=last_month
    ).values_list("account_id", "next_mrr")
    closing = {a: m for a, m in closing_rows if m and m > 0}
    ids = set(opening) | set(closing)
    accounts = {
        pk: (name, segment)
        for pk, name, segment in Account.objects.filter(pk__in=ids).values_list(
            "pk", "name", "segment"
        )
    }
    rows = [
        AccountMrr(
            account_id=pk,
            name=accounts.get(pk, (f"Account {pk}", ""))[0],
            segment=accounts.get(pk, ("", ""))[1],
            opening=_money(opening.get(pk)),
            closing=_money(closing.get(pk)),
        )
        for pk in ids
    ]
    rows.sort(key=lambda r: (-r.closing, -r.opening, r.name))
    return rows


# How one account's MRR moved over one month, exactly as ``mrr_movements`` classifies it
# (opening: MRR on the month's first day; closing: on the next month's first day), so the
# accounts of one movement add up, through their change, to that movement's bar.
MRR_MOVEMENTS: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "new": lambda opening, closing: opening <= 0 < closing,
    "expansion": lambda opening, closing: 0 < opening < closing,
    "contraction": lambda opening, closing: 0 < closing < opening,
    "churn": lambda opening, closing: opening > 0 >= closing,
}


def accounts_by_movement(
    rows: list[AccountMrr], *, period: KpiPeriod, movement: str
) -> list[AccountMrr]:
    """The rows of ``account_mrr`` for one fiscal month whose MRR moved as ``movement``
    (new, expansion, contraction, churn); the sum of their ``change`` is that month's bar
    of ``mrr_movements`` (churn and contraction negative). Movements are monthly, so a
    longer period is refused rather than reclassified."""
    if movement not in MRR_MOVEMENTS:
        raise ApplicationError(
            f"movement must be one of {', '.join(MRR_MOVEMENTS)}; got {movement!r}."
        )
    if len(period.months) != 1:
        raise ApplicationError(
            f"movement needs a single month as period (such as 2025-07); got {period.name!r}."
        )
    moved = MRR_MOVEMENTS[movement]
    return [r for r in rows if moved(r.opening, r.closing)]


NPS_GROUPS = {"promoters": (9, 10), "passives": (7, 8), "detractors": (0, 6)}


def nps_responses(
    *, period: KpiPeriod, filters: KpiFilters, group: str | None = None
) -> QuerySet[NpsResponse]:
    """Survey answers given in ``period`` (bounds inclusive), filtered by the account's
    region and segment, optionally one group (promoters 9-10, passives 7-8, detractors
    0-6); the rows the NPS figures are counted from (indexed by answer date)."""
    if group is not None and group not in NPS_GROUPS:
        raise ApplicationError(f"group must be one of {', '.join(NPS_GROUPS)}; got {group!r}.")
    answers = NpsResponse.objects.filter(
        responded_on__gte=period.start, responded_on__lte=period.end
    )
    if filters.region is not None:
        answers = answers.filter(account__region_id=filters.region)
    if filters.segment is not None:
        answers = answers.filter(account__segment=filters.segment)
    if group is not None:
        low, high = NPS_GROUPS[group]
        answers = answers.filter(score__gte=low, score__lte=high)
    return answers.select_related("account")


def nps_response_totals(answers: QuerySet[NpsResponse]) -> NpsSplit:
    """Promoters, passives and detractors of a response list (one query)."""
    found = answers.order_by().aggregate(
        p=Count("id", filter=Q(score__gte=9)),
        n=Count("id", filter=Q(score__gte=7, score__lte=8)),
        d=Count("id", filter=Q(score__lte=6)),
    )
    return NpsSplit("Responses", found["p"], found["n"], found["d"])
