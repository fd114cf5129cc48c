"""Writes for the KPI rollups: full rebuild, incremental update of changed months and of
the (month, owner) cells of changed deals, and the coalescing queues that link domain
writes to the update task.

How a rebuild stays correct for readers and writers:
- Everything happens in ONE transaction (INSERT ... SELECT ... GROUP BY; a full rebuild on
  Postgres writes only the rows that changed, see _replace_all, others DELETE + INSERT), so
  a reader sees the old rollups or the new ones, never a half-built table, and a rebuild
  that dies half-way (error, killed worker) rolls back to the previous rollups.
- One rebuild or update at a time: on Postgres a transaction-level advisory lock makes the
  others wait; on SQLite the IMMEDIATE transaction (see settings) serialises writers.
- Amounts are converted to BASE_CURRENCY per record, at the rate of the record's date (close
  date for deals, the month's first day for MRR and quotas) or the latest earlier rate,
  through a dense daily rate table joined on (currency, day). A record whose currency has no
  rate on or before that date makes the run fail with the currency and date in the error:
  an amount is never silently taken at 1.0.
- Converted amounts are rounded to cents per record; weighted pipeline is rounded per deal.
"""

from __future__ import annotations

import logging
import time as time_module
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Max, Min, Q, UniqueConstraint
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.core.models import ExchangeRate
from apps.core.services import job_run_record
from apps.crm.models import Account, Opportunity, OpportunityHistory, Stage
from apps.customers.models import NpsResponse, Subscription
from apps.kpis.models import (
    RETENTION_SPANS,
    SLIPPED_SPANS,
    AccountCohort,
    AccountMrrRollup,
    CloseDateMove,
    ClosedDealRollup,
    CohortRollup,
    DailyRate,
    DealFootprint,
    DirtyDeal,
    DirtyMonth,
    MrrMonthRollup,
    NpsRollup,
    PipelineRollup,
    QuotaRollup,
    RetentionRollup,
    SlippedDealRollup,
    StageEntryRollup,
)
from apps.quotas.models import FiscalPeriod, Quota

logger = logging.getLogger(__name__)

#: Arbitrary constant identifying the rollup lock among Postgres advisory locks.
ROLLUP_LOCK_KEY = 724_113_901
#: cache.add() guard: set while an update task is queued but has not started yet.
UPDATE_PENDING_KEY = "kpis:rollups-update-pending"
#: Seconds an update waits after the first edit, so a burst of edits is one update; short,
#: because an edit should show on the dashboards within about two seconds.
UPDATE_COUNTDOWN_SECONDS = 0.5
#: How far past today (and past the last dated record) month-start MRR is precomputed, so
#: the closing MRR of any period up to a year ahead is available.
MRR_MONTHS_AHEAD = 13

#: JobRun kinds of the rollup runs; the last finished one is the rollups' data version.
ROLLUP_RUN_KINDS = ("rollups_full", "rollups_incremental")

Progress = Callable[[str], None]
#: The steps a full rebuild reports to its progress callback, in order.
REBUILD_STEPS = (
    "exchange rates",
    "rate check",
    "closed",
    "pipeline",
    "stage_entries",
    "close_date_moves",
    "slipped_deals",
    "deal_footprints",
    "quotas",
    "account_mrr",
    "customer summaries",
    "nps",
)


class MissingRateError(ApplicationError):
    """A record needs a conversion rate that core.ExchangeRate does not have."""


@dataclass
class RollupResult:
    """What a rebuild or update wrote: rows per table and the months touched (None = all)."""

    rows: dict[str, int] = field(default_factory=dict)
    months: list[date] | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


# --- Small date helpers ------------------------------------------------------------------


def month_start(day: date) -> date:
    return date(day.year, day.month, 1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _month_bounds_aware(month: date) -> tuple[datetime, datetime]:
    """[first instant, first instant of next month) of a month in TIME_ZONE."""
    tz = ZoneInfo(settings.TIME_ZONE)
    return (
        datetime.combine(month, time.min, tzinfo=tz),
        datetime.combine(add_months(month, 1), time.min, tzinfo=tz),
    )


# --- Vendor-specific SQL fragments -------------------------------------------------------


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _month_of_date(expr: str) -> str:
    """First day of the month of a date column. On Postgres by date arithmetic (the day of
    the month minus one, taken from the date): ``date_trunc`` has no date form, so it
    turned every date into a timestamp with time zone and back, which cost the closed-deal
    rollup 0.2 s of its 2.6 s at a million deals."""
    if _is_postgres():
        return f"({expr} - (date_part('day', {expr})::int - 1))"
    return f"date({expr}, 'start of month')"


def _month_of_datetime(expr: str) -> tuple[str, list[Any]]:
    """Month (first day) of a timestamp, in TIME_ZONE."""
    if _is_postgres():
        return f"CAST(date_trunc('month', {expr} AT TIME ZONE %s) AS date)", [settings.TIME_ZONE]
    return f"date(django_datetime_trunc('month', {expr}, %s, %s))", [
        settings.TIME_ZONE,
        connection.timezone_name,
    ]


def _days_between(later: str, earlier: str) -> str:
    if _is_postgres():
        return f"({later} - {earlier})"
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


def _converted(amount: str, currency: str, rate_alias: str) -> str:
    """An amount in the base currency; NULL when its rate is missing (checked before)."""
    return (
        f"CASE WHEN {currency} = %s THEN {amount} ELSE ROUND({amount} * {rate_alias}.rate, 2) END"
    )


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _date_ranges_sql(column: str, months: Sequence[date] | None) -> tuple[str, list[Any]]:
    """``AND (column in month 1 OR ...)`` as sargable range conditions; empty for all."""
    if months is None:
        return "", []
    parts, params = [], []
    for month in months:
        parts.append(f"({column} >= %s AND {column} < %s)")
        params += [month, add_months(month, 1)]
    return " AND (" + " OR ".join(parts) + ")", params


def _datetime_ranges_sql(column: str, months: Sequence[date] | None) -> tuple[str, list[Any]]:
    if months is None:
        return "", []
    parts, params = [], []
    for month in months:
        parts.append(f"({column} >= %s AND {column} < %s)")
        params += list(_month_bounds_aware(month))
    return " AND (" + " OR ".join(parts) + ")", params


def _delete(model, months: Sequence[date] | None, owner: int | None = None) -> None:
    """Delete the rows of ``months`` (None: all), of one owner's cells only if given."""
    rows = model.objects.all() if months is None else model.objects.filter(month__in=list(months))
    if owner is not None:
        rows = rows.filter(owner_id=owner)
    rows.delete()


def _owner_sql(column: str, owner: int | None) -> tuple[str, list[Any]]:
    """``AND column = owner``: a builder restricted to one owner's cells; empty for all."""
    if owner is None:
        return "", []
    return f" AND {column} = %s", [owner]


def _execute(sql: str, params: Sequence[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return max(cursor.rowcount, 0)


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        return int(cursor.fetchone()[0])


def _copy_columns(model) -> list[str]:
    """The columns a rollup row is made of: every column but a surrogate ``id``."""
    return [
        f.column
        for f in model._meta.concrete_fields
        if not (f.primary_key and f.get_internal_type() in ("AutoField", "BigAutoField"))
    ]


def _row_key(model) -> tuple[list[str], bool]:
    """Columns that identify a row of a rollup table, and whether copies of one row must
    be numbered to tell them apart: the unique grain, a real primary key, or (a table
    without either) every column plus a copy number."""
    meta = model._meta
    if meta.pk.column != "id":
        return [meta.pk.column], False
    for constraint in meta.constraints:
        if isinstance(constraint, UniqueConstraint):
            if constraint.fields:
                return [meta.get_field(name).column for name in constraint.fields], False
            names = []
            for expression in constraint.expressions:
                # _grain(): F(name), or Coalesce(F(name), 0) for a nullable key.
                found: Any = expression
                while not isinstance(found, F):
                    found = found.get_source_expressions()[0]
                names.append(meta.get_field(found.name).column)
            return names, False
    return _copy_columns(model), True


def _replace_all(model, build: Callable[[str], Any]) -> int:
    """Give a rollup table exactly the rows ``build(table)`` inserts into ``table``, for a
    full rebuild; returns how many rows that is.

    On Postgres the rows go to a temporary table first, and only the difference is
    written: one hash join on the row key finds the rows that are gone or changed (their
    old version is deleted) and the rows that are new or changed (inserted); identical
    rows are left alone. The table ends up with the same rows as DELETE + INSERT would
    give (an unchanged row keeps its surrogate ``id``), inside the caller's transaction,
    so readers still see the old or the new rollups. A nightly rebuild over mostly
    unchanged data then writes a few rows instead of millions: at 1M deals, rewriting
    every row (index entries, WAL, dead rows for vacuum) was most of the rebuild.
    SQLite (the small embedded setup) rewrites the table."""
    table = _table(model)
    if not _is_postgres():
        model.objects.all().delete()
        build(table)
        return model.objects.count()
    columns = _copy_columns(model)
    names = ", ".join(columns)
    quote = connection.ops.quote_name
    staging = quote(f"kpis_new_{model._meta.db_table}")
    changes = quote(f"kpis_changes_{model._meta.db_table}")
    nullable = {f.column for f in model._meta.concrete_fields if f.null}
    ids = {f.column for f in model._meta.concrete_fields if f.is_relation}
    key, numbered = _row_key(model)
    pk = quote(model._meta.pk.column)
    # The join key: hashable equalities only (a nullable id as 0, as the grain
    # constraints count it); the comparison of every column below is what decides.
    # The key must match one row to one row; a nullable key column that is not an id
    # would need IS NOT DISTINCT FROM, which no hash join can use: refuse it outright.
    loose = [c for c in key if c in nullable and c not in ids]
    if loose:
        raise ValueError(f"{table}: nullable key column(s) {loose} cannot be joined on")
    join = [
        f"COALESCE(n.{c}, 0) = COALESCE(t.{c}, 0)" if c in nullable else f"n.{c} = t.{c}"
        for c in key
    ]
    copy = ""
    if numbered:
        copy = f", ROW_NUMBER() OVER (PARTITION BY {names}) AS copy"
        join.append("n.copy = t.copy")
    for statement in (
        f"DROP TABLE IF EXISTS {staging}",
        f"DROP TABLE IF EXISTS {changes}",
        # Same column types (numeric scale included) as the rollup: values round alike.
        f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS "
        f"SELECT {names} FROM {table} WITH NO DATA",
    ):
        _execute(statement, [])
    build(staging)
    _execute(f"ANALYZE {staging}", [])
    new_columns = ", ".join(f"n.{c}" for c in columns)
    old_columns = ", ".join(f"t.{c}" for c in columns)
    _execute(
        f"""
        CREATE TEMPORARY TABLE {changes} ON COMMIT DROP AS
        SELECT t.old_id, n.present, {new_columns}
        FROM (SELECT {pk} AS old_id, {names}{copy} FROM {table}) t
        FULL JOIN (SELECT {names}, 1 AS present{copy} FROM {staging}) n ON {" AND ".join(join)}
        WHERE t.old_id IS NULL OR n.present IS NULL
           OR ROW({new_columns}) IS DISTINCT FROM ROW({old_columns})
        """,
        [],
    )
    _execute(
        f"DELETE FROM {table} WHERE {pk} IN "
        f"(SELECT old_id FROM {changes} WHERE old_id IS NOT NULL)",
        [],
    )
    _execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {changes} WHERE present IS NOT NULL",
        [],
    )
    rows = _count(staging)
    _execute(f"DROP TABLE {staging}", [])
    _execute(f"DROP TABLE {changes}", [])
    return rows


def _lock() -> None:
    """Serialise rollup writers. Postgres: an advisory lock released at commit/rollback.
    SQLite: the IMMEDIATE transaction already holds the database write lock."""
    if _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_LOCK_KEY])
            # The GROUP BYs sort a few hundred thousand rows per million deals; room to do
            # it in memory, for this transaction only.
            cursor.execute("SET LOCAL work_mem = '256MB'")


# --- Exchange rates ----------------------------------------------------------------------


def _needed_rate_dates() -> dict[str, date]:
    """Latest date any record needs a rate for, per non-base currency."""
    base = settings.BASE_CURRENCY
    latest: dict[str, date] = {}

    def keep(currency: str, day: date | None) -> None:
        if day is not None and currency != base:
            latest[currency] = max(day, latest.get(currency, day))

    for currency, day in (
        Opportunity.objects.exclude(currency=base)
        .values("currency")
        .annotate(last=Max("close_date"))
        .values_list("currency", "last")
    ):
        keep(currency, day)
    months = _mrr_months()
    # The last month-start row also holds the MRR of the month after it.
    horizon = add_months(months[-1], 1) if months else None
    for currency in (
        Subscription.objects.exclude(currency=base).values_list("currency", flat=True).distinct()
    ):
        keep(currency, horizon)
    for currency, day in (
        Quota.objects.exclude(currency=base)
        .values("currency")
        .annotate(last=Max("period__start_date"))
        .values_list("currency", "last")
    ):
        keep(currency, day)
    return latest


def daily_rates_build() -> int:
    """Rewrite the dense daily rate table: for every currency quoted against the base
    currency, one row per day from its first rate to the last day a record needs,
    carrying the latest earlier rate forward over days without a quote."""
    base = settings.BASE_CURRENCY
    needed = _needed_rate_dates()
    DailyRate.objects.all().delete()
    rows: list[DailyRate] = []
    quotes: dict[str, list[tuple[date, Decimal]]] = {}
    for currency, day, rate in (
        ExchangeRate.objects.filter(base_currency=base)
        .order_by("currency", "rate_date")
        .values_list("currency", "rate_date", "rate")
    ):
        quotes.setdefault(currency, []).append((day, rate))
    written = 0
    for currency, series in quotes.items():
        last_needed = max(needed.get(currency, series[-1][0]), series[-1][0])
        # Through the end of the following month, so an incremental update of the latest
        # months (whose MRR rows look one month ahead) rarely has to rebuild this table.
        last_day = add_months(month_start(last_needed), 2) - timedelta(days=1)
        index, day, rate = 0, series[0][0], series[0][1]
        while day <= last_day:
            while index + 1 < len(series) and series[index + 1][0] <= day:
                index += 1
                rate = series[index][1]
            rows.append(DailyRate(currency=currency, day=day, rate=rate))
            day += timedelta(days=1)
            if len(rows) >= 5000:
                DailyRate.objects.bulk_create(rows)
                written += len(rows)
                rows = []
    DailyRate.objects.bulk_create(rows)
    if _is_postgres():
        # Fresh statistics, so the conversion joins below are planned as hash joins.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {_table(DailyRate)}")
    return written + len(rows)


def _first_missing_rate(sql: str, params: Sequence[Any]) -> tuple[str, date] | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        row = cursor.fetchone()
    if not row or row[0] is None:
        return None
    day = row[1]
    return row[0], day if isinstance(day, date) else date.fromisoformat(str(day)[:10])


def _check_rates(deal_months: Sequence[date] | None, mrr_months: Sequence[date] | None) -> None:
    """Fail, naming the currency and date, when any record lacks a conversion rate."""
    base = settings.BASE_CURRENCY
    rates = _table(DailyRate)
    deal_filter, deal_params = _date_ranges_sql("o.close_date", deal_months)
    checks: list[tuple[str, str, list[Any]]] = []
    if deal_months is None or deal_months:
        checks.append(
            (
                "deal",
                f"SELECT o.currency, MIN(o.close_date) FROM {_table(Opportunity)} o "
                f"LEFT JOIN {rates} r ON r.currency = o.currency AND r.day = o.close_date "
                f"WHERE o.currency <> %s AND r.rate IS NULL{deal_filter} "
                "GROUP BY o.currency ORDER BY 2, 1",
                [base, *deal_params],
            )
        )
    checks.append(
        (
            "quota",
            f"SELECT q.currency, MIN(p.start_date) FROM {_table(Quota)} q "
            f"JOIN {_table(FiscalPeriod)} p ON p.id = q.period_id "
            f"LEFT JOIN {rates} r ON r.currency = q.currency AND r.day = p.start_date "
            "WHERE q.currency <> %s AND r.rate IS NULL GROUP BY q.currency ORDER BY 2, 1",
            [base],
        )
    )
    if mrr_months is None or mrr_months:
        months_sql, month_params = _months_cte(mrr_months)
        for column in ("month", "next_month"):
            checks.append(
                (
                    "subscription",
                    f"WITH {months_sql} SELECT s.currency, MIN(m.{column}) FROM months m "
                    f"JOIN {_table(Subscription)} s ON s.start_date <= m.{column} "
                    f"AND (s.end_date IS NULL OR s.end_date > m.{column}) "
                    f"LEFT JOIN {rates} r ON r.currency = s.currency AND r.day = m.{column} "
                    "WHERE s.currency <> %s AND r.rate IS NULL GROUP BY s.currency "
                    "ORDER BY 2, 1",
                    [*month_params, base],
                )
            )
    for what, sql, params in checks:
        missing = _first_missing_rate(sql, params)
        if missing:
            currency, day = missing
            raise MissingRateError(
                f"No {currency}->{base} exchange rate on or before {day.isoformat()} "
                f"(needed by a {what}); add the rate and rebuild.",
                extra={"currency": currency, "date": day.isoformat(), "record": what},
            )


# --- Rollup builders (each takes the months to rebuild, or None for all) -----------------


def _build_closed(
    months: Sequence[date] | None, owner: int | None = None, *, into: str | None = None
) -> int:
    base = settings.BASE_CURRENCY
    where, params = _date_ranges_sql("o.close_date", months)
    by_owner, owner_params = _owner_sql("o.owner_id", owner)
    where, params = where + by_owner, params + owner_params
    # Only the accounts with a deal in the cells matter for their first win.
    touched = ""
    touched_params: list[Any] = []
    if months is not None or owner is not None:
        in_months, touched_params = _date_ranges_sql("o3.close_date", months)
        of_owner, of_owner_params = _owner_sql("o3.owner_id", owner)
        touched_params += of_owner_params
        touched = (
            f" AND o2.account_id IN (SELECT o3.account_id FROM {_table(Opportunity)} o3 "
            f"WHERE 1 = 1{in_months}{of_owner})"
        )
    opp, stage, account, rates = (
        _table(Opportunity),
        _table(Stage),
        _table(Account),
        _table(DailyRate),
    )
    # The account's first won deal (earliest close date, then lowest id) is its new logo.
    sql = f"""
        INSERT INTO {into or _table(ClosedDealRollup)}
            (month, owner_id, region_id, segment, product_id, deal_type, outcome,
             deals, amount, cycle_days, new_logos)
        SELECT {_month_of_date("o.close_date")}, o.owner_id, a.region_id, a.segment,
               o.product_id, o.deal_type, s.outcome, COUNT(*),
               SUM({_converted("o.amount", "o.currency", "r")}),
               SUM({_days_between("o.close_date", "o.created_date")}),
               SUM(CASE WHEN fw.id IS NOT NULL THEN 1 ELSE 0 END)
        FROM {opp} o
        JOIN {stage} s ON s.id = o.stage_id
        JOIN {account} a ON a.id = o.account_id
        LEFT JOIN {rates} r ON r.currency = o.currency AND r.day = o.close_date
        LEFT JOIN (
            SELECT ranked.id FROM (
                SELECT o2.id, ROW_NUMBER() OVER (
                    PARTITION BY o2.account_id ORDER BY o2.close_date, o2.id) AS rn
                FROM {opp} o2 JOIN {stage} s2 ON s2.id = o2.stage_id
                WHERE s2.outcome = 'won'{touched}
            ) ranked WHERE ranked.rn = 1
        ) fw ON fw.id = o.id
        WHERE s.outcome IN ('won', 'lost'){where}
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    """
    return _execute(sql, [base, *touched_params, *params])


def _build_pipeline(
    months: Sequence[date] | None, owner: int | None = None, *, into: str | None = None
) -> int:
    base = settings.BASE_CURRENCY
    where, params = _date_ranges_sql("o.close_date", months)
    by_owner, owner_params = _owner_sql("o.owner_id", owner)
    where, params = where + by_owner, params + owner_params
    converted = _converted("o.amount", "o.currency", "r")
    # Open deals by their stage ids, not by the joined stage's outcome: the planner then
    # estimates them from the deals' own statistics on stage_id. Through the join it
    # assumed deals spread evenly over the stages (714k open deals expected at a million
    # deals, where 93k are open) and hashed all 570k accounts for them; now it reads the
    # open deals by index and hashes them instead (0.7 s -> 0.5 s).
    open_ids = list(Stage.objects.filter(outcome=Stage.Outcome.OPEN).values_list("id", flat=True))
    open_stages = f"o.stage_id IN ({', '.join(['%s'] * len(open_ids))})" if open_ids else "1 = 0"
    sql = f"""
        INSERT INTO {into or _table(PipelineRollup)}
            (month, owner_id, region_id, segment, product_id, deal_type, stage_id,
             forecast_category, deals, amount, weighted_amount)
        SELECT {_month_of_date("o.close_date")}, o.owner_id, a.region_id, a.segment,
               o.product_id, o.deal_type, o.stage_id, o.forecast_category, COUNT(*),
               SUM({converted}), SUM(ROUND(({converted}) * s.probability / 100, 2))
        FROM {_table(Opportunity)} o
        JOIN {_table(Stage)} s ON s.id = o.stage_id
        JOIN {_table(Account)} a ON a.id = o.account_id
        LEFT JOIN {_table(DailyRate)} r ON r.currency = o.currency AND r.day = o.close_date
        WHERE {open_stages}{where}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    """
    return _execute(sql, [base, base, *open_ids, *params])


def stage_levels() -> tuple[dict[int, int], int]:
    """Level of each stage id: open stages 1..n by order, won stages n + 1, lost 0."""
    open_ids: list[int] = []
    levels: dict[int, int] = {}
    stages = list(Stage.objects.order_by("order").values_list("id", "outcome"))
    for stage_id, outcome in stages:
        if outcome == Stage.Outcome.OPEN:
            open_ids.append(stage_id)
    n_open = len(open_ids)
    for stage_id, outcome in stages:
        if outcome == Stage.Outcome.OPEN:
            levels[stage_id] = open_ids.index(stage_id) + 1
        elif outcome == Stage.Outcome.WON:
            levels[stage_id] = n_open + 1
        else:
            levels[stage_id] = 0
    return levels, n_open


def _build_stage_entries(
    months: Sequence[date] | None,
    owner: int | None = None,
    also: Sequence[int] = (),
    *,
    into: str | None = None,
) -> int:
    """Stage entries of ``months`` (None: all), of one owner's deals only if given: those
    whose footprint says the owner and spans the months, and the deals ``also`` (whose
    footprints are about to be rewritten)."""
    levels, n_open = stage_levels()
    if n_open == 0:
        return 0
    hist = _table(OpportunityHistory)
    case = " ".join(f"WHEN {int(sid)} THEN {int(level)}" for sid, level in levels.items())
    values = ", ".join(f"({level})" for level in range(1, n_open + 1))
    entry_month, month_params = _month_of_datetime("st.at")
    params: list[Any] = []
    subset = ""
    final_filter = ""
    if months is not None or owner is not None:
        # Entries in a month come from history rows in that month; the running maximum
        # needs the whole history of those deals, so restrict by deal, then by month.
        if owner is not None:
            # One owner's cells: the deals first (a short list the planner cannot misjudge),
            # then their histories by index.
            chosen = _owner_history_deals(months, owner, also)
            ids_sql, ids_params = _ids_sql("h.opportunity_id", chosen)
            subset = f" WHERE 1 = 1{ids_sql}"
            params += ids_params
        else:
            in_months, in_params = _datetime_ranges_sql("h2.changed_at", months)
            subset = (
                f" WHERE h.opportunity_id IN (SELECT h2.opportunity_id FROM {hist} h2 "
                f"WHERE 1 = 1{in_months})"
            )
            params += in_params
        final_filter, final_params = _datetime_ranges_sql("st.at", months)
        of_owner, owner_params = _owner_sql("o.owner_id", owner)
        final_filter += of_owner
        final_params_list = final_params + owner_params
    else:
        final_params_list = []
    # A deal enters level L when it first reaches L or a higher level (a skipped stage
    # counts as passed): at the earliest history row whose level is >= L. So one GROUP BY
    # per deal gives every entry time and the highest level ever, in one pass over the
    # history and without sorting it (three window passes over 4.75M rows before, at 1M
    # deals); the entries are then spread over the levels after the join with the deal.
    firsts = ", ".join(
        f"MIN(CASE WHEN lv.level >= {level} THEN lv.at END) AS e{level}"
        for level in range(1, n_open + 1)
    )
    pick = " ".join(f"WHEN {level} THEN f.e{level}" for level in range(1, n_open + 1))
    sql = f"""
        WITH lv AS (
            SELECT h.opportunity_id AS opp, h.changed_at AS at,
                   CASE h.stage_id {case} ELSE 0 END AS level
            FROM {hist} h{subset}
        ),
        firsts AS (
            SELECT lv.opp, MAX(lv.level) AS maxlevel, {firsts}
            FROM lv GROUP BY lv.opp
        ),
        levels (level) AS (VALUES {values}),
        st AS (
            SELECT f.opp, lvl.level, f.maxlevel, CASE lvl.level {pick} END AS at
            FROM firsts f JOIN levels lvl ON lvl.level <= f.maxlevel
        )
        INSERT INTO {into or _table(StageEntryRollup)}
            (month, owner_id, region_id, segment, product_id, deal_type, level,
             entered, advanced)
        SELECT {entry_month}, o.owner_id, a.region_id, a.segment, o.product_id,
               o.deal_type, st.level, COUNT(*),
               SUM(CASE WHEN st.maxlevel > st.level THEN 1 ELSE 0 END)
        FROM st
        JOIN {_table(Opportunity)} o ON o.id = st.opp
        JOIN {_table(Account)} a ON a.id = o.account_id
        WHERE 1 = 1{final_filter}
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    """
    # Parameter order follows the text: deal subset, entry month, month filter.
    return _execute(sql, [*params, *month_params, *final_params_list])


def _deal_subset_sql(months: Sequence[date] | None, column: str) -> tuple[str, list[Any]]:
    """``AND column IN (deals with a history row in the months)``; empty for all."""
    if months is None:
        return "", []
    in_months, params = _datetime_ranges_sql("h2.changed_at", months)
    hist = _table(OpportunityHistory)
    return (
        f" AND {column} IN (SELECT h2.opportunity_id FROM {hist} h2 WHERE 1 = 1{in_months})",
        params,
    )


def _ids_sql(column: str, ids: Sequence[int]) -> tuple[str, list[Any]]:
    """``AND column IN (ids)``; never matches for no ids. One array parameter on Postgres
    (a plan that does not depend on how many there are)."""
    if not ids:
        return " AND 1 = 0", []
    if _is_postgres():
        return f" AND {column} = ANY(%s)", [list(ids)]
    return f" AND {column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _owner_history_deals(
    months: Sequence[date] | None, owner: int, also: Sequence[int]
) -> list[int]:
    """Deals with a history row in ``months`` that are the owner's: by the footprint index
    (every other deal's footprint is current, since any change of owner goes through an
    update that rewrites it), plus the deals ``also`` (whose footprints are about to be
    rewritten)."""
    in_months, params = _datetime_ranges_sql("h.changed_at", months)
    span = [min(months), max(months)] if months else [date.min, date.max]
    # Per footprint, one probe of the (deal, time) history index.
    sql = f"""
        SELECT f.deal_id FROM {_table(DealFootprint)} f
        WHERE f.owner_id = %s AND f.last_change >= %s AND f.first_change <= %s
          AND EXISTS (
              SELECT 1 FROM {_table(OpportunityHistory)} h
              WHERE h.opportunity_id = f.deal_id{in_months}
          )
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [owner, *span, *params])
        found = {row[0] for row in cursor.fetchall()}
    # A queued deal without history in the months adds nothing: entries are filtered by
    # month and owner after the running maximum.
    return sorted(found | set(also))


def _rebuild_moves(months: Sequence[date] | None, deal_ids: Sequence[int] | None = None) -> int:
    """Rewrite the close-date moves of every deal (or of the deals with history in the
    months, or of the deals ``deal_ids``): each history row whose close date is later than
    the row before it."""
    if months is None and deal_ids is None:
        return _replace_all(CloseDateMove, lambda into: _insert_moves("", [], into))
    if deal_ids is not None:
        subset, params = _ids_sql("deal_id", deal_ids)
    else:
        subset, params = _deal_subset_sql(months, "deal_id")
    _execute(f"DELETE FROM {_table(CloseDateMove)} WHERE 1 = 1{subset}", params)
    if deal_ids is not None:
        subset, params = _ids_sql("h.opportunity_id", deal_ids)
    else:
        subset, params = _deal_subset_sql(months, "h.opportunity_id")
    _insert_moves(subset, params, _table(CloseDateMove))
    return 0


def _insert_moves(subset: str, params: Sequence[Any], into: str) -> int:
    """Insert into ``into`` the close-date moves of the history rows ``subset`` selects."""
    return _execute(
        f"""
        WITH seq AS (
            SELECT h.opportunity_id AS deal, h.changed_at, h.close_date AS new_close,
                   LAG(h.close_date) OVER (
                       PARTITION BY h.opportunity_id ORDER BY h.changed_at, h.id
                   ) AS old_close
            FROM {_table(OpportunityHistory)} h
            WHERE 1 = 1{subset}
        )
        INSERT INTO {into} (deal_id, owner_id, changed_at, old_close, new_close)
        SELECT seq.deal, o.owner_id, seq.changed_at, seq.old_close, seq.new_close
        FROM seq JOIN {_table(Opportunity)} o ON o.id = seq.deal
        WHERE seq.old_close IS NOT NULL AND seq.new_close > seq.old_close
        """,
        params,
    )


# --- Slipped deals -------------------------------------------------------------------------

#: A slipped-deal period: (first month, length in months).
Window = tuple[date, int]


def slip_windows(months: Iterable[date]) -> list[Window]:
    """Every precomputed period (of SLIPPED_SPANS months) that contains one of ``months``:
    the periods whose slipped deals a history row in those months can change (its move is
    inside the period, or it changes a deal's state at the end of a period holding an
    earlier move)."""
    return sorted(
        {
            (add_months(month_start(m), -back), span)
            for m in months
            for span in SLIPPED_SPANS
            for back in range(span)
        }
    )


def _all_slip_windows() -> list[Window]:
    """The periods containing any close-date move (every one that can count a deal)."""
    bounds = CloseDateMove.objects.aggregate(first=Min("changed_at"), last=Max("changed_at"))
    if bounds["first"] is None:
        return []
    month = month_start(timezone.localtime(bounds["first"]).date())
    last = month_start(timezone.localtime(bounds["last"]).date())
    months = []
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return slip_windows(months)


def _build_slipped(
    windows: Sequence[Window],
    owner: int | None = None,
    *,
    every_deal: bool = False,
    into: str | None = None,
) -> int:
    """Slipped deals of each period in ``windows`` (of one owner's deals if given), as the
    selector's detail query defines them: a move made during the period [ws, we) from a
    close date inside it to one after it, and the deal's last history row before the
    period ended (latest time, then highest id) still open with a close date after it."""
    if not windows:
        return 0
    hist, opp = _table(OpportunityHistory), _table(Opportunity)
    adapt = connection.ops.adapt_datetimefield_value
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(windows))
    params: list[Any] = []
    params_windows: list[tuple[datetime, datetime]] = []
    for first, span in windows:
        start, after = (
            _month_bounds_aware(first)[0],
            _month_bounds_aware(add_months(first, span - 1))[1],
        )
        params_windows.append((start, after))
        params += [
            first,
            add_months(first, span) - timedelta(days=1),
            adapt(start),
            adapt(after),
            span,
        ]
    cast = (
        "CAST(ps AS date), CAST(pe AS date), CAST(ws AS timestamptz), CAST(we AS timestamptz), "
        "CAST(k AS integer)"
        if _is_postgres()
        else "ps, pe, ws, we, k"
    )
    of_owner, owner_params = _owner_sql("mv.owner_id", owner)
    if owner is not None:
        # Bounds on the change time too, so one owner's moves are one index range.
        of_owner += " AND mv.changed_at >= %s AND mv.changed_at < %s"
        owner_params += [
            adapt(min(w for w, _s in params_windows)),
            adapt(max(w for _w, w in params_windows)),
        ]
    params += owner_params
    # Every period (a full rebuild): one sequential pass over history sorts faster than
    # fetching most deals' rows by index.
    history_filter = "" if every_deal else "WHERE h.opportunity_id IN (SELECT deal FROM cand)"
    # The deal's owner now, too: a move whose owner is out of date must not write a row
    # into another owner's cells.
    final_owner, final_params = _owner_sql("o.owner_id", owner)
    params += final_params
    # The state at a period's end is the history row valid at that instant: changed
    # before it, and the next row (by time, then id) not before it.
    ctes = f"""
        WITH raw_windows (ps, pe, ws, we, k) AS (VALUES {values}),
        windows (ps, pe, ws, we, k) AS (SELECT {cast} FROM raw_windows),
        cand AS (
            SELECT DISTINCT w.ps, w.pe, w.we, w.k, mv.deal_id AS deal
            FROM windows w
            JOIN {_table(CloseDateMove)} mv ON mv.changed_at >= w.ws AND mv.changed_at < w.we
                AND mv.new_close > w.pe AND mv.old_close >= w.ps AND mv.old_close <= w.pe
                {of_owner}
        ),
        hs AS (
            SELECT h.opportunity_id AS deal, h.changed_at AS at, h.close_date, h.stage_id,
                   LEAD(h.changed_at) OVER (
                       PARTITION BY h.opportunity_id ORDER BY h.changed_at, h.id
                   ) AS next_at
            FROM {hist} h
            {history_filter}
        )
    """
    slipped = f"""
        FROM cand c
        JOIN hs ON hs.deal = c.deal AND hs.at < c.we
            AND (hs.next_at IS NULL OR hs.next_at >= c.we)
        JOIN {_table(Stage)} s ON s.id = hs.stage_id AND s.outcome = 'open'
    """
    target = f"""
        INSERT INTO {into or _table(SlippedDealRollup)}
            (month, months, owner_id, region_id, segment, product_id, deal_type, deals)
    """
    dims = f"""
        JOIN {opp} o ON o.id = c.deal
        JOIN {_table(Account)} a ON a.id = o.account_id
    """
    group = "GROUP BY c.ps, c.k, o.owner_id, a.region_id, a.segment, o.product_id, o.deal_type"
    if every_deal and owner is None and _is_postgres():
        # Every period of every deal (a full rebuild): the slipped (period, deal) pairs
        # first, into a temporary table with statistics, then their dimensions. As one
        # statement the planner expected 0.1M pairs where 1.3M came (1M deals) and
        # fetched each one's deal by index (15 s of 56 s); counted, it hashes the deals.
        pairs = connection.ops.quote_name("kpis_slipped_pairs")
        _execute(f"DROP TABLE IF EXISTS {pairs}", [])
        _execute(
            f"CREATE TEMPORARY TABLE {pairs} ON COMMIT DROP AS {ctes} "
            f"SELECT c.ps, c.k, c.deal {slipped} WHERE hs.close_date > c.pe",
            params,
        )
        _execute(f"ANALYZE {pairs}", [])
        written = _execute(
            f"{target} SELECT c.ps, c.k, o.owner_id, a.region_id, a.segment, o.product_id, "
            f"o.deal_type, COUNT(*) FROM {pairs} c {dims} {group}",
            [],
        )
        _execute(f"DROP TABLE {pairs}", [])
        return written
    sql = f"""
        {ctes}
        {target}
        SELECT c.ps, c.k, o.owner_id, a.region_id, a.segment, o.product_id, o.deal_type,
               COUNT(*)
        {slipped}
        {dims}
        WHERE hs.close_date > c.pe{final_owner}
        {group}
    """
    return _execute(sql, params)


def _delete_slipped(windows: Sequence[Window] | None, owner: int | None = None) -> None:
    rows = SlippedDealRollup.objects.all()
    if windows is not None:
        by_span: dict[int, list[date]] = {}
        for first, span in windows:
            by_span.setdefault(span, []).append(first)
        match = Q(pk__in=[])
        for span, firsts in by_span.items():
            match |= Q(months=span, month__in=firsts)
        rows = rows.filter(match)
    if owner is not None:
        rows = rows.filter(owner_id=owner)
    rows.delete()


def _rebuild_slipped(windows: Sequence[Window] | None, owner: int | None = None) -> int:
    """Recompute the slipped-deal rows of ``windows`` (None: all), of one owner if given.
    Returns the rows written (for every period of every owner: the rows of the table)."""
    if windows is None and owner is None:
        return _replace_all(
            SlippedDealRollup,
            lambda into: _build_slipped(_all_slip_windows(), every_deal=True, into=into),
        )
    _delete_slipped(windows, owner)
    if windows is None:
        return _build_slipped(_all_slip_windows(), owner)
    return _build_slipped(windows, owner)


# --- Deal footprints -----------------------------------------------------------------------


def _rebuild_footprints(subset: str, params: Sequence[Any]) -> int:
    """Rewrite the footprints of the deals matching ``subset`` (SQL over ``deal_id``/``o.id``
    with a ``{col}`` placeholder; empty: every deal) from their current row and history."""
    first, first_params = _month_of_datetime("MIN(h.changed_at)")
    last, last_params = _month_of_datetime("MAX(h.changed_at)")
    hist = _table(OpportunityHistory)
    columns = (
        "(deal_id, owner_id, account_id, close_month, first_change, last_change, last_history_id) "
    )
    if not subset:
        # Every deal: one pass over history grouped by deal.
        sql = f"""
            INSERT INTO {{into}} {columns}
            SELECT o.id, o.owner_id, o.account_id, {_month_of_date("o.close_date")},
                   h.first_change, h.last_change, h.last_id
            FROM {_table(Opportunity)} o
            LEFT JOIN (
                SELECT h.opportunity_id, {first} AS first_change, {last} AS last_change,
                       MAX(h.id) AS last_id
                FROM {hist} h GROUP BY h.opportunity_id
            ) h ON h.opportunity_id = o.id
        """
        return _replace_all(
            DealFootprint,
            lambda into: _execute(sql.replace("{into}", into), [*first_params, *last_params]),
        )
    _execute(
        f"DELETE FROM {_table(DealFootprint)} WHERE 1 = 1{subset.format(col='deal_id')}", params
    )
    # A few deals: their history by index.
    sql = f"""
        INSERT INTO {_table(DealFootprint)} {columns}
        SELECT o.id, o.owner_id, o.account_id, {_month_of_date("o.close_date")},
               (SELECT {first} FROM {hist} h WHERE h.opportunity_id = o.id),
               (SELECT {last} FROM {hist} h WHERE h.opportunity_id = o.id),
               (SELECT MAX(h.id) FROM {hist} h WHERE h.opportunity_id = o.id)
        FROM {_table(Opportunity)} o
        WHERE 1 = 1{subset.format(col="o.id")}
    """
    return _execute(sql, [*first_params, *last_params, *params])


def _mrr_months() -> list[date]:
    """Every month start from the first subscription to MRR_MONTHS_AHEAD past the later
    of today and the last subscription date."""
    bounds = Subscription.objects.aggregate(
        first=Min("start_date"), last_start=Max("start_date"), last_end=Max("end_date")
    )
    if bounds["first"] is None:
        return []
    today = timezone.localdate()
    last = max(d for d in (today, bounds["last_start"], bounds["last_end"]) if d is not None)
    months, month = [], month_start(bounds["first"])
    stop = add_months(last, MRR_MONTHS_AHEAD)
    while month <= stop:
        months.append(month)
        month = add_months(month, 1)
    return months


def _months_cte(months: Sequence[date] | None) -> tuple[str, list[Any]]:
    chosen = list(months) if months is not None else _mrr_months()
    if not chosen:
        # A CTE that yields no row, so callers need no special case.
        return "months (month, next_month) AS (SELECT %s, %s WHERE 1 = 0)", [
            date(2000, 1, 1),
            date(2000, 2, 1),
        ]
    rows = ", ".join(["(%s, %s)"] * len(chosen))
    params: list[Any] = []
    for month in chosen:
        params += [month, add_months(month, 1)]
    cast = (
        "CAST(month AS date), CAST(next_month AS date)" if _is_postgres() else "month, next_month"
    )
    return (
        f"months_raw (month, next_month) AS (VALUES {rows}), "
        f"months (month, next_month) AS (SELECT {cast} FROM months_raw)",
        params,
    )


def _build_mrr(months: Sequence[date] | None, *, into: str | None = None) -> int:
    """Each account's MRR on the first day of each month of ``months`` (None: every MRR
    month) and of the month after, from the subscriptions overlapping that span."""
    base = settings.BASE_CURRENCY
    months_sql, month_params = _months_cte(months)
    sub = _table(Subscription)

    def active(day: str) -> str:
        return f"s.start_date <= {day} AND (s.end_date IS NULL OR s.end_date > {day})"

    columns = f"""
        SUM(CASE WHEN {active("m.month")}
                 THEN {_converted("s.mrr", "s.currency", "r1")} ELSE 0 END) AS mrr,
        SUM(CASE WHEN {active("m.next_month")}
                 THEN {_converted("s.mrr", "s.currency", "r2")} ELSE 0 END) AS next_mrr
    """
    joins = f"""
        JOIN {_table(Account)} a ON a.id = s.account_id
        LEFT JOIN {_table(DailyRate)} r1 ON r1.currency = s.currency AND r1.day = m.month
        LEFT JOIN {_table(DailyRate)} r2 ON r2.currency = s.currency AND r2.day = m.next_month
    """
    overlaps = "s.start_date <= m.next_month AND (s.end_date IS NULL OR s.end_date > m.month)"
    target = (
        f"{into or _table(AccountMrrRollup)} (month, account_id, region_id, segment, mrr, next_mrr)"
    )
    if _is_postgres():
        # One month at a time: each month's GROUP BY holds one month's accounts, instead
        # of one hash table of every account x month (3.7M groups at 1M deals, which
        # spilled to disk); the same rows, about half the time at 100k deals.
        sql = f"""
            WITH {months_sql}
            INSERT INTO {target}
            SELECT m.month, x.account_id, x.region_id, x.segment, x.mrr, x.next_mrr
            FROM months m CROSS JOIN LATERAL (
                SELECT s.account_id, a.region_id, a.segment, {columns}
                FROM {sub} s {joins}
                WHERE {overlaps}
                GROUP BY s.account_id, a.region_id, a.segment
            ) x
        """
    else:
        sql = f"""
            WITH {months_sql}
            INSERT INTO {target}
            SELECT m.month, s.account_id, a.region_id, a.segment, {columns}
            FROM months m JOIN {sub} s ON {overlaps} {joins}
            GROUP BY 1, 2, 3, 4
        """
    return _execute(sql, [*month_params, base, base])


def _build_mrr_months(months: Sequence[date] | None, *, into: str | None = None) -> int:
    """Per month x region x segment totals of the account MRR rows of ``months``: MRR and
    paying accounts on the first day, and the movements to the next month's first day,
    classified per account exactly as the MRR movements chart defines them."""
    where, params = "", []
    if months is not None:
        where = f" AND month IN ({', '.join(['%s'] * len(months))})" if months else " AND 1 = 0"
        params = list(months)
    sql = f"""
        INSERT INTO {into or _table(MrrMonthRollup)}
            (month, region_id, segment, mrr, paying, new, expansion, contraction, churn,
             churned)
        SELECT month, region_id, segment, SUM(mrr),
               SUM(CASE WHEN mrr > 0 THEN 1 ELSE 0 END),
               SUM(CASE WHEN mrr <= 0 AND next_mrr > 0 THEN next_mrr ELSE 0 END),
               SUM(CASE WHEN mrr > 0 AND next_mrr > mrr THEN next_mrr - mrr ELSE 0 END),
               SUM(CASE WHEN next_mrr > 0 AND next_mrr < mrr THEN next_mrr - mrr ELSE 0 END),
               SUM(CASE WHEN mrr > 0 AND next_mrr <= 0 THEN mrr ELSE 0 END),
               SUM(CASE WHEN mrr > 0 AND next_mrr <= 0 THEN 1 ELSE 0 END)
        FROM {_table(AccountMrrRollup)}
        WHERE 1 = 1{where}
        GROUP BY month, region_id, segment
    """
    return _execute(sql, params)


def _retention_openings(months: Sequence[date] | None) -> list[date] | None:
    """The opening months whose retention rows read an account MRR row of ``months``."""
    if months is None:
        return None
    return sorted({add_months(m, -k) for m in months for k in (0, *RETENTION_SPANS)})


def _build_retention(openings: Sequence[date] | None, *, into: str | None = None) -> int:
    """Retention rows for the opening months ``openings`` (None: every MRR month) and
    every span of RETENTION_SPANS: the accounts paying on the opening day matched with
    their MRR row ``span`` months later (none: 0), as the retention selector defines it."""
    chosen = list(openings) if openings is not None else _mrr_months()
    if not chosen:
        return 0
    values = ", ".join(["(%s, %s, %s)"] * (len(chosen) * len(RETENTION_SPANS)))
    params: list[Any] = []
    for month in chosen:
        for span in RETENTION_SPANS:
            params += [month, add_months(month, span), span]
    cast = "CAST(o AS date), CAST(c AS date), CAST(k AS integer)" if _is_postgres() else "o, c, k"
    mrr = _table(AccountMrrRollup)
    sql = f"""
        WITH pairs_raw (o, c, k) AS (VALUES {values}),
        pairs (o, c, k) AS (SELECT {cast} FROM pairs_raw)
        INSERT INTO {into or _table(RetentionRollup)}
            (month, months, region_id, segment, opening, retained, closing, accounts, churned)
        SELECT p.o, p.k, a.region_id, a.segment, SUM(a.mrr),
               SUM(CASE WHEN COALESCE(b.mrr, 0) < a.mrr THEN COALESCE(b.mrr, 0)
                        ELSE a.mrr END),
               SUM(COALESCE(b.mrr, 0)),
               COUNT(*),
               SUM(CASE WHEN COALESCE(b.mrr, 0) <= 0 THEN 1 ELSE 0 END)
        FROM pairs p
        JOIN {mrr} a ON a.month = p.o AND a.mrr > 0
        LEFT JOIN {mrr} b ON b.month = p.c AND b.account_id = a.account_id
        GROUP BY p.o, p.k, a.region_id, a.segment
    """
    _execute(sql, params)
    return 0 if into else RetentionRollup.objects.filter(month__in=chosen).count()


def _build_cohorts() -> int:
    """Every account's cohort (first month with MRR), with its current region and
    segment, and the cohort retention counts; rebuilt whole, since any MRR change can move
    an account's first month."""
    cohorts = _replace_all(
        AccountCohort,
        lambda into: _execute(
            f"""
            INSERT INTO {into} (account_id, cohort, region_id, segment)
            SELECT m.account_id, MIN(m.month), a.region_id, a.segment
            FROM {_table(AccountMrrRollup)} m
            JOIN {_table(Account)} a ON a.id = m.account_id
            WHERE m.mrr > 0
            GROUP BY m.account_id, a.region_id, a.segment
            """,
            [],
        ),
    )
    return cohorts + _replace_all(
        CohortRollup,
        lambda into: _execute(
            f"""
            INSERT INTO {into} (cohort, month, region_id, segment, accounts)
            SELECT c.cohort, m.month, c.region_id, c.segment, COUNT(*)
            FROM {_table(AccountCohort)} c
            JOIN {_table(AccountMrrRollup)} m ON m.account_id = c.account_id AND m.mrr > 0
            GROUP BY c.cohort, m.month, c.region_id, c.segment
            """,
            [],
        ),
    )


def _build_customer_summaries(months: Sequence[date] | None, result: RollupResult) -> None:
    """The summaries customer KPIs and pages read, for account MRR rows of ``months``."""
    if months is None:
        result.rows["mrr_months"] = _replace_all(
            MrrMonthRollup, lambda into: _build_mrr_months(None, into=into)
        )
        result.rows["retention"] = _replace_all(
            RetentionRollup, lambda into: _build_retention(None, into=into)
        )
    else:
        _delete(MrrMonthRollup, months)
        result.rows["mrr_months"] = _written(MrrMonthRollup, months, _build_mrr_months)
        openings = _retention_openings(months)
        _delete(RetentionRollup, openings)
        result.rows["retention"] = _build_retention(openings)
    result.rows["cohorts"] = _build_cohorts()


def _build_nps(months: Sequence[date] | None, *, into: str | None = None) -> int:
    where, params = _date_ranges_sql("n.responded_on", months)
    sql = f"""
        INSERT INTO {into or _table(NpsRollup)}
            (month, region_id, segment, promoters, passives, detractors)
        SELECT {_month_of_date("n.responded_on")}, a.region_id, a.segment,
               SUM(CASE WHEN n.score >= 9 THEN 1 ELSE 0 END),
               SUM(CASE WHEN n.score IN (7, 8) THEN 1 ELSE 0 END),
               SUM(CASE WHEN n.score <= 6 THEN 1 ELSE 0 END)
        FROM {_table(NpsResponse)} n
        JOIN {_table(Account)} a ON a.id = n.account_id
        WHERE 1 = 1{where}
        GROUP BY 1, 2, 3
    """
    return _execute(sql, params)


def _build_quotas(months: Sequence[date] | None, *, into: str | None = None) -> int:
    base = settings.BASE_CURRENCY
    where, params = _date_ranges_sql("p.start_date", months)
    sql = f"""
        INSERT INTO {into or _table(QuotaRollup)} (month, rep_id, team_id, amount)
        SELECT p.start_date, q.rep_id, q.team_id,
               SUM({_converted("q.amount", "q.currency", "r")})
        FROM {_table(Quota)} q
        JOIN {_table(FiscalPeriod)} p ON p.id = q.period_id
        LEFT JOIN {_table(DailyRate)} r ON r.currency = q.currency AND r.day = p.start_date
        WHERE p.kind = 'month'{where}
        GROUP BY 1, 2, 3
    """
    return _execute(sql, [base, *params])


ROLLUP_MODELS = (
    ClosedDealRollup,
    PipelineRollup,
    StageEntryRollup,
    CloseDateMove,
    SlippedDealRollup,
    DealFootprint,
    AccountMrrRollup,
    MrrMonthRollup,
    RetentionRollup,
    AccountCohort,
    CohortRollup,
    NpsRollup,
    QuotaRollup,
)

_DEAL_BUILDERS: tuple[tuple[str, type, Callable[[Sequence[date] | None, int | None], int]], ...] = (
    ("closed", ClosedDealRollup, _build_closed),
    ("pipeline", PipelineRollup, _build_pipeline),
)

#: Areas of a full rebuild; "stages" (stage entries, close-date moves) is keyed by history
#: month, the others by the month of the record's date.
ALL_AREAS = ("deals", "stages", "quotas", "subscriptions", "nps")


def _written(model, months: Sequence[date] | None, builder, owner: int | None = None) -> int:
    """Run a builder and count the rows it wrote (the driver's rowcount is not reliable
    for INSERT statements that start with WITH)."""
    if owner is None:
        builder(months)
    else:
        builder(months, owner)
    rows = model.objects.all() if months is None else model.objects.filter(month__in=months)
    if owner is not None:
        rows = rows.filter(owner_id=owner)
    return rows.count()


def _rebuild_months(model, months: Sequence[date] | None, builder) -> int:
    """Recompute a month-keyed rollup for ``months`` (None: all, writing only what changed,
    see :func:`_replace_all`); returns the rows it now has for them."""
    if months is None:
        return _replace_all(model, lambda into: builder(None, into=into))
    _delete(model, months)
    return _written(model, months, builder)


def _rebuild_areas(
    areas: Mapping[str, Sequence[date] | None], progress: Progress | None
) -> RollupResult:
    """Rebuild the given areas (deals/quotas/subscriptions/nps -> months or None for all)
    inside the caller's transaction."""
    result = RollupResult()
    say = progress or (lambda _step: None)
    full = all(months is None for months in areas.values()) and len(areas) == len(ALL_AREAS)
    if full or _rates_need_refresh(areas):
        say("exchange rates")
        result.rows["daily_rates"] = daily_rates_build()
    say("rate check")
    _check_rates(
        areas.get("deals") if "deals" in areas else [],
        areas.get("subscriptions") if "subscriptions" in areas else [],
    )
    if "deals" in areas:
        for label, model, builder in _DEAL_BUILDERS:
            say(label)
            result.rows[label] = _rebuild_months(model, areas["deals"], builder)
    if "stages" in areas:
        stage_months = areas["stages"]
        say("stage_entries")
        result.rows["stage_entries"] = _rebuild_months(
            StageEntryRollup, stage_months, _build_stage_entries
        )
        say("close_date_moves")
        result.rows["close_date_moves"] = _rebuild_moves(stage_months)
        say("slipped_deals")
        windows = None if stage_months is None else slip_windows(stage_months)
        written = _rebuild_slipped(windows)
        result.rows["slipped_deals"] = written if windows is None else 0
    if "deals" in areas or "stages" in areas:
        say("deal_footprints")
        result.rows["deal_footprints"] = _rebuild_footprints(
            *_footprint_subset(areas.get("deals", []), areas.get("stages", []))
        )
    # A name of its own: these builders take months only, unlike _DEAL_BUILDERS' (owner too).
    for area, label, model, month_builder in (
        ("quotas", "quotas", QuotaRollup, _build_quotas),
        ("subscriptions", "account_mrr", AccountMrrRollup, _build_mrr),
        ("nps", "nps", NpsRollup, _build_nps),
    ):
        if area in areas:
            say(label)
            result.rows[label] = _rebuild_months(model, areas[area], month_builder)
            if area == "subscriptions":
                say("customer summaries")
                _build_customer_summaries(areas[area], result)
    return result


def _footprint_subset(
    deal_months: Sequence[date] | None, stage_months: Sequence[date] | None
) -> tuple[str, list[Any]]:
    """The deals whose footprint a whole-month rebuild renews: those closing in the deal
    months and those with history in the stage months (``{col}`` is the deal id column)."""
    if deal_months is None or stage_months is None:
        return "", []
    parts, params = [], []
    if deal_months:
        in_months, month_params = _date_ranges_sql("o5.close_date", deal_months)
        parts.append(f"SELECT o5.id FROM {_table(Opportunity)} o5 WHERE 1 = 1{in_months}")
        params += month_params
    if stage_months:
        in_months, month_params = _datetime_ranges_sql("h5.changed_at", stage_months)
        parts.append(
            f"SELECT h5.opportunity_id FROM {_table(OpportunityHistory)} h5 WHERE 1 = 1{in_months}"
        )
        params += month_params
    if not parts:
        return " AND 1 = 0", []
    return " AND {col} IN (" + " UNION ".join(parts) + ")", params


# --- Per-deal (cell) updates -------------------------------------------------------------


@dataclass
class DealCells:
    """The rollup cells some changed deals were and now are in, per owner: close months
    (closed/pipeline rollups), history months (stage entries) and slipped-deal periods."""

    deals: dict[int, set[date]] = field(default_factory=dict)
    stages: dict[int, set[date]] = field(default_factory=dict)
    slipped: dict[int, set[Window]] = field(default_factory=dict)
    #: The deals whose stage history (close-date moves) is rewritten.
    stage_deals: set[int] = field(default_factory=set)

    def add(self, kind: str, owner: int, items: Iterable) -> None:
        getattr(self, kind).setdefault(owner, set()).update(items)

    def drop_months(self, deal_months: Iterable[date], stage_months: Iterable[date]) -> None:
        """Forget the cells of months a whole-month rebuild of this run already covers."""
        whole_deals, whole_stages = set(deal_months), set(stage_months)
        whole_windows = set(slip_windows(whole_stages))
        _drop_cells(self.deals, whole_deals)
        _drop_cells(self.stages, whole_stages)
        _drop_cells(self.slipped, whole_windows)

    def count(self) -> int:
        return sum(
            len(v) for kind in (self.deals, self.stages, self.slipped) for v in kind.values()
        )


_Cell = TypeVar("_Cell")


def _drop_cells(cells: dict[int, set[_Cell]], whole: set[_Cell]) -> None:
    """Remove ``whole`` from every owner's cells, forgetting owners left with none."""
    for owner in list(cells):
        cells[owner] -= whole
        if not cells[owner]:
            del cells[owner]


def _months_between(first: date, last: date) -> list[date]:
    months, month = [], month_start(first)
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return months


def deal_cells(*, deal_ids: Sequence[int], stage_ids: Sequence[int]) -> DealCells:
    """The cells to recompute for changed deals (``stage_ids``: those whose stage history
    rollups may have moved too). Old cells come from the footprint (the deal as last
    rolled up; for a deleted deal, the only record left) and from every history row (each
    an owner and close date the deal had); new cells from the deal as it is now. The first
    win of each old and new account (other than these deals) is recomputed too, since its
    new-logo flag can move to or from one of them."""
    cells = DealCells()
    ids = sorted(set(deal_ids))
    stage_set = set(stage_ids)
    footprints = {fp.deal_id: fp for fp in DealFootprint.objects.filter(deal_id__in=ids)}
    current = {
        row["id"]: row
        for row in Opportunity.objects.filter(pk__in=ids).values(
            "id", "owner_id", "account_id", "close_date"
        )
    }
    history: dict[int, list[tuple[int, date, date, int]]] = {}
    stamps: dict[int, list[tuple[int, datetime]]] = {}
    for deal, owner, close, changed, row_id in OpportunityHistory.objects.filter(
        opportunity_id__in=ids
    ).values_list("opportunity_id", "owner_id", "close_date", "changed_at", "id"):
        history.setdefault(deal, []).append(
            (owner, month_start(close), month_start(timezone.localtime(changed).date()), row_id)
        )
        stamps.setdefault(deal, []).append((row_id, changed))
    accounts: set[int] = set()
    for deal in ids:
        fp, now, rows = footprints.get(deal), current.get(deal), history.get(deal, [])
        if deal not in stage_set and _backdated(fp, stamps.get(deal, [])):
            stage_set.add(deal)
        owners: set[int] = {owner for owner, _c, _h, _i in rows}
        # The rollups hold the deal as its footprint says; the states it went through
        # since (history rows written after it) never reached them but cost little.
        # Without a footprint, any state it ever had may be in them.
        seen = fp.last_history_id if fp is not None and fp.last_history_id is not None else 0
        for owner, close, _h, row_id in rows:
            if row_id > seen:
                cells.add("deals", owner, [close])
        changed_months = {h for _o, _c, h, _i in rows}
        if fp is not None:
            owners.add(fp.owner_id)
            accounts.add(fp.account_id)
            cells.add("deals", fp.owner_id, [fp.close_month])
            if now is None and fp.first_change and fp.last_change:
                # Deleted: its history went with it; its entries lay in this range.
                changed_months.update(_months_between(fp.first_change, fp.last_change))
        if now is not None:
            owners.add(now["owner_id"])
            accounts.add(now["account_id"])
            cells.add("deals", now["owner_id"], [month_start(now["close_date"])])
        if deal in stage_set:
            windows = slip_windows(changed_months)
            for owner in owners:
                cells.add("stages", owner, changed_months)
                cells.add("slipped", owner, windows)
    for account in sorted(accounts):
        first_win = (
            Opportunity.objects.filter(account_id=account, stage__outcome=Stage.Outcome.WON)
            .exclude(pk__in=ids)
            .order_by("close_date", "id")
            .values_list("owner_id", "close_date")
            .first()
        )
        if first_win:
            cells.add("deals", first_win[0], [month_start(first_win[1])])
    cells.stage_deals = stage_set
    return cells


def _backdated(footprint: DealFootprint | None, stamps: list[tuple[int, datetime]]) -> bool:
    """True when a history row written since the deal was last rolled up is dated before
    an older row: a back-dated change (an import, a correction) re-times stage entries
    and slips even if only the amount changed. Unknown (no footprint): assume it is."""
    if footprint is None or footprint.last_history_id is None:
        return bool(stamps)
    old = [at for row_id, at in stamps if row_id <= footprint.last_history_id]
    new = [at for row_id, at in stamps if row_id > footprint.last_history_id]
    return bool(old and new) and min(new) < max(old)


def _check_cell_rates(cells: dict[int, set[date]]) -> None:
    """The deal part of :func:`_check_rates`, for the deals of some (month, owner) cells."""
    if not cells:
        return
    base = settings.BASE_CURRENCY
    parts, params = [], []
    for owner, months in sorted(cells.items()):
        in_months, month_params = _date_ranges_sql("o.close_date", sorted(months))
        parts.append(f"(o.owner_id = %s{in_months})")
        params += [owner, *month_params]
    missing = _first_missing_rate(
        f"SELECT o.currency, MIN(o.close_date) FROM {_table(Opportunity)} o "
        f"LEFT JOIN {_table(DailyRate)} r ON r.currency = o.currency AND r.day = o.close_date "
        f"WHERE o.currency <> %s AND r.rate IS NULL AND ({' OR '.join(parts)}) "
        "GROUP BY o.currency ORDER BY 2, 1",
        [base, *params],
    )
    if missing:
        currency, day = missing
        raise MissingRateError(
            f"No {currency}->{base} exchange rate on or before {day.isoformat()} "
            "(needed by a deal); add the rate and rebuild.",
            extra={"currency": currency, "date": day.isoformat(), "record": "deal"},
        )


def _update_cells(cells: DealCells, *, deal_ids: Sequence[int], result: RollupResult) -> None:
    """Recompute the cells of changed deals (DELETE + INSERT restricted to each owner's
    months), their close-date moves and their footprints, inside the caller's
    transaction."""
    months = sorted({m for per_owner in cells.deals.values() for m in per_owner})
    if months and _rates_need_refresh({"deals": months}):
        result.rows["daily_rates"] = daily_rates_build()
    _check_cell_rates(cells.deals)
    for owner, owner_months in sorted(cells.deals.items()):
        for label, model, builder in _DEAL_BUILDERS:
            chosen = sorted(owner_months)
            _delete(model, chosen, owner)
            written = _written(model, chosen, builder, owner)
            result.rows[label] = result.rows.get(label, 0) + written
    queued = sorted(set(deal_ids))
    for owner, owner_months in sorted(cells.stages.items()):
        chosen = sorted(owner_months)
        _delete(StageEntryRollup, chosen, owner)
        _build_stage_entries(chosen, owner, also=queued)
        written = StageEntryRollup.objects.filter(month__in=chosen, owner_id=owner).count()
        result.rows["stage_entries"] = result.rows.get("stage_entries", 0) + written
    if cells.stage_deals:
        _rebuild_moves(None, deal_ids=sorted(cells.stage_deals))
    for owner, windows in sorted(cells.slipped.items()):
        written = _rebuild_slipped(sorted(windows), owner)
        result.rows["slipped_deals"] = result.rows.get("slipped_deals", 0) + written
    subset, params = _ids_sql("{col}", sorted(set(deal_ids)))
    result.rows["deal_footprints"] = _rebuild_footprints(subset, params)


def _rates_need_refresh(areas: Mapping[str, Sequence[date] | None]) -> bool:
    """True when the dense rate table may miss a day the months being recomputed need: a
    currency quoted since it was built, or a month past its last built day."""
    built = dict(
        DailyRate.objects.values("currency")
        .annotate(last=Max("day"))
        .values_list("currency", "last")
    )
    quoted = set(
        ExchangeRate.objects.filter(base_currency=settings.BASE_CURRENCY)
        .values_list("currency", flat=True)
        .distinct()
    )
    if quoted - set(built):
        return True
    months = [m for chosen in areas.values() if chosen for m in chosen]
    if not months or not built:
        return False
    # The last day any record of these months can need (MRR rows look one month ahead).
    needed = add_months(max(months), 2) - timedelta(days=1)
    return min(built.values()) < needed


# --- Public services ---------------------------------------------------------------------


def rollups_rebuild(
    *,
    progress: Progress | None = None,
    task_id: str | None = None,
    time_limit_s: int | None = None,
) -> RollupResult:
    """Rebuild every rollup from the domain tables in one transaction; records a JobRun
    (kind ``rollups_full``; a worker passes its task id and time limit so the runs a lost
    worker left "running" are closed first). Waits for any other rebuild or update to
    finish first."""
    with job_run_record(kind="rollups_full", task_id=task_id, time_limit_s=time_limit_s) as run:
        with transaction.atomic():
            _lock()
            # What is queued now is settled by this rebuild. Deleting it first means a month
            # queued again while we run (by a later commit) waits for our commit and then
            # stays queued for the next update, instead of being swallowed.
            DirtyMonth.objects.filter(
                pk__in=list(DirtyMonth.objects.values_list("pk", flat=True))
            ).delete()
            DirtyDeal.objects.filter(
                pk__in=list(DirtyDeal.objects.values_list("pk", flat=True))
            ).delete()
            result = _rebuild_areas(dict.fromkeys(ALL_AREAS), progress)
            if _is_postgres():
                # Every row is new: fresh statistics let the selectors' joins use the
                # grain indexes instead of hashing whole tables.
                with connection.cursor() as cursor:
                    for model in ROLLUP_MODELS:
                        cursor.execute(f"ANALYZE {_table(model)}")
        run.rows = result.total_rows
        run.detail = {"rows": result.rows, "base_currency": settings.BASE_CURRENCY}
    return result


def rollups_update(*, task_id: str | None = None, time_limit_s: int | None = None) -> RollupResult:
    """Recompute what was queued since the last run, in one transaction: whole months
    (quotas, subscriptions, NPS, bulk imports) and the (month, owner) cells of changed
    deals. Records a JobRun (kind ``rollups_incremental``). Idempotent: with nothing queued
    it writes nothing; what is queued while it runs stays queued for the next run."""
    with job_run_record(
        kind="rollups_incremental", task_id=task_id, time_limit_s=time_limit_s
    ) as run:
        with transaction.atomic():
            asked = time_module.perf_counter()
            _lock()
            # Time spent behind another rebuild or update: reported apart from the work.
            lock_wait = round(time_module.perf_counter() - asked, 3)
            if _is_postgres():
                with connection.cursor() as cursor:
                    # Small, index-driven statements: compiling them costs more than
                    # running them (the same reason as the selectors' report cursor).
                    cursor.execute("SET LOCAL jit = off")
            dirty = list(DirtyMonth.objects.select_for_update().values_list("id", "area", "month"))
            # Dequeue first (see rollups_rebuild): a month queued again by a commit made
            # while this runs is kept for the next update.
            DirtyMonth.objects.filter(pk__in=[pk for pk, _a, _m in dirty]).delete()
            changed = list(DirtyDeal.objects.select_for_update().values_list("id", "area", "deal"))
            DirtyDeal.objects.filter(pk__in=[pk for pk, _a, _d in changed]).delete()
            areas: dict[str, list[date]] = {}
            for _pk, area, month in dirty:
                areas.setdefault(area, []).append(month)
            chosen = {k: sorted(set(v)) for k, v in areas.items()}
            deal_ids = sorted({deal for _pk, _a, deal in changed})
            stage_ids = sorted({deal for _pk, area, deal in changed if area == "stages"})
            # The deals' cells before anything is rewritten: a whole-month rebuild below
            # renews the footprints of the deals in its months, which hold the old cells.
            cells = deal_cells(deal_ids=deal_ids, stage_ids=stage_ids) if deal_ids else DealCells()
            result = _rebuild_areas(chosen, None) if chosen else RollupResult()
            if deal_ids:
                cells.drop_months(chosen.get("deals", []), chosen.get("stages", []))
                _update_cells(cells, deal_ids=deal_ids, result=result)
        result.months = sorted(
            {m for v in areas.values() for m in v} | {m for v in cells.deals.values() for m in v}
        )
        run.rows = result.total_rows
        run.detail = {
            "rows": result.rows,
            "months": {k: [m.isoformat() for m in v] for k, v in chosen.items()},
            "deals": deal_ids,
            "lock_wait_seconds": lock_wait,
            "cells": {
                kind: {
                    str(owner): sorted(
                        f"{item[0]:%Y-%m}+{item[1]}" if isinstance(item, tuple) else f"{item:%Y-%m}"
                        for item in items
                    )
                    for owner, items in sorted(getattr(cells, kind).items())
                }
                for kind in ("deals", "stages", "slipped")
            },
        }
    return result


def rollups_mark_dirty(*, area: str, months: Iterable[date]) -> int:
    """Queue months of one area (deals, quotas, subscriptions, nps) for the next update
    and make sure one update task is scheduled. Returns how many months were queued."""
    if area not in DirtyMonth.Area.values:
        raise ApplicationError(
            f"Unknown rollup area {area!r}.", extra={"known": list(DirtyMonth.Area.values)}
        )
    queued = _queue(area, months)
    if queued:
        rollups_update_enqueue()
    return queued


def _queue(area: str, months: Iterable[date]) -> int:
    unique = sorted({month_start(m) for m in months})
    # A plain insert: it never waits for an update or rebuild that is dequeuing (see
    # DirtyMonth); duplicates are read as one.
    DirtyMonth.objects.bulk_create([DirtyMonth(area=area, month=m) for m in unique])
    return len(unique)


def rollups_update_enqueue() -> bool:
    """Schedule one update task unless one is already waiting (coalescing a burst of
    edits into one update). Returns True when a task was scheduled."""
    from apps.kpis.tasks import rollups_update_task

    # The guard expires on its own, so a lost task cannot block updates for long.
    if not cache.add(UPDATE_PENDING_KEY, "1", timeout=300):
        return False
    options: dict[str, Any] = {"countdown": UPDATE_COUNTDOWN_SECONDS}
    queue = getattr(settings, "KPIS_UPDATE_QUEUE", None)
    if queue:
        options["queue"] = queue
    try:
        rollups_update_task.apply_async(**options)
    except Exception:
        # The broker is away: forget the guard so the next edit tries again; the months
        # stay queued and the nightly rebuild settles them in any case.
        cache.delete(UPDATE_PENDING_KEY)
        logger.exception("could not enqueue the rollup update")
        return False
    return True


#: Deal fields whose change can move a deal's stage entries (or their dimensions).
STAGE_FIELDS = frozenset({"stage", "owner", "account", "product", "deal_type", "created"})


def rollups_deal_changed(*, opportunity_id: int, fields: Iterable[str] | None = None) -> int:
    """Queue a changed deal (call after commit; also after a deal is deleted) for the next
    update, which recomputes only the (month, owner) cells it was and now is in (see
    :func:`deal_cells`). Its stage-history rollups (stage entries, close-date moves,
    slipped deals) are queued too when ``fields`` (what was edited; None = unknown, or a
    new deal) can change them: a stage, a dimension or the close date. One insert; the
    cells are worked out by the update, so a burst of edits costs one computation."""
    return rollups_deals_changed(
        opportunity_ids=[opportunity_id],
        stage_ids=(
            [opportunity_id]
            if fields is None or set(fields) & (STAGE_FIELDS | {"close_date"})
            else []
        ),
    )


def rollups_deals_changed(*, opportunity_ids: Iterable[int], stage_ids: Iterable[int]) -> int:
    """:func:`rollups_deal_changed` for many deals at once (``stage_ids``: the deals whose
    stage-history rollups may have moved). Returns how many deals were queued."""
    ids, stages = sorted(set(opportunity_ids)), sorted(set(stage_ids))
    rows = [DirtyDeal(area=DirtyMonth.Area.DEALS, deal_id=pk) for pk in ids]
    rows += [DirtyDeal(area=DirtyMonth.Area.STAGES, deal_id=pk) for pk in stages]
    if not rows:
        return 0
    DirtyDeal.objects.bulk_create(rows, batch_size=5000)  # plain insert, see DirtyMonth
    rollups_update_enqueue()
    return len(set(ids) | set(stages))


def rollups_quota_changed(*, month: date) -> int:
    """Queue the quota month that changed."""
    return rollups_mark_dirty(area=DirtyMonth.Area.QUOTAS, months=[month])


def rollups_subscription_changed(*, start_date: date, end_date: date | None) -> int:
    """Queue the month starts a subscription covering [start_date, end_date) can change:
    every month-start row from the month before its start (whose next-month MRR moves)
    to its end (or the precomputed horizon while it runs)."""
    first = add_months(month_start(start_date), -1)
    horizon = add_months(max(timezone.localdate(), start_date), MRR_MONTHS_AHEAD)
    last = month_start(end_date) if end_date else horizon
    months, month = [], first
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return rollups_mark_dirty(area=DirtyMonth.Area.SUBSCRIPTIONS, months=months)


def rollups_nps_changed(*, responded_on: date) -> int:
    """Queue the month of an NPS response that was added, changed or removed."""
    return rollups_mark_dirty(area=DirtyMonth.Area.NPS, months=[responded_on])
