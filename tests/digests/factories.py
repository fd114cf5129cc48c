"""Stored forecasts for the digest tests, made as apps.forecasting stores them (one
ForecastValue per scope, period and method; won to date included in every figure)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import factory

from apps.forecasting.models import ForecastValue


class ForecastValueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ForecastValue

    scope_key = "company"
    period_name = "2024-Q3"
    period_start = date(2024, 7, 1)
    period_end = date(2024, 9, 30)
    method = "weighted"
    label = "Weighted pipeline"
    expected = Decimal("0.00")
    won_to_date = Decimal("4000.00")
    open_deals = 2
    as_of = date(2024, 9, 29)
    computed_at = datetime(2024, 9, 29, 2, 15, tzinfo=UTC)


def monte_carlo(**kwargs) -> ForecastValue:
    return ForecastValueFactory(method="monte_carlo", label="Monte Carlo", **kwargs)
