"""KPI arithmetic as pure functions: no Django, no database, no settings.

Conventions shared by every function here:
- Money is ``Decimal`` in and ``Decimal`` out (already converted to the base currency).
- Percentages are ``Decimal`` fractions: ``Decimal("0.25")`` means 25 %.
- A ratio whose denominator is zero (or that lacks an input) is ``None``: "no data",
  shown as an em dash, never 0 and never an exception.
- NPS is the one exception to fractions: it is a score from -100 to 100, as the survey
  world quotes it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from typing import Any

ZERO = Decimal("0")
NumberLike = Decimal | int


def _dec(value: NumberLike | None) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(value)


def ratio(numerator: NumberLike | None, denominator: NumberLike | None) -> Decimal | None:
    """``numerator / denominator``, or None when either is missing or the denominator is 0."""
    num, den = _dec(numerator), _dec(denominator)
    if num is None or den is None or den == 0:
        return None
    return num / den


def win_rate(won: int, lost: int) -> Decimal | None:
    """Won / (won + lost), by count, as a fraction."""
    return ratio(won, won + lost)


def win_rate_by_value(won_amount: Decimal, lost_amount: Decimal) -> Decimal | None:
    """Won amount / (won amount + lost amount), as a fraction."""
    return ratio(won_amount, won_amount + lost_amount)


def average_deal_size(bookings: Decimal, won_deals: int) -> Decimal | None:
    """Bookings / won deals, money."""
    return ratio(bookings, won_deals)


def mean(total: NumberLike, count: int) -> Decimal | None:
    """Arithmetic mean from a sum and a count (e.g. sales cycle days)."""
    return ratio(total, count)


def median(values: Iterable[NumberLike]) -> Decimal | None:
    """Median of the values; the mean of the two middle values for an even count."""
    ordered = sorted(Decimal(v) for v in values)
    n = len(ordered)
    if n == 0:
        return None
    mid = n // 2
    if n % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def growth(current: Decimal | None, before: Decimal | None) -> Decimal | None:
    """(current - before) / before, as a fraction; None when ``before`` is 0 or missing."""
    if current is None or before is None:
        return None
    return ratio(current - before, before)


def attainment(bookings: Decimal, quota: Decimal | None) -> Decimal | None:
    """Bookings / quota, as a fraction; None without a (non-zero) quota."""
    return ratio(bookings, quota)


def pipeline_coverage(
    open_pipeline: Decimal, quota: Decimal | None, bookings: Decimal
) -> Decimal | None:
    """Open pipeline / quota still to close (quota - bookings), as a multiple.

    None when there is no quota or when it is already met: no pipeline is needed then.
    """
    if quota is None:
        return None
    remaining = quota - bookings
    if remaining <= 0:
        return None
    return open_pipeline / remaining


def pipeline_velocity(
    open_deals: int,
    win_rate_fraction: Decimal | None,
    average_deal: Decimal | None,
    mean_cycle_days: Decimal | None,
) -> Decimal | None:
    """(open deals x win rate x average deal size) / mean sales cycle: money per day."""
    if win_rate_fraction is None or average_deal is None:
        return None
    return ratio(open_deals * win_rate_fraction * average_deal, mean_cycle_days)


def stage_conversion(entered: int, advanced: int) -> Decimal | None:
    """Of the deals that entered stage A, the share that later reached the next stage."""
    return ratio(advanced, entered)


@dataclass(frozen=True)
class RetentionTotals:
    """Sums over the accounts with opening MRR > 0 for one period (base currency).

    ``opening``: sum of opening MRR; ``retained``: sum of min(closing, opening);
    ``closing``: sum of closing MRR; ``accounts``: how many; ``churned``: how many of them
    end the period with closing MRR 0.
    """

    opening: Decimal
    retained: Decimal
    closing: Decimal
    accounts: int
    churned: int


def retention_totals(pairs: Iterable[tuple[Decimal, Decimal]]) -> RetentionTotals:
    """Fold per-account (opening, closing) MRR pairs; accounts with opening 0 are skipped
    because new and returning customers do not count towards retention."""
    opening = retained = closing = ZERO
    accounts = churned = 0
    for open_mrr, close_mrr in pairs:
        if open_mrr <= 0:
            continue
        accounts += 1
        opening += open_mrr
        closing += close_mrr
        retained += min(open_mrr, close_mrr)
        if close_mrr <= 0:
            churned += 1
    return RetentionTotals(opening, retained, closing, accounts, churned)


def gross_revenue_retention(totals: RetentionTotals) -> Decimal | None:
    """Sum of min(closing, opening) / sum of opening; at most 1."""
    return ratio(totals.retained, totals.opening)


def net_revenue_retention(totals: RetentionTotals) -> Decimal | None:
    """Sum of closing / sum of opening over the same accounts; expansion lifts it above 1."""
    return ratio(totals.closing, totals.opening)


def logo_churn_rate(totals: RetentionTotals) -> Decimal | None:
    """Accounts that went from MRR > 0 to 0 / accounts with opening MRR > 0."""
    return ratio(totals.churned, totals.accounts)


def arr(mrr: Decimal) -> Decimal:
    """Annual recurring revenue: 12 x MRR."""
    return mrr * 12


def average_rate(rates: Sequence[Decimal | None]) -> Decimal | None:
    """Mean of the rates that have data; None when none has."""
    known = [r for r in rates if r is not None]
    if not known:
        return None
    return sum(known, ZERO) / len(known)


def customer_lifetime_value(
    mrr: Decimal, active_accounts: int, gross_margin: Decimal, monthly_churn: Decimal | None
) -> Decimal | None:
    """ARPA x gross margin / monthly logo churn; ARPA = MRR / active accounts (money).

    None without active accounts or without churn (a lifetime would be infinite).
    """
    arpa = ratio(mrr, active_accounts)
    if arpa is None or monthly_churn is None or monthly_churn == 0:
        return None
    return arpa * gross_margin / monthly_churn


def nps_category(score: int) -> str:
    """promoter (9-10), passive (7-8) or detractor (0-6); anything else is refused."""
    if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 10:
        raise ValueError(f"an NPS score is a whole number from 0 to 10, got {score!r}")
    if score >= 9:
        return "promoter"
    if score >= 7:
        return "passive"
    return "detractor"


def net_promoter_score(promoters: int, passives: int, detractors: int) -> Decimal | None:
    """% promoters - % detractors over all responses: a score from -100 to 100."""
    total = promoters + passives + detractors
    if total == 0:
        return None
    return Decimal(100 * (promoters - detractors)) / Decimal(total)


@dataclass(frozen=True)
class SlipWindow:
    """A period for slipped deals: first/last day (dates) and the same as instants
    [window_start, window_end)."""

    key: str
    period_start: Any
    period_end: Any
    window_start: Any
    window_end: Any


def slipped_deals_by_period(
    rows: Iterable[tuple[int, Any, Any, bool]], windows: Sequence[SlipWindow]
) -> dict[str, set[int]]:
    """Deals that slipped out of each period, from their history rows, in one pass.

    ``rows``: (deal id, changed_at, close_date, is_open) ordered by deal then time.

    A deal slipped in a period when, during the period, a change moved its close date from
    inside the period to after it, and at the end of the period it is still open with a
    close date after the period (moved back in, or closed, by then: it did not slip).
    """
    result: dict[str, set[int]] = {w.key: set() for w in windows}
    for deal, history in groupby(rows, key=lambda row: row[0]):
        items = list(history)
        times = [row[1] for row in items]
        for i in range(1, len(items)):
            _, moment, new_close, _ = items[i]
            old_close = items[i - 1][2]
            if new_close == old_close:
                continue
            for w in windows:
                if not (
                    w.window_start <= moment < w.window_end
                    and w.period_start <= old_close <= w.period_end
                    and new_close > w.period_end
                ):
                    continue
                # The deal as it stood at the end of the period: its last row before then.
                _, _, close_at_end, open_at_end = items[bisect_left(times, w.window_end) - 1]
                if open_at_end and close_at_end > w.period_end:
                    result[w.key].add(deal)
    return result


def slipped_deals(
    rows: Iterable[tuple[int, Any, Any, bool]],
    *,
    period_start: Any,
    period_end: Any,
    window_start: Any,
    window_end: Any,
) -> set[int]:
    """Deals that slipped out of one period (see :func:`slipped_deals_by_period`)."""
    window = SlipWindow("p", period_start, period_end, window_start, window_end)
    return slipped_deals_by_period(rows, [window])["p"]
