"""The forecast methods, on the as-of state rebuilt from history (see :mod:`.data`).

Each method answers for one scope and period with only what was known at the end of
``as_of``. Formulas: docs/forecasting-methods.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from django.conf import settings

from apps.crm.models import Stage
from apps.forecasting.engine import calc
from apps.forecasting.engine.data import EngineData, cutoff_micros, day_number
from apps.kpis.selectors import KpiFilters, KpiPeriod, KpiScope, period_shift

#: Past periods used to learn conversion rates: those of the trailing two years.
HISTORY_MONTHS = 24
#: As-of states kept in memory per loaded history.
STATES_KEPT = 3
#: Trailing window of the run-rate of deals created and won in the same period.
RUN_RATE_DAYS = 365


@dataclass
class PeriodDeals:
    """The scope's deals for a period as of a date."""

    open: pd.DataFrame  # as-of state of open deals closing in the period, with attributes
    amounts: list[Decimal]  # base-currency amounts of ``open``, in the same order
    won_to_date: Decimal
    won_deals: int


def _scope_filter(frame: pd.DataFrame, scope: KpiScope, filters: KpiFilters) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    if scope.owner_ids is not None:
        mask &= frame["owner"].isin(list(scope.owner_ids)).to_numpy()
    if filters.region is not None:
        mask &= (frame["region"] == filters.region).to_numpy()
    if filters.segment is not None:
        mask &= (frame["segment"].astype(str) == filters.segment).to_numpy()
    if filters.product is not None:
        mask &= (frame["product"] == filters.product).to_numpy()
    if filters.deal_type is not None:
        mask &= (frame["deal_type"].astype(str) == filters.deal_type).to_numpy()
    return frame.loc[mask]


def state_with_attributes(data: EngineData, as_of: date) -> pd.DataFrame:
    """Every deal that existed at the end of ``as_of``, as it stood then, joined with its
    (static) attributes; memoised per as-of date."""
    key = ("state", as_of)
    if key in data.memo:
        return data.memo[key]
    # Keep a few as-of states only (a backtest walks through dozens of weeks; each state
    # holds every deal).
    held = [k for k in data.memo if isinstance(k, tuple) and k and k[0] == "state"]
    for old in held[: max(0, len(held) - (STATES_KEPT - 1))]:
        del data.memo[old]
    state = data.state_at(cutoff_micros(as_of))
    attrs = data.deals.reindex(state.index)
    state = state.assign(
        created=attrs["created"].to_numpy(),
        product=attrs["product"].to_numpy(),
        deal_type=attrs["deal_type"].to_numpy(),
        segment=attrs["segment"].to_numpy(),
        region=attrs["region"].to_numpy(),
    )
    # A deal whose creation date is after as_of did not exist yet, whatever its rows.
    state = state.loc[state["created"].notna() & (state["created"] <= day_number(as_of))]
    data.memo[key] = state
    return state


def period_deals(
    data: EngineData, *, scope: KpiScope, period: KpiPeriod, as_of: date, filters: KpiFilters
) -> PeriodDeals:
    state = _scope_filter(state_with_attributes(data, as_of), scope, filters)
    start, end = day_number(period.start), day_number(period.end)
    in_period = (state["close"] >= start) & (state["close"] <= end)
    open_of = data.stages.code_array(Stage.Outcome.OPEN)
    won_of = data.stages.code_array(Stage.Outcome.WON)
    stage = state["stage"].to_numpy()
    is_open = open_of[stage] & in_period.to_numpy()
    is_won = won_of[stage] & in_period.to_numpy()
    won = state.loc[is_won]
    won_to_date = Decimal("0.00")
    for cents, currency, close in won[["cents", "currency", "close"]].itertuples(index=False):
        won_to_date += data.rates.to_base(cents, str(currency), close)
    opened = state.loc[is_open].sort_values("opp")
    amounts = [
        data.rates.to_base(cents, str(currency), close)
        for cents, currency, close in opened[["cents", "currency", "close"]].itertuples(index=False)
    ]
    return PeriodDeals(open=opened, amounts=amounts, won_to_date=won_to_date, won_deals=len(won))


# --- Weighted pipeline -------------------------------------------------------------------


def weighted(data: EngineData, deals: PeriodDeals) -> tuple[Decimal, dict]:
    """Expected from open deals: sum of amount x stage probability / 100 (cent per deal)."""
    pct = data.stages.probability_pct
    by_stage: dict[str, dict[str, str | int]] = {}
    total = Decimal("0.00")
    for stage, amount in zip(deals.open["stage"].tolist(), deals.amounts, strict=True):
        part = calc.weighted_amount(amount, pct[stage])
        total += part
        row = by_stage.setdefault(
            data.stages.name[stage],
            {"deals": 0, "amount": "0.00", "weighted": "0.00", "probability": str(pct[stage])},
        )
        row["deals"] = int(row["deals"]) + 1
        row["amount"] = str(Decimal(str(row["amount"])) + amount)
        row["weighted"] = str(Decimal(str(row["weighted"])) + part)
    return total, {"by_stage": by_stage}


# --- Historical conversion by stage and age ----------------------------------------------


def _history_periods(period: KpiPeriod, as_of: date) -> list[tuple[KpiPeriod, date]]:
    """The past periods of the trailing two years that had ended by ``as_of``, each with
    the day at the same position in it as ``as_of`` in ``period`` (clamped to it)."""
    months = len(period.months)
    count = max(1, HISTORY_MONTHS // months)
    offset = (as_of - period.start).days
    result = []
    for step in range(1, count + 1):
        past = period_shift(period, -step)
        if past.end >= as_of:
            continue
        day = min(past.start + timedelta(days=offset), past.end)
        result.append((past, day))
    return result


def conversion_rates(
    data: EngineData, period: KpiPeriod, as_of: date
) -> tuple[calc.ConversionRates, list[dict]]:
    """Win rates by stage and age bucket, learned company-wide from the past periods'
    pipelines as they stood at the same point of those periods, with the snapshots used
    (memoised)."""
    key = ("rates", period.kind, len(period.months), period.start, as_of)
    if key in data.memo:
        return data.memo[key]
    final = data.state_at(cutoff_micros(as_of))
    won_of = data.stages.code_array(Stage.Outcome.WON)
    open_of = data.stages.code_array(Stage.Outcome.OPEN)
    created = data.deals["created"]
    stages, buckets, outcomes = [], [], []
    snapshots = []
    for past, day in _history_periods(period, as_of):
        state = data.state_at(cutoff_micros(day))
        start, end = day_number(past.start), day_number(past.end)
        made = created.reindex(state.index).to_numpy()
        mask = (
            open_of[state["stage"].to_numpy()]
            & (state["close"].to_numpy() >= start)
            & (state["close"].to_numpy() <= end)
            & (made <= day_number(day))
        )
        snap = state.loc[mask]
        if snap.empty:
            continue
        later = final.reindex(snap.index)
        later_stage = later["stage"].fillna(0).astype(np.int64).to_numpy()
        later_close = later["close"].fillna(-1).to_numpy()
        won = won_of[later_stage] & (later_close >= start) & (later_close <= end)
        stages.append(snap["stage"].to_numpy())
        buckets.append(calc.age_bucket(day_number(day) - made[mask]))
        outcomes.append(won)
        snapshots.append({"period": past.name, "as_of": day.isoformat(), "deals": int(mask.sum())})
    if stages:
        rates = calc.conversion_rates(
            np.concatenate(stages),
            np.concatenate(buckets),
            np.concatenate(outcomes),
            data.stages.probability,
        )
    else:
        empty = pd.DataFrame({"stage": [], "bucket": [], "n": [], "wins": [], "rate": []})
        rates = calc.ConversionRates(cells=empty, stages=empty.drop(columns="bucket"), samples=0)
    data.memo[key] = (rates, snapshots)
    return data.memo[key]


def historical(
    data: EngineData, deals: PeriodDeals, period: KpiPeriod, as_of: date
) -> tuple[Decimal, np.ndarray, dict]:
    rates, snapshots = conversion_rates(data, period, as_of)
    frame = deals.open
    ages = day_number(as_of) - frame["created"].to_numpy()
    probs = rates.lookup(frame["stage"].to_numpy(), calc.age_bucket(ages), data.stages.probability)
    total = Decimal("0.00")
    for amount, p in zip(deals.amounts, probs.tolist(), strict=True):
        total += calc.money(amount * Decimal(repr(p)))
    table = [
        {
            "stage": data.stages.name.get(int(s), str(s)),
            "age": calc.AGE_LABELS[int(b)],
            "deals": int(n),
            "won": int(w),
            "rate": round(float(r), 4),
        }
        for s, b, n, w, r in rates.cells[["stage", "bucket", "n", "wins", "rate"]].itertuples(
            index=False
        )
    ]
    detail = {"samples": rates.samples, "snapshots": snapshots, "rates": table}
    return total, probs, detail


# --- Run-rate of business not created yet ------------------------------------------------


def _period_index(days: np.ndarray, kind: str) -> np.ndarray:
    """Fiscal period number of each day (months for 'month' and 'range')."""
    stamps = pd.to_datetime(np.asarray(days, dtype="int64"), unit="D")
    month_index = stamps.year.to_numpy() * 12 + stamps.month.to_numpy() - 1
    month_index = month_index - (settings.FISCAL_YEAR_START_MONTH - 1)
    if kind == "quarter":
        return month_index // 3
    if kind == "year":
        return month_index // 12
    return month_index


def run_rate(
    data: EngineData, *, scope: KpiScope, period: KpiPeriod, as_of: date, filters: KpiFilters
) -> tuple[float, np.ndarray, dict]:
    """(expected number of new won deals for the rest of the period, their amounts in the
    trailing window, detail). Over the RUN_RATE_DAYS days ending at as_of: deals created
    and won (as known at as_of) within the same fiscal period; deals per day x days left."""
    state = _scope_filter(state_with_attributes(data, as_of), scope, filters)
    won_of = data.stages.code_array(Stage.Outcome.WON)
    first = day_number(as_of) - RUN_RATE_DAYS + 1
    last = day_number(as_of)
    close = state["close"].to_numpy()
    made = state["created"].to_numpy().astype(np.int64)
    mask = won_of[state["stage"].to_numpy()] & (made >= first) & (close <= last) & (made <= last)
    kind = "month" if period.kind == "range" else period.kind
    if mask.any():
        same = _period_index(made[mask], kind) == _period_index(close[mask], kind)
        picked = state.loc[mask].loc[same]
    else:
        picked = state.iloc[0:0]
    amounts = data.rates.to_base_float(
        picked["cents"].to_numpy(),
        picked["currency"].astype(str).to_numpy(),
        picked["close"].to_numpy(),
    )
    amounts = amounts[~np.isnan(amounts)]
    days_left = max(0, (period.end - max(as_of, period.start - timedelta(days=1))).days)
    per_day = len(amounts) / RUN_RATE_DAYS
    expected_deals = per_day * days_left
    detail = {
        "window_days": RUN_RATE_DAYS,
        "created_and_won_deals": len(amounts),
        "bookings_per_day": round(float(amounts.sum()) / RUN_RATE_DAYS, 2),
        "days_left": days_left,
        "expected": str(calc.money(float(amounts.sum()) / RUN_RATE_DAYS * days_left)),
    }
    return expected_deals, amounts, detail
