"""Pure forecasting arithmetic: the call roll-up, weeks of a period and accuracy scores.

No Django imports: everything comes in as plain values, so the rules are tested by hand
without a database. Money is Decimal in the base currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


def week_of_period(day: date, period_start: date) -> int:
    """Week of the period ``day`` falls in: week 1 is the period's first seven days
    (``period_start`` to ``period_start + 6``), week 2 the next seven, and so on. A day
    before the period start is week 1 (a call made ahead of the period)."""
    return max((day - period_start).days // 7, 0) + 1


@dataclass(frozen=True)
class OwnerDeals:
    """One deal owner's figures for a period: bookings so far (won deals closed in the
    period) and open deals closing in it, by forecast category."""

    won: Decimal = ZERO
    open_commit: Decimal = ZERO
    open_best_case: Decimal = ZERO

    @property
    def commit(self) -> Decimal:
        """Won to date + open deals in Commit."""
        return self.won + self.open_commit

    @property
    def best_case(self) -> Decimal:
        """Won to date + open deals in Commit or Best case (best case includes commit)."""
        return self.won + self.open_commit + self.open_best_case


@dataclass(frozen=True)
class Call:
    commit: Decimal
    best_case: Decimal


@dataclass
class RollupNode:
    """A team's roll-up: what its own members' deals give, plus each child team's
    contribution (the child's latest call, or its own roll-up while it has no call)."""

    team_id: int
    own: OwnerDeals = field(default_factory=OwnerDeals)
    children: list[ChildContribution] = field(default_factory=list)

    @property
    def commit(self) -> Decimal:
        return self.own.commit + sum((c.commit for c in self.children), ZERO)

    @property
    def best_case(self) -> Decimal:
        return self.own.best_case + sum((c.best_case for c in self.children), ZERO)


@dataclass(frozen=True)
class ChildContribution:
    team_id: int
    commit: Decimal
    best_case: Decimal
    from_call: bool  # False: the child has no call yet, its own roll-up stands in


def team_rollup(
    team_id: int,
    *,
    children: Mapping[int, list[int]],
    members: Mapping[int, list[int]],
    owners: Mapping[int, OwnerDeals],
    calls: Mapping[int, Call],
) -> RollupNode:
    """The roll-up of the level below ``team_id``.

    - ``children``: child team ids by team id (active teams only);
    - ``members``: ids of the people whose team is that team (deal owners);
    - ``owners``: each owner's :class:`OwnerDeals` for the period (absent = nothing);
    - ``calls``: each team's latest call for the period.

    roll-up(T) = sum over T's own members m of (won(m) + open(m) in the category)
                 + sum over T's child teams C of (latest call of C, or roll-up(C) if none).
    """
    own = OwnerDeals()
    for owner_id in members.get(team_id, ()):
        deals = owners.get(owner_id)
        if deals is not None:
            own = OwnerDeals(
                won=own.won + deals.won,
                open_commit=own.open_commit + deals.open_commit,
                open_best_case=own.open_best_case + deals.open_best_case,
            )
    node = RollupNode(team_id=team_id, own=own)
    for child_id in children.get(team_id, ()):
        call = calls.get(child_id)
        if call is not None:
            node.children.append(ChildContribution(child_id, call.commit, call.best_case, True))
        else:
            sub = team_rollup(
                child_id, children=children, members=members, owners=owners, calls=calls
            )
            node.children.append(ChildContribution(child_id, sub.commit, sub.best_case, False))
    return node


# --- Accuracy -------------------------------------------------------------------------------


def forecast_error(value: Decimal, actual: Decimal) -> Decimal:
    """Signed error, forecast minus actual (positive: the forecast was too high)."""
    return (value - actual).quantize(CENT, rounding=ROUND_HALF_UP)


def abs_pct_error(value: Decimal, actual: Decimal) -> Decimal | None:
    """|forecast - actual| / actual, as a fraction (0.125 = 12.5 %); None ("no data")
    when the actual is zero."""
    if actual == 0:
        return None
    return (abs(value - actual) / actual).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class ScoredForecast:
    source: str
    label: str
    week: int
    error: Decimal
    ape: Decimal | None


@dataclass(frozen=True)
class AccuracyRow:
    """One forecast source's accuracy: mean absolute percentage error over every scored
    snapshot (MAPE), the mean signed error (bias), and MAPE by week of the period."""

    source: str
    label: str
    scored: int
    mape: Decimal | None
    bias: Decimal | None
    by_week: dict[int, Decimal | None]


def _mean(values: list[Decimal]) -> Decimal | None:
    if not values:
        return None
    return (sum(values, Decimal(0)) / len(values)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def accuracy_table(scored: Iterable[ScoredForecast]) -> list[AccuracyRow]:
    """Aggregate scored snapshots per source, most accurate (lowest MAPE) first; a source
    without any percentage error (every actual zero) comes last."""
    groups: dict[str, list[ScoredForecast]] = {}
    for item in scored:
        groups.setdefault(item.source, []).append(item)
    rows: list[AccuracyRow] = []
    for source, items in groups.items():
        apes = [i.ape for i in items if i.ape is not None]
        weeks: dict[int, list[Decimal]] = {}
        for i in items:
            if i.ape is not None:
                weeks.setdefault(i.week, []).append(i.ape)
        bias = _mean([i.error for i in items])
        rows.append(
            AccuracyRow(
                source=source,
                label=items[0].label,
                scored=len(items),
                mape=_mean(apes),
                bias=None if bias is None else bias.quantize(CENT, ROUND_HALF_UP),
                by_week={w: _mean(v) for w, v in sorted(weeks.items())},
            )
        )
    rows.sort(key=lambda r: (r.mape is None, r.mape if r.mape is not None else 0, r.source))
    return rows
