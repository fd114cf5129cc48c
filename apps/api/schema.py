"""OpenAPI schema generation (drf-spectacular) tuned to how this API answers.

- Every operation documents its error answers with the one error shape of
  :func:`apps.core.api.exception_handler`, ``{"message": str, "extra": object}``, so a
  client (and the schemathesis run in CI) can rely on it.
- The KPI endpoints of :mod:`apps.kpis.api` are described here from the outside, with
  their query parameters and free-form JSON answers, without touching that app.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema

ERROR_DESCRIPTIONS: dict[str, str] = {
    "400": "Bad input: `extra.fields` names each bad field or parameter.",
    "401": "Not signed in (token authentication: the token is missing or wrong).",
    "403": "Not signed in, or not allowed to do this.",
    "404": "No such record in your scope, or a page past the end.",
    "406": "The requested format cannot be produced.",
    "413": "The body is larger than the server accepts.",
    "415": "The body is not JSON.",
    "429": "Too many requests; retry after the number of seconds in Retry-After.",
}
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ApiAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        from apps.api.serializers import ErrorSerializer

        responses = super()._get_response_bodies(direction)
        codes = [
            c for c in ERROR_DESCRIPTIONS if c not in ("413", "415") or self.method in BODY_METHODS
        ]
        for code in codes:
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code)
                response["description"] = ERROR_DESCRIPTIONS[code]
                responses[code] = response
        return responses


_KPI_FILTERS = [
    OpenApiParameter(
        "period",
        str,
        description="Fiscal period name, e.g. FY2025, 2025-Q3, 2025-03 (default: this quarter).",
    ),
    OpenApiParameter("team", int, description="Team id: the team and every team below it."),
    OpenApiParameter("rep", int, description="Rep (user) id: the deals they own."),
    OpenApiParameter("region", str, description="Region id or code."),
    OpenApiParameter("segment", str, enum=["smb", "mid_market", "enterprise"]),
    OpenApiParameter("product", str, description="Product id or external id."),
    OpenApiParameter("deal_type", str, enum=["new", "expansion", "renewal"]),
    OpenApiParameter("stage", int, description="Stage id (stage conversion KPIs)."),
]


class KpiListSchema(OpenApiViewExtension):
    target_class = "apps.kpis.api.KpiListApi"

    def view_replacement(self):
        class Documented(self.target_class):
            @extend_schema(
                tags=["kpis"],
                operation_id="kpis_list",
                summary="Every KPI of the registry with its unit, scopes and filters.",
                responses={200: OpenApiTypes.OBJECT},
            )
            def get(self, request, *args, **kwargs):
                return super().get(request, *args, **kwargs)

        return Documented


class KpiDetailSchema(OpenApiViewExtension):
    target_class = "apps.kpis.api.KpiDetailApi"

    def view_replacement(self):
        class Documented(self.target_class):
            @extend_schema(
                tags=["kpis"],
                operation_id="kpis_retrieve",
                summary="One KPI for a period and scope, with previous, year-ago and a series.",
                parameters=_KPI_FILTERS,
                responses={200: OpenApiTypes.OBJECT},
            )
            def get(self, request, *args, **kwargs):
                return super().get(request, *args, **kwargs)

        return Documented
