"""A stand-in for the forecast engine's API with answers fixed by hand, so the app's own
code (storage, idempotency, pages, permissions) is tested apart from the engine's maths.
The dataclasses are the engine's own (the contract); only the functions are replaced.

Per scope and period: ``weighted`` = 100 x (number of owners in scope, company = 1000) and
``monte_carlo`` the same with P10/P50/P90 at -10 % / 0 / +10 %; every call is recorded.
"""

from __future__ import annotations

import contextlib
from datetime import date
from decimal import Decimal

from apps.forecasting.engine.api import (
    DealScore,
    MethodForecast,
    Outlook,
    OutlookPoint,
    ScenarioInputs,
)
from apps.kpis.selectors import KpiFilters, KpiPeriod, KpiScope

__all__ = ["DealScore", "FakeEngine", "MethodForecast", "ScenarioInputs"]


def scope_base(scope: KpiScope) -> Decimal:
    if scope.owner_ids is None:
        return Decimal("1000.00")
    return Decimal(100 * len(scope.owner_ids)).quantize(Decimal("0.01"))


class FakeEngine:
    ScenarioInputs = ScenarioInputs

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.scores: dict[int, DealScore] = {}
        self.bump = Decimal("0.00")  # added to every expected value (to see what was redone)

    def reusing_data(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def forecasts_compute(
        self,
        *,
        scope: KpiScope,
        period: KpiPeriod,
        as_of: date | None = None,
        filters: KpiFilters | None = None,
    ) -> list[MethodForecast]:
        self.calls.append(("forecasts", scope.kind, period.name))
        base = scope_base(scope) + self.bump
        return [
            MethodForecast(
                "weighted", "Weighted pipeline", base, Decimal("0.00"), None, None, None, 1, {}
            ),
            MethodForecast(
                "monte_carlo",
                "Monte Carlo",
                base,
                Decimal("0.00"),
                base * Decimal("0.9"),
                base,
                base * Decimal("1.1"),
                1,
                {"runs": 10},
            ),
        ]

    def deal_scores(self, *, scope: KpiScope, period: KpiPeriod, as_of: date | None = None):
        self.calls.append(("scores", scope.kind, period.name))
        return list(self.scores.values())

    def outlook_compute(self, *, scope: KpiScope, months: int = 36, scenario=None):
        scenario = scenario or ScenarioInputs()
        self.calls.append(("outlook", scope.kind, str(months)))
        factor = Decimal(1) + Decimal(str(scenario.growth_pct)) / 100
        points = [
            OutlookPoint(
                date(2030, 1, 1),
                Decimal("100.00") * factor,
                Decimal("80.00"),
                Decimal("120.00"),
                Decimal("100.00"),
            )
        ]
        return Outlook(
            history=[(date(2029, 12, 1), Decimal("90.00"))],
            points=points,
            model="fake model",
            yearly=[("FY2030", Decimal("100.00") * factor, Decimal("100.00"))],
        )
