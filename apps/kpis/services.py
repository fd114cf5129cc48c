"""Writes for the KPI rollups: full rebuild, incremental update of changed months, and the
coalescing queue that links domain writes to the update task.

How a rebuild stays correct for readers and writers:
- Everything happens in ONE transaction (DELETE + INSERT ... SELECT ... GROUP BY), so a
  reader sees the old rollups or the new ones, never a half-built table, and a rebuild that
  dies half-way (error, killed worker) rolls back to the previous rollups.
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.core.models import ExchangeRate
from apps.core.services import job_run_record
from apps.crm.models import Account, Opportunity, OpportunityHistory, Stage
from apps.customers.models import NpsResponse, Subscription
from apps.kpis.models import (
    RETENTION_SPANS,
    AccountCohort,
    AccountMrrRollup,
    CloseDateMove,
    ClosedDealRollup,
    CohortRollup,
    DailyRate,
    DirtyMonth,
    MrrMonthRollup,
    NpsRollup,
    PipelineRollup,
    QuotaRollup,
    RetentionRollup,
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
    if _is_postgres():
        return f"CAST(date_trunc('month', {expr}) AS date)"
    return f"date({expr}, 'start of month')"


def _month_of_datetime(expr: str) -> tuple[str, list[object]]:
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


def _date_ranges_sql(column: str, months: Sequence[date] | None) -> tuple[str, list[object]]:
    """``AND (column in month 1 OR ...)`` as sargable range conditions; empty for all."""
    if months is None:
        return "", []
    parts, params = [], []
    for month in months:
        parts.append(f"({column} >= %s AND {column} < %s)")
        params += [month, add_months(month, 1)]
    return " AND (" + " OR ".join(parts) + ")", params


def _datetime_ranges_sql(column: str, months: Sequence[date] | None) -> tuple[str, list[object]]:
    if months is None:
        return "", []
    parts, params = [], []
    for month in months:
        parts.append(f"({column} >= %s AND {column} < %s)")
        params += list(_month_bounds_aware(month))
    return " AND (" + " OR ".join(parts) + ")", params


def _delete(model, months: Sequence[date] | None) -> None:
    if months is None:
        model.objects.all().delete()
    else:
        model.objects.filter(month__in=list(months)).delete()


def _execute(sql: str, params: Sequence[object]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return max(cursor.rowcount, 0)


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


def _first_missing_rate(sql: str, params: Sequence[object]) -> tuple[str, date] | None:
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
    checks: list[tuple[str, str, list[object]]] = []
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


def _build_closed(months: Sequence[date] | None) -> int:
    base = settings.BASE_CURRENCY
    where, params = _date_ranges_sql("o.close_date", months)
    # Only the accounts with a deal in the months matter for their first win.
    touched, touched_params = "", []
    if months is not None:
        in_months, touched_params = _date_ranges_sql("o3.close_date", months)
        touched = (
            f" AND o2.account_id IN (SELECT o3.account_id FROM {_table(Opportunity)} o3 "
            f"WHERE 1 = 1{in_months})"
        )
    opp, stage, account, rates = (
        _table(Opportunity),
        _table(Stage),
        _table(Account),
        _table(DailyRate),
    )
    # The account's first won deal (earliest close date, then lowest id) is its new logo.
    sql = f"""
        INSERT INTO {_table(ClosedDealRollup)}
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


def _build_pipeline(months: Sequence[date] | None) -> int:
    base = settings.BASE_CURRENCY
    where, params = _date_ranges_sql("o.close_date", months)
    converted = _converted("o.amount", "o.currency", "r")
    sql = f"""
        INSERT INTO {_table(PipelineRollup)}
            (month, owner_id, region_id, segment, product_id, deal_type, stage_id,
             forecast_category, deals, amount, weighted_amount)
        SELECT {_month_of_date("o.close_date")}, o.owner_id, a.region_id, a.segment,
               o.product_id, o.deal_type, o.stage_id, o.forecast_category, COUNT(*),
               SUM({converted}), SUM(ROUND(({converted}) * s.probability / 100, 2))
        FROM {_table(Opportunity)} o
        JOIN {_table(Stage)} s ON s.id = o.stage_id
        JOIN {_table(Account)} a ON a.id = o.account_id
        LEFT JOIN {_table(DailyRate)} r ON r.currency = o.currency AND r.day = o.close_date
        WHERE s.outcome = 'open'{where}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    """
    return _execute(sql, [base, base, *params])


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


def _build_stage_entries(months: Sequence[date] | None) -> int:
    levels, n_open = stage_levels()
    if n_open == 0:
        return 0
    hist = _table(OpportunityHistory)
    case = " ".join(f"WHEN {int(sid)} THEN {int(level)}" for sid, level in levels.items())
    values = ", ".join(f"({level})" for level in range(1, n_open + 1))
    entry_month, month_params = _month_of_datetime("st.at")
    params: list[object] = []
    subset = ""
    final_filter = ""
    if months is not None:
        # Entries in a month come from history rows in that month; the running maximum
        # needs the whole history of those deals, so restrict by deal, then by month.
        in_months, in_params = _datetime_ranges_sql("h2.changed_at", months)
        subset = (
            f" WHERE h.opportunity_id IN (SELECT h2.opportunity_id FROM {hist} h2 "
            f"WHERE 1 = 1{in_months})"
        )
        params += in_params
        final_filter, final_params = _datetime_ranges_sql("st.at", months)
        final_params_list = final_params
    else:
        final_params_list = []
    # One sort per deal history gives, per row, the highest level reached so far, the
    # highest before this row, and the highest ever; a row enters the levels in between.
    sql = f"""
        WITH lv AS (
            SELECT h.opportunity_id AS opp, h.changed_at AS at, h.id AS hid,
                   CASE h.stage_id {case} ELSE 0 END AS level
            FROM {hist} h{subset}
        ),
        st AS (
            SELECT opp, at,
                   MAX(level) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                       AS runmax,
                   COALESCE(MAX(level) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING
                                              AND 1 PRECEDING), 0) AS prevmax,
                   MAX(level) OVER (PARTITION BY opp) AS maxlevel
            FROM lv
            WINDOW w AS (PARTITION BY opp ORDER BY at, hid)
        ),
        steps AS (SELECT opp, at, runmax, prevmax, maxlevel FROM st WHERE runmax > prevmax),
        levels (level) AS (VALUES {values})
        INSERT INTO {_table(StageEntryRollup)}
            (month, owner_id, region_id, segment, product_id, deal_type, level,
             entered, advanced)
        SELECT {entry_month}, o.owner_id, a.region_id, a.segment, o.product_id,
               o.deal_type, lvl.level, COUNT(*),
               SUM(CASE WHEN st.maxlevel > lvl.level THEN 1 ELSE 0 END)
        FROM steps st
        JOIN levels lvl ON lvl.level > st.prevmax AND lvl.level <= st.runmax
        JOIN {_table(Opportunity)} o ON o.id = st.opp
        JOIN {_table(Account)} a ON a.id = o.account_id
        WHERE 1 = 1{final_filter}
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    """
    # Parameter order follows the text: deal subset, entry month, month filter.
    return _execute(sql, [*params, *month_params, *final_params_list])


def _deal_subset_sql(months: Sequence[date] | None, column: str) -> tuple[str, list[object]]:
    """``AND column IN (deals with a history row in the months)``; empty for all."""
    if months is None:
        return "", []
    in_months, params = _datetime_ranges_sql("h2.changed_at", months)
    hist = _table(OpportunityHistory)
    return (
        f" AND {column} IN (SELECT h2.opportunity_id FROM {hist} h2 WHERE 1 = 1{in_months})",
        params,
    )


def _rebuild_moves(months: Sequence[date] | None) -> int:
    """Rewrite the close-date moves of every deal (or of the deals with history in the
    months): each history row whose close date is later than the row before it."""
    subset, params = _deal_subset_sql(months, "deal_id")
    _execute(f"DELETE FROM {_table(CloseDateMove)} WHERE 1 = 1{subset}", params)
    subset, params = _deal_subset_sql(months, "h.opportunity_id")
    _execute(
        f"""
        WITH seq AS (
            SELECT h.opportunity_id AS deal, h.changed_at, h.close_date AS new_close,
                   LAG(h.close_date) OVER (
                       PARTITION BY h.opportunity_id ORDER BY h.changed_at, h.id
                   ) AS old_close
            FROM {_table(OpportunityHistory)} h
            WHERE 1 = 1{subset}
        )
        INSERT INTO {_table(CloseDateMove)} (deal_id, changed_at, old_close, new_close)
        SELECT deal, changed_at, old_close, new_close FROM seq
        WHERE old_close IS NOT NULL AND new_close > old_close
        """,
        params,
    )
    moves = CloseDateMove.objects.all()
    return moves.count() if months is None else 0


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


def _months_cte(months: Sequence[date] | None) -> tuple[str, list[object]]:
    chosen = list(months) if months is not None else _mrr_months()
    if not chosen:
        # A CTE that yields no row, so callers need no special case.
        return "months (month, next_month) AS (SELECT %s, %s WHERE 1 = 0)", [
            date(2000, 1, 1),
            date(2000, 2, 1),
        ]
    rows = ", ".join(["(%s, %s)"] * len(chosen))
    params: list[object] = []
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


def _build_mrr(months: Sequence[date] | None) -> int:
    base = settings.BASE_CURRENCY
    months_sql, month_params = _months_cte(months)
    sub = _table(Subscription)

    def active(day: str) -> str:
        return f"s.start_date <= {day} AND (s.end_date IS NULL OR s.end_date > {day})"

    sql = f"""
        WITH {months_sql}
        INSERT INTO {_table(AccountMrrRollup)}
            (month, account_id, region_id, segment, mrr, next_mrr)
        SELECT m.month, s.account_id, a.region_id, a.segment,
               SUM(CASE WHEN {active("m.month")}
                        THEN {_converted("s.mrr", "s.currency", "r1")} ELSE 0 END),
               SUM(CASE WHEN {active("m.next_month")}
                        THEN {_converted("s.mrr", "s.currency", "r2")} ELSE 0 END)
        FROM months m
        JOIN {sub} s ON s.start_date <= m.next_month
             AND (s.end_date IS NULL OR s.end_date > m.month)
        JOIN {_table(Account)} a ON a.id = s.account_id
        LEFT JOIN {_table(DailyRate)} r1 ON r1.currency = s.currency AND r1.day = m.month
        LEFT JOIN {_table(DailyRate)} r2 ON r2.currency = s.currency AND r2.day = m.next_month
        GROUP BY 1, 2, 3, 4
    """
    return _execute(sql, [*month_params, base, base])


def _build_mrr_months(months: Sequence[date] | None) -> int:
    """Per month x region x segment totals of the account MRR rows of ``months``: MRR and
    paying accounts on the first day, and the movements to the next month's first day,
    classified per account exactly as the MRR movements chart defines them."""
    where, params = "", []
    if months is not None:
        where = f" AND month IN ({', '.join(['%s'] * len(months))})" if months else " AND 1 = 0"
        params = list(months)
    sql = f"""
        INSERT INTO {_table(MrrMonthRollup)}
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


def _build_retention(openings: Sequence[date] | None) -> int:
    """Retention rows for the opening months ``openings`` (None: every MRR month) and
    every span of RETENTION_SPANS: the accounts paying on the opening day matched with
    their MRR row ``span`` months later (none: 0), as the retention selector defines it."""
    chosen = list(openings) if openings is not None else _mrr_months()
    if not chosen:
        return 0
    values = ", ".join(["(%s, %s, %s)"] * (len(chosen) * len(RETENTION_SPANS)))
    params: list[object] = []
    for month in chosen:
        for span in RETENTION_SPANS:
            params += [month, add_months(month, span), span]
    cast = "CAST(o AS date), CAST(c AS date), CAST(k AS integer)" if _is_postgres() else "o, c, k"
    mrr = _table(AccountMrrRollup)
    sql = f"""
        WITH pairs_raw (o, c, k) AS (VALUES {values}),
        pairs (o, c, k) AS (SELECT {cast} FROM pairs_raw)
        INSERT INTO {_table(RetentionRollup)}
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
    return RetentionRollup.objects.filter(month__in=chosen).count()


def _build_cohorts() -> int:
    """Every account's cohort (first month with MRR), with its current region and
    segment, and the cohort retention counts; rebuilt whole, since any MRR change can move
    an account's first month."""
    AccountCohort.objects.all().delete()
    sql = f"""
        INSERT INTO {_table(AccountCohort)} (account_id, cohort, region_id, segment)
        SELECT m.account_id, MIN(m.month), a.region_id, a.segment
        FROM {_table(AccountMrrRollup)} m
        JOIN {_table(Account)} a ON a.id = m.account_id
        WHERE m.mrr > 0
        GROUP BY m.account_id, a.region_id, a.segment
    """
    _execute(sql, [])
    CohortRollup.objects.all().delete()
    _execute(
        f"""
        INSERT INTO {_table(CohortRollup)} (cohort, month, region_id, segment, accounts)
        SELECT c.cohort, m.month, c.region_id, c.segment, COUNT(*)
        FROM {_table(AccountCohort)} c
        JOIN {_table(AccountMrrRollup)} m ON m.account_id = c.account_id AND m.mrr > 0
        GROUP BY c.cohort, m.month, c.region_id, c.segment
        """,
        [],
    )
    return AccountCohort.objects.count() + CohortRollup.objects.count()


def _build_customer_summaries(months: Sequence[date] | None, result: RollupResult) -> None:
    """The summaries customer KPIs and pages read, for account MRR rows of ``months``."""
    _delete(MrrMonthRollup, months)
    result.rows["mrr_months"] = _written(MrrMonthRollup, months, _build_mrr_months)
    openings = _retention_openings(months)
    _delete(RetentionRollup, openings)
    result.rows["retention"] = _build_retention(openings)
    result.rows["cohorts"] = _build_cohorts()


def _build_nps(months: Sequence[date] | None) -> int:
    where, params = _date_ranges_sql("n.responded_on", months)
    sql = f"""
        INSERT INTO {_table(NpsRollup)}
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


def _build_quotas(months: Sequence[date] | None) -> int:
    base = settings.BASE_CURRENCY
    where, params = _date_ranges_sql("p.start_date", months)
    sql = f"""
        INSERT INTO {_table(QuotaRollup)} (month, rep_id, team_id, amount)
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
    AccountMrrRollup,
    MrrMonthRollup,
    RetentionRollup,
    AccountCohort,
    CohortRollup,
    NpsRollup,
    QuotaRollup,
)

_DEAL_BUILDERS: tuple[tuple[str, type, Callable[[Sequence[date] | None], int]], ...] = (
    ("closed", ClosedDealRollup, _build_closed),
    ("pipeline", PipelineRollup, _build_pipeline),
)

#: Areas of a full rebuild; "stages" (stage entries, close-date moves) is keyed by history
#: month, the others by the month of the record's date.
ALL_AREAS = ("deals", "stages", "quotas", "subscriptions", "nps")


def _written(model, months: Sequence[date] | None, builder) -> int:
    """Run a builder and count the rows it wrote (the driver's rowcount is not reliable
    for INSERT statements that start with WITH)."""
    builder(months)
    rows = model.objects.all() if months is None else model.objects.filter(month__in=months)
    return rows.count()


def _rebuild_areas(
    areas: dict[str, Sequence[date] | None], progress: Progress | None
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
            _delete(model, areas["deals"])
            result.rows[label] = _written(model, areas["deals"], builder)
    if "stages" in areas:
        say("stage_entries")
        _delete(StageEntryRollup, areas["stages"])
        result.rows["stage_entries"] = _written(
            StageEntryRollup, areas["stages"], _build_stage_entries
        )
        say("close_date_moves")
        result.rows["close_date_moves"] = _rebuild_moves(areas["stages"])
    for area, label, model, builder in (
        ("quotas", "quotas", QuotaRollup, _build_quotas),
        ("subscriptions", "account_mrr", AccountMrrRollup, _build_mrr),
        ("nps", "nps", NpsRollup, _build_nps),
    ):
        if area in areas:
            say(label)
            _delete(model, areas[area])
            result.rows[label] = _written(model, areas[area], builder)
            if area == "subscriptions":
                say("customer summaries")
                _build_customer_summaries(areas[area], result)
    return result


def _rates_need_refresh(areas: dict[str, Sequence[date] | None]) -> bool:
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


def rollups_rebuild(*, progress: Progress | None = None) -> RollupResult:
    """Rebuild every rollup from the domain tables in one transaction; records a JobRun
    (kind ``rollups_full``). Waits for any other rebuild or update to finish first."""
    with job_run_record(kind="rollups_full") as run:
        with transaction.atomic():
            _lock()
            # What is queued now is settled by this rebuild. Deleting it first means a month
            # queued again while we run (by a later commit) waits for our commit and then
            # stays queued for the next update, instead of being swallowed.
            DirtyMonth.objects.filter(
                pk__in=list(DirtyMonth.objects.values_list("pk", flat=True))
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


def rollups_update() -> RollupResult:
    """Recompute the months marked dirty since the last run, in one transaction; records
    a JobRun (kind ``rollups_incremental``). Idempotent: with nothing dirty it writes
    nothing; months marked while it runs stay queued for the next run."""
    with job_run_record(kind="rollups_incremental") as run:
        with transaction.atomic():
            _lock()
            dirty = list(DirtyMonth.objects.select_for_update().values_list("id", "area", "month"))
            # Dequeue first (see rollups_rebuild): a month queued again by a commit made
            # while this runs is kept for the next update.
            DirtyMonth.objects.filter(pk__in=[pk for pk, _a, _m in dirty]).delete()
            areas: dict[str, list[date]] = {}
            for _pk, area, month in dirty:
                areas.setdefault(area, []).append(month)
            result = (
                _rebuild_areas({k: sorted(set(v)) for k, v in areas.items()}, None)
                if areas
                else RollupResult()
            )
        result.months = sorted({m for v in areas.values() for m in v})
        run.rows = result.total_rows
        run.detail = {
            "rows": result.rows,
            "months": {k: [m.isoformat() for m in sorted(set(v))] for k, v in areas.items()},
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
    DirtyMonth.objects.bulk_create(
        [DirtyMonth(area=area, month=m) for m in unique], ignore_conflicts=True
    )
    return len(unique)


def rollups_update_enqueue() -> bool:
    """Schedule one update task unless one is already waiting (coalescing a burst of
    edits into one update). Returns True when a task was scheduled."""
    from apps.kpis.tasks import rollups_update_task

    # The guard expires on its own, so a lost task cannot block updates for long.
    if not cache.add(UPDATE_PENDING_KEY, "1", timeout=300):
        return False
    options: dict[str, object] = {"countdown": UPDATE_COUNTDOWN_SECONDS}
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
    """Queue the months a change to this deal can affect.

    Closed/pipeline rollups: every close month the deal ever had and the close months of
    its account's won deals (which of them is the account's first win, the new logo).
    Stage entries and close-date moves (keyed by history month): every month the deal has
    history in, when ``fields`` (what was edited; None = unknown, or a new deal) can change
    them: a stage, a dimension or the close date."""
    edited = None if fields is None else set(fields)
    close_months: set[date] = set()
    history_months: set[date] = set()
    rows = OpportunityHistory.objects.filter(opportunity_id=opportunity_id).values_list(
        "close_date", "changed_at"
    )
    for close_date, changed_at in rows:
        close_months.add(month_start(close_date))
        history_months.add(month_start(timezone.localtime(changed_at).date()))
    deal = Opportunity.objects.filter(pk=opportunity_id).values("close_date", "account_id").first()
    if deal:
        close_months.add(month_start(deal["close_date"]))
        won = Opportunity.objects.filter(
            account_id=deal["account_id"], stage__outcome=Stage.Outcome.WON
        ).values_list("close_date", flat=True)
        close_months.update(month_start(d) for d in won)
    queued = _queue(DirtyMonth.Area.DEALS, close_months)
    if edited is None or edited & (STAGE_FIELDS | {"close_date"}):
        queued += _queue(DirtyMonth.Area.STAGES, history_months)
    if queued:
        rollups_update_enqueue()
    return queued


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
