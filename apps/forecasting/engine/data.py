"""Loading what the forecast engine works from, in bulk, into numpy/pandas.

Everything is rebuilt from :class:`apps.crm.models.OpportunityHistory`: the deal as it
stood at a moment t is its latest history row with ``changed_at < t``. "As of" a date D
means *known by the end of D* in ``TIME_ZONE``: the cutoff is the first instant of D + 1.

One load reads the whole history (COPY on PostgreSQL, one query elsewhere) and keeps it in
memory, keyed by a fingerprint of the tables, so the nightly run over every scope, the
backtest over many past weeks and the model training share a single read. Any write to the
deals, their history, the stages or the exchange rates changes the fingerprint.

Arrays use plain integers for speed: days since 1970-01-01 for dates, microseconds since
the epoch (UTC) for moments, amounts in cents (exact: amounts have two decimals).
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection
from django.db.models import Count, Max

from apps.core.models import ExchangeRate
from apps.crm.models import Account, Opportunity, OpportunityHistory, Stage
from apps.kpis.services import MissingRateError

EPOCH = date(1970, 1, 1)
CENT = Decimal("0.01")
MICROS_PER_DAY = 86_400 * 1_000_000


def day_number(day: date) -> int:
    return (day - EPOCH).days


def day_from_number(number: int) -> date:
    return EPOCH + timedelta(days=int(number))


def cutoff(as_of: date) -> datetime:
    """The first instant after ``as_of`` (end of that day) in TIME_ZONE."""
    return datetime.combine(
        as_of + timedelta(days=1), time.min, tzinfo=ZoneInfo(settings.TIME_ZONE)
    )


def cutoff_micros(as_of: date) -> int:
    moment = cutoff(as_of).astimezone(UTC)
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000


# --- Exchange rates ----------------------------------------------------------------------


@dataclass
class RateTable:
    """Rates to the base currency per currency, for "the rate of that day or the latest
    earlier one" (the KPI engine's rule, :mod:`apps.kpis.services`)."""

    base: str
    days: dict[str, np.ndarray] = field(default_factory=dict)
    rates: dict[str, list[Decimal]] = field(default_factory=dict)

    def rate_index(self, currency: str, day: int) -> int | None:
        days = self.days.get(currency)
        if days is None:
            return None
        index = int(np.searchsorted(days, day, side="right")) - 1
        return index if index >= 0 else None

    def to_base(self, cents: int, currency: str, day: int) -> Decimal:
        """``cents`` of ``currency`` in the base currency at the rate effective on ``day``,
        rounded to the cent (half away from zero, as SQL ROUND)."""
        amount = Decimal(int(cents)) / 100
        if currency == self.base:
            return amount.quantize(CENT)
        index = self.rate_index(currency, day)
        if index is None:
            when = day_from_number(day).isoformat()
            raise MissingRateError(
                f"No {currency}->{self.base} exchange rate on or before {when} "
                "(needed by a deal); add the rate.",
                extra={"currency": currency, "date": when, "record": "deal"},
            )
        return (amount * self.rates[currency][index]).quantize(CENT, rounding=ROUND_HALF_UP)

    def to_base_float(self, cents: np.ndarray, currency: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Vectorised conversion for learning (floats; NaN where no rate is known)."""
        out = cents.astype(float) / 100.0
        for code in np.unique(currency):
            if code == self.base:
                continue
            mask = currency == code
            days = self.days.get(str(code))
            if days is None:
                out[mask] = np.nan
                continue
            index = np.searchsorted(days, day[mask], side="right") - 1
            values = np.asarray([float(r) for r in self.rates[str(code)]])
            converted = out[mask] * values[np.clip(index, 0, None)]
            converted[index < 0] = np.nan
            out[mask] = converted
        return out


def _load_rates() -> RateTable:
    table = RateTable(base=settings.BASE_CURRENCY)
    rows: dict[str, list[tuple[int, Decimal]]] = {}
    for currency, day, rate in (
        ExchangeRate.objects.filter(base_currency=table.base)
        .order_by("currency", "rate_date")
        .values_list("currency", "rate_date", "rate")
    ):
        rows.setdefault(currency, []).append((day_number(day), rate))
    for currency, series in rows.items():
        table.days[currency] = np.asarray([d for d, _ in series], dtype=np.int64)
        table.rates[currency] = [r for _, r in series]
    return table


# --- The loaded data ---------------------------------------------------------------------


@dataclass
class StageInfo:
    """Stages by id: outcome ('open'/'won'/'lost'), default probability (0..1), name."""

    ids: np.ndarray
    outcome: dict[int, str]
    probability: dict[int, float]
    probability_pct: dict[int, Decimal]
    name: dict[int, str]
    order: dict[int, int]

    def open_ids(self) -> list[int]:
        return [sid for sid in self.ids.tolist() if self.outcome[sid] == Stage.Outcome.OPEN]

    def code_array(self, kind: str) -> np.ndarray:
        """A lookup array stage id -> 1 for stages of outcome ``kind``, else 0."""
        size = int(self.ids.max()) + 1 if len(self.ids) else 1
        out = np.zeros(size, dtype=bool)
        for sid, outcome in self.outcome.items():
            out[sid] = outcome == kind
        return out

    def probability_array(self) -> np.ndarray:
        size = int(self.ids.max()) + 1 if len(self.ids) else 1
        out = np.zeros(size, dtype=float)
        for sid, p in self.probability.items():
            out[sid] = p
        return out


@dataclass
class EngineData:
    """The whole deal history, sorted by (deal, changed_at, id), with derived columns.

    history columns: opp, t (micros), stage, cents, currency, close (day), owner, category,
    plus ``stage_since`` (t of the row where the current stage was entered), ``pushes``
    (close-date moves to a later date so far) and ``is_last`` helpers computed per cutoff.
    deals (indexed by opp): created (day), product, deal_type, segment, region.
    """

    history: pd.DataFrame
    deals: pd.DataFrame
    stages: StageInfo
    rates: RateTable
    fingerprint: tuple
    closings: pd.DataFrame  # first closing row per deal: opp, t, owner, won, close
    memo: dict = field(default_factory=dict)  # results derived from this data, by key

    def state_at(self, cut: int) -> pd.DataFrame:
        """Each deal as it stood just before moment ``cut`` (micros): its latest history row
        with t < cut. Deals with no such row did not exist yet and are absent."""
        h = self.history
        opp = h["opp"].to_numpy()
        t = h["t"].to_numpy()
        before = t < cut
        next_opp = np.empty_like(opp)
        next_opp[:-1] = opp[1:]
        next_opp[-1:] = -1
        next_before = np.zeros_like(before)
        next_before[:-1] = before[1:]
        last = before & ((next_opp != opp) | ~next_before)
        state = h.loc[last]
        return state.set_index(pd.Index(state["opp"].to_numpy()))


_cache_lock = threading.Lock()
_cache: dict[str, EngineData] = {}


def fingerprint() -> tuple:
    """Cheap summary that changes on any write the engine depends on: new history rows
    (history is append-only: every tracked change adds a row), deals created, deleted or
    edited (``updated_at``), stages, exchange rates and accounts."""
    hist = OpportunityHistory.objects.aggregate(last=Max("id"), at=Max("changed_at"))
    opps = Opportunity.objects.aggregate(n=Count("id"), last=Max("id"), at=Max("updated_at"))
    stages = tuple(Stage.objects.order_by("id").values_list("id", "outcome", "probability"))
    rates = ExchangeRate.objects.aggregate(n=Count("id"), last=Max("id"))
    accounts = Account.objects.aggregate(n=Count("id"), last=Max("id"))
    return (
        connection.settings_dict.get("NAME"),
        settings.BASE_CURRENCY,
        settings.TIME_ZONE,
        tuple(hist.values()),
        tuple(opps.values()),
        stages,
        tuple(rates.values()),
        tuple(accounts.values()),
    )


_reuse = threading.local()


@contextlib.contextmanager
def reusing() -> Iterator[None]:
    """Inside this block :func:`load` checks the fingerprint once and then reuses the
    loaded data: for batch runs (nightly recompute of every scope, backtests) that must
    see one consistent state and should not pay the check per call."""
    depth = getattr(_reuse, "depth", 0)
    _reuse.depth = depth + 1
    try:
        yield
    finally:
        _reuse.depth = depth
        if depth == 0:
            _reuse.data = None


def cache_clear() -> None:
    with _cache_lock:
        _cache.clear()


def load() -> EngineData:
    """The engine's data, read once per fingerprint (per process)."""
    reused = getattr(_reuse, "data", None)
    if reused is not None and getattr(_reuse, "depth", 0) > 0:
        return reused
    key_parts = fingerprint()
    key = repr(key_parts)
    with _cache_lock:
        found = _cache.get(key)
    if found is not None:
        if getattr(_reuse, "depth", 0):
            _reuse.data = found
        return found
    data = _read(key_parts)
    with _cache_lock:
        _cache.clear()
        _cache[key] = data
    if getattr(_reuse, "depth", 0):
        _reuse.data = data
    return data


_HISTORY_COLUMNS = ["opp", "hid", "t", "stage", "cents", "currency", "close", "owner", "category"]


def _read_history() -> pd.DataFrame:
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(OpportunityHistory._meta.db_table)
        sql = (
            "COPY (SELECT opportunity_id, id, "
            "CAST(EXTRACT(EPOCH FROM changed_at) * 1000000 AS bigint), stage_id, "
            "CAST(ROUND(amount * 100) AS bigint), currency, "
            "close_date - DATE '1970-01-01', owner_id, forecast_category "
            f"FROM {table}) TO STDOUT WITH (FORMAT csv)"
        )
        buffer = io.BytesIO()
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(sql, buffer)
        buffer.seek(0)
        frame = pd.read_csv(
            buffer,
            header=None,
            names=_HISTORY_COLUMNS,
            dtype={
                "opp": np.int64,
                "hid": np.int64,
                "t": np.int64,
                "stage": np.int64,
                "cents": np.int64,
                "currency": "category",
                "close": np.int64,
                "owner": np.int64,
                "category": "category",
            },
        )
    else:
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        rows = [
            (
                opp,
                hid,
                int((at - epoch).total_seconds() * 1_000_000),
                stage,
                int((amount * 100).to_integral_value()),
                currency,
                day_number(close),
                owner,
                category,
            )
            for opp, hid, at, stage, amount, currency, close, owner, category in (
                OpportunityHistory.objects.values_list(
                    "opportunity_id",
                    "id",
                    "changed_at",
                    "stage_id",
                    "amount",
                    "currency",
                    "close_date",
                    "owner_id",
                    "forecast_category",
                ).iterator(chunk_size=20_000)
            )
        ]
        frame = pd.DataFrame(rows, columns=_HISTORY_COLUMNS)
        for column in ("opp", "hid", "t", "stage", "cents", "close", "owner"):
            frame[column] = frame[column].astype(np.int64)
        frame["currency"] = frame["currency"].astype("category")
        frame["category"] = frame["category"].astype("category")
    frame = frame.sort_values(["opp", "t", "hid"], kind="stable", ignore_index=True)
    return frame


def _read_deals() -> pd.DataFrame:
    rows = Opportunity.objects.values_list(
        "id", "created_date", "product_id", "deal_type", "account__segment", "account__region_id"
    )
    if connection.vendor == "postgresql":
        opp = connection.ops.quote_name(Opportunity._meta.db_table)
        account = connection.ops.quote_name(Account._meta.db_table)
        sql = (
            "COPY (SELECT o.id, o.created_date - DATE '1970-01-01', COALESCE(o.product_id, 0), "
            "o.deal_type, a.segment, COALESCE(a.region_id, 0) "
            f"FROM {opp} o JOIN {account} a ON a.id = o.account_id) TO STDOUT WITH (FORMAT csv)"
        )
        buffer = io.BytesIO()
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(sql, buffer)
        buffer.seek(0)
        frame = pd.read_csv(
            buffer,
            header=None,
            names=["opp", "created", "product", "deal_type", "segment", "region"],
            dtype={
                "opp": np.int64,
                "created": np.int64,
                "product": np.int64,
                "deal_type": "category",
                "segment": "category",
                "region": np.int64,
            },
        )
    else:
        frame = pd.DataFrame(
            [
                (pk, day_number(created), product or 0, deal_type, segment, region or 0)
                for pk, created, product, deal_type, segment, region in rows.iterator()
            ],
            columns=["opp", "created", "product", "deal_type", "segment", "region"],
        )
        for column in ("opp", "created", "product", "region"):
            frame[column] = frame[column].astype(np.int64)
    return frame.set_index(pd.Index(frame["opp"].to_numpy())).sort_index()


def _read_stages() -> StageInfo:
    rows = list(
        Stage.objects.order_by("order").values_list("id", "outcome", "probability", "name", "order")
    )
    return StageInfo(
        ids=np.asarray([r[0] for r in rows], dtype=np.int64),
        outcome={r[0]: r[1] for r in rows},
        probability={r[0]: float(r[2]) / 100.0 for r in rows},
        probability_pct={r[0]: r[2] for r in rows},
        name={r[0]: r[3] for r in rows},
        order={r[0]: r[4] for r in rows},
    )


def _derive(history: pd.DataFrame, stages: StageInfo) -> pd.DataFrame:
    """Per-row running values: when the current stage was entered, pushes so far."""
    opp = history["opp"].to_numpy()
    n = len(history)
    first = np.ones(n, dtype=bool)
    if n:
        first[1:] = opp[1:] != opp[:-1]
    stage = history["stage"].to_numpy()
    stage_changed = first.copy()
    if n:
        stage_changed[1:] |= stage[1:] != stage[:-1]
    t = history["t"].to_numpy()
    # Forward-fill the moment of the latest stage change within each deal (the first row of
    # a deal is always a change, so the fill never crosses deals).
    marker = np.where(stage_changed, np.arange(n), 0)
    np.maximum.accumulate(marker, out=marker)
    history["stage_since"] = t[marker] if n else t
    close = history["close"].to_numpy()
    push = np.zeros(n, dtype=np.int64)
    if n:
        push[1:] = ((close[1:] > close[:-1]) & ~first[1:]).astype(np.int64)
    running = np.cumsum(push)
    group_start = np.where(first, np.arange(n), 0)
    np.maximum.accumulate(group_start, out=group_start)
    before_group = running[group_start] - push[group_start] if n else running
    history["pushes"] = running - before_group
    return history


def _closings(history: pd.DataFrame, stages: StageInfo) -> pd.DataFrame:
    """The first row where each deal was closed (won or lost): moment, owner, outcome."""
    won_of = stages.code_array(Stage.Outcome.WON)
    lost_of = stages.code_array(Stage.Outcome.LOST)
    stage = history["stage"].to_numpy()
    closed = won_of[stage] | lost_of[stage]
    rows = history.loc[closed, ["opp", "t", "owner", "stage", "close"]]
    rows = rows.drop_duplicates("opp", keep="first")
    rows = rows.assign(won=won_of[rows["stage"].to_numpy()]).sort_values("t", ignore_index=True)
    return rows


def _read(key: tuple) -> EngineData:
    stages = _read_stages()
    history = _derive(_read_history(), stages)
    deals = _read_deals()
    return EngineData(
        history=history,
        deals=deals,
        stages=stages,
        rates=_load_rates(),
        fingerprint=key,
        closings=_closings(history, stages),
    )
