"""A stand-in for the forecast engine's API with answers fixed by hand, so the app's own
code (storage, idempotency, pages, permissions) is tested apart from the engine's maths.
The dataclasses are the engine's own (the contract); only the functions are replaced.

Per scope and period: ``weighted`` = 100 x (number of owners in scope, company = 1000) and
``monte_carlo`` the same with P10/P50/P90 at -10 % / 0 / +10 %; every call is recorded.

``deal_scores`` answers the hand-set ``scores`` of the deals that are open now, close in
the period and are owned by someone in the scope (company: everyone), as the engine does
for today; a test sets ``scores`` before the recompute that stores them.
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
        from apps.crm.models import Opportunity

        self.calls.append(("scores", scope.kind, period.name))
        deals = Opportunity.objects.filter(
            pk__in=self.scores,
            stage__outcome="open",
            close_date__gte=period.start,
            close_date__lte=period.end,
        )
        if scope.owner_ids is not None:
            deals = deals.filter(owner_id__in=scope.owner_ids)
        found = set(deals.values_list("pk", flat=True))
        return sorted(
            (s for pk, s in self.scores.items() if pk in found),
            key=lambda s: (-s.probability, s.opportunity_id),
        )

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
