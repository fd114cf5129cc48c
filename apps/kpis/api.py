"""KPI API: the registry and any KPI for a period, scope and filters (read-only).

Thin views: they parse and validate query parameters, then call the selectors, which
apply the visibility policy. Every bad parameter is a 400 with a reason; seeing a scope
one may not see is a 403; an unknown KPI a 404.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.errors import ApplicationError
from apps.crm.models import DealType, Product, Segment
from apps.kpis.registry import REGISTRY, Kpi
from apps.kpis.selectors import KpiFilters, KpiPermissionError, KpiResult, kpi_value
from apps.org.models import Region
from apps.quotas import fiscal

ALLOWED_PARAMS = frozenset(
    {"period", "team", "rep", "region", "segment", "product", "deal_type", "stage", "format"}
)
_PLACES = {"money": Decimal("0.01"), "money_per_day": Decimal("0.01")}
_DEFAULT_PLACES = Decimal("0.000001")


def _number(value: Decimal | int | None, unit: str) -> str | int | None:
    """JSON form of a KPI value: null for no data, an integer for counts, a decimal string
    otherwise (money to the cent, other units to six places) so no precision is lost."""
    if value is None or isinstance(value, int):
        return value
    return str(value.quantize(_PLACES.get(unit, _DEFAULT_PLACES)))


def _int_param(params: Any, name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ApplicationError(f"{name} must be a numeric id, got {raw!r}.") from None


def _choice_param(params: Any, name: str, choices: list[str]) -> str | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if raw not in choices:
        raise ApplicationError(f"{name} must be one of {', '.join(choices)}; got {raw!r}.")
    return raw


#: An id as typed: ASCII digits that fit a 64-bit key ("²" passes str.isdigit() but not
#: int(), and a longer number overflows the column); anything else is a code to look up.
_PLAIN_ID = re.compile(r"[0-9]{1,18}")


def _region(params: Any) -> int | None:
    raw = params.get("region")
    if raw in (None, ""):
        return None
    query = (
        Region.objects.filter(pk=int(raw))
        if _PLAIN_ID.fullmatch(raw)
        else Region.objects.filter(code__iexact=raw)
    )
    found = query.values_list("pk", flat=True).first()
    if found is None:
        raise ApplicationError(f"Unknown region {raw!r}; use a region id or code.")
    return found


def _product(params: Any) -> int | None:
    raw = params.get("product")
    if raw in (None, ""):
        return None
    query = (
        Product.objects.filter(pk=int(raw))
        if _PLAIN_ID.fullmatch(raw)
        else Product.objects.filter(external_id=raw)
    )
    found = query.values_list("pk", flat=True).first()
    if found is None:
        raise ApplicationError(f"Unknown product {raw!r}; use a product id or external id.")
    return found


def _current_quarter() -> str:
    today: date = timezone.localdate()
    return fiscal.period_containing(today, "quarter", settings.FISCAL_YEAR_START_MONTH).name


def result_as_dict(result: KpiResult) -> dict[str, Any]:
    unit = result.kpi.unit
    scope = result.scope
    return {
        "name": result.kpi.name,
        "label": result.kpi.label,
        "unit": unit,
        "format": result.kpi.fmt,
        "direction": result.kpi.direction,
        "period": {
            "name": result.period.name,
            "start": result.period.start.isoformat(),
            "end": result.period.end.isoformat(),
        },
        "scope": {
            "kind": scope.kind,
            "team": scope.team_id,
            "rep": scope.rep_id,
            "label": scope.label,
        },
        "filters": {k: v for k, v in result.filters.as_dict().items() if v is not None},
        "stage": result.stage_id,
        "base_currency": settings.BASE_CURRENCY,
        "value": _number(result.value, unit),
        "previous": _number(result.previous, unit),
        "previous_period": result.previous_period.name,
        "year_ago": _number(result.year_ago, unit),
        "year_ago_period": result.year_ago_period.name,
        "series": [{"period": name, "value": _number(v, unit)} for name, v in result.series],
    }


class KpiListApi(APIView):
    """GET /api/v1/kpis/: every KPI of the registry with unit, scopes and filters."""

    def get(self, request: Request) -> Response:
        kpis: list[Kpi] = list(REGISTRY.values())
        return Response({"count": len(kpis), "results": [k.as_dict() for k in kpis]})


class KpiDetailApi(APIView):
    """GET /api/v1/kpis/<name>/?period=2024-Q3&team=..|rep=..&region=..&segment=..
    &product=..&deal_type=..&stage=.. (period defaults to the current fiscal quarter)."""

    def get(self, request: Request, name: str) -> Response:
        if name not in REGISTRY:
            raise exceptions.NotFound(f"Unknown KPI {name!r}; GET /api/v1/kpis/ lists them.")
        params = request.query_params
        unknown = sorted(set(params) - ALLOWED_PARAMS)
        if unknown:
            raise ApplicationError(
                f"Unknown parameter(s): {', '.join(unknown)}.",
                extra={"allowed": sorted(ALLOWED_PARAMS - {"format"})},
            )
        filters = KpiFilters(
            region=_region(params),
            segment=_choice_param(params, "segment", list(Segment.values)),
            product=_product(params),
            deal_type=_choice_param(params, "deal_type", list(DealType.values)),
        )
        try:
            result = kpi_value(
                name=name,
                period=params.get("period") or _current_quarter(),
                user=request.user,
                team_id=_int_param(params, "team"),
                rep_id=_int_param(params, "rep"),
                filters=filters,
                stage_id=_int_param(params, "stage"),
            )
        except KpiPermissionError as exc:
            raise exceptions.PermissionDenied(exc.message) from None
        return Response(result_as_dict(result))
