"""The /api/v1/ resources. Thin: each view scopes its queryset through
:mod:`apps.org.policy`, validates input with a serializer, checks the write permission
and calls a service. A record outside the caller's scope answers 404, like one that
does not exist.

Every list also answers ``?format=csv`` and ``?format=xlsx`` with the same filters and
ordering, unpaginated, up to :data:`EXPORT_MAX_ROWS` rows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api import filters
from apps.api import serializers as api_serializers
from apps.api.renderers import EXPORT_FORMATS, CsvRenderer, XlsxRenderer
from apps.api.throttling import BulkThrottle, UserThrottle
from apps.core.errors import ApplicationError
from apps.crm import services as crm_services
from apps.crm.models import Account, Opportunity, OpportunityHistory, Product, Stage
from apps.crm.services import (
    EDITABLE_FIELDS,
    opportunities_upsert,
    opportunity_create,
    opportunity_update,
)
from apps.customers import services as customer_services
from apps.customers.models import NpsResponse, Subscription
from apps.imports.models import ImportJob
from apps.org.models import Team, User
from apps.org.policy import (
    can_edit_crm,
    can_import,
    can_set_quota,
    deal_editable_fields,
    filter_by_owner,
    scope_for,
    team_or_user_q,
    visible_teams,
    visible_users,
)
from apps.org.services import api_token_rotate
from apps.performance.models import PerformanceReview, ReviewRating
from apps.performance.selectors import visible_reviews
from apps.performance.services import TEXT_FIELDS as REVIEW_TEXT_FIELDS
from apps.performance.services import (
    ReviewPermissionError,
    review_acknowledge,
    review_amend,
    review_create,
    review_submit,
    review_update,
)
from apps.quotas import fiscal
from apps.quotas.models import FiscalPeriod, Quota
from apps.quotas.services import QuotaPermissionError, fiscal_periods_ensure, quota_set

#: The most rows one CSV/XLSX download holds; a longer list must be narrowed by filters.
EXPORT_MAX_ROWS = 100_000
#: The most rows one bulk upsert takes (larger loads: the CSV import, or several calls).
BULK_MAX_ROWS = 5_000


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = (
        "The request body is too large; send fewer rows per call (see docs/api.md, Bulk)."
    )
    default_code = "body_too_large"


class CrmWritePermission(permissions.BasePermission):
    """Anyone signed in reads; only CRM editors (:func:`can_edit_crm`) write."""

    message = "Only executives and RevOps admins may change CRM and customer records."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or can_edit_crm(request.user)


class DealPermission(permissions.BasePermission):
    """Deals come from the CRM: only CRM editors create them. Who may change which field
    of an existing deal is decided per deal (:func:`deal_editable_fields`)."""

    message = "Only executives and RevOps admins create deals; they come from the CRM."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return getattr(view, "action", None) != "create" or can_edit_crm(request.user)


class ImportPermission(permissions.BasePermission):
    message = "Only executives and RevOps admins see import jobs."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and can_import(request.user))


class ApiViewSetMixin:
    """Exports, JSON errors even for ``?format=csv``, and bulk upserts."""

    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CsvRenderer, XlsxRenderer]
    # Any id text reaches the view, so a malformed id is the same JSON 404 as a missing one.
    lookup_value_regex = "[^/]+"
    #: The file name stem of downloads, e.g. ``opportunities-2025-03-31.csv``.
    export_name = "export"
    #: The import kind of ``POST .../bulk/`` (see apps.imports.services.rows_import).
    bulk_kind: str | None = None

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RequestDataTooBig):
            exc = BodyTooLarge()
        elif isinstance(exc, ReviewPermissionError | QuotaPermissionError):
            # The domain services say "not allowed" in their own words: that is a 403.
            exc = exceptions.PermissionDenied(exc.message)
        return super().handle_exception(exc)

    def exporting(self) -> bool:
        return getattr(self.request.accepted_renderer, "format", None) in EXPORT_FORMATS

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400 and isinstance(
            getattr(response, "accepted_renderer", None), CsvRenderer | XlsxRenderer
        ):
            # An error is never a spreadsheet: the caller gets the usual JSON message.
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = "application/json"
            response.content_type = "application/json"
        return response

    def list_response(self, queryset: QuerySet) -> Response:
        """A page of ``queryset`` as JSON, or all of it as a download."""
        if self.exporting():
            return self.export_response(queryset)
        page = self.paginate_queryset(queryset)
        if page is not None:
            return self.get_paginated_response(self.get_serializer(page, many=True).data)
        return Response(self.get_serializer(queryset, many=True).data)

    def export_response(self, queryset: QuerySet) -> Response:
        records = list(queryset[: EXPORT_MAX_ROWS + 1])
        if len(records) > EXPORT_MAX_ROWS:
            raise ApplicationError(
                f"A download holds at most {EXPORT_MAX_ROWS:,} rows and this list has more; "
                "narrow it with filters (e.g. a date range).",
                extra={"limit": EXPORT_MAX_ROWS},
            )
        serializer = self.get_serializer(records, many=True)
        response = Response(serializer.data)
        response.export_fields = serializer.child.fields
        response.export_filename = f"{self.export_name}-{timezone.localdate():%Y-%m-%d}"
        return response

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list_response(self.filter_queryset(self.get_queryset()))

    def bulk_rows(self, request: Request) -> list[dict[str, Any]]:
        """The body of a bulk call: a non-empty JSON list of objects, at most
        :data:`BULK_MAX_ROWS` of them (checked before any work)."""
        rows = request.data
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise exceptions.ValidationError(
                {"non_field_errors": ["The body must be a JSON list of objects, one per row."]}
            )
        if not rows:
            raise exceptions.ValidationError({"non_field_errors": ["The list is empty."]})
        if len(rows) > BULK_MAX_ROWS:
            raise exceptions.ValidationError(
                {
                    "non_field_errors": [
                        f"At most {BULK_MAX_ROWS:,} rows per call; this one has {len(rows):,}."
                    ]
                }
            )
        return rows

    def bulk_upsert(self, request: Request) -> Response:
        if not can_import(request.user):
            raise exceptions.PermissionDenied(
                "Only executives and RevOps admins may bulk-load records."
            )
        rows = self.bulk_rows(request)
        from apps.imports.services import rows_import

        report = rows_import(kind=self.bulk_kind, rows=rows, user=request.user, source="api")
        if not report.ok:
            errors = [error.as_dict() for error in report.errors]
            return Response(
                {
                    "message": f"{len(errors)} problem(s) in the rows; nothing was saved.",
                    "extra": {"errors": errors},
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(
            {"created": report.created, "updated": report.updated, "unchanged": report.unchanged}
        )


def bulk_action(view_func):
    """``POST <resource>/bulk/`` with its own, stricter rate limit."""
    routed = action(
        detail=False,
        methods=["post"],
        url_path="bulk",
        throttle_classes=[UserThrottle, BulkThrottle],
        filter_backends=[],
        pagination_class=None,
    )(view_func)
    return extend_schema(
        summary="Create or update many records by external id or natural key (all or nothing).",
        description=(
            "A JSON list of rows, field names as in the CSV import (docs/imports.md). "
            "Every row is validated first; if any is bad nothing is written and the 400 "
            "answer lists every bad row."
        ),
        request={
            "application/json": {
                "type": "array",
                "items": {"type": "object", "additionalProperties": True},
                "minItems": 1,
                "maxItems": BULK_MAX_ROWS,
            }
        },
        responses={200: api_serializers.BulkResultSerializer},
    )(routed)


# --- org (read only) ----------------------------------------------------------------------
class TeamViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """Teams you may see: everything for executives and RevOps, a manager's subtree."""

    serializer_class = api_serializers.TeamSerializer
    filterset_class = filters.TeamFilter
    ordering_fields = ["id", "name", "kind"]
    ordering = ["name"]
    export_name = "teams"

    def get_queryset(self) -> QuerySet[Team]:
        return visible_teams(self.request.user)


class UserViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """People you may see: everyone for executives and RevOps, a manager's subtree, a rep
    only themselves. ``POST users/bulk/`` loads people (the "people" import)."""

    serializer_class = api_serializers.UserSerializer
    filterset_class = filters.UserFilter
    ordering_fields = ["id", "username", "first_name", "last_name", "role", "hired_on"]
    ordering = ["first_name", "last_name", "username"]
    export_name = "users"
    bulk_kind = "people"

    def get_queryset(self) -> QuerySet[User]:
        return visible_users(self.request.user)

    @bulk_action
    def bulk(self, request: Request) -> Response:
        return self.bulk_upsert(request)


# --- crm and customers: reference records -------------------------------------------------
class RecordViewSet(ApiViewSetMixin, viewsets.ModelViewSet):
    """Reference and customer records: readable by everyone signed in, written by CRM
    editors through their domain's services (:mod:`apps.crm.services` for accounts,
    products and stages, :mod:`apps.customers.services` for subscriptions and NPS)."""

    permission_classes = [CrmWritePermission]
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]
    create_record = staticmethod(crm_services.reference_record_create)
    update_record = staticmethod(crm_services.reference_record_update)
    delete_record = staticmethod(crm_services.reference_record_delete)

    def perform_create(self, serializer) -> None:
        model = serializer.Meta.model
        serializer.instance = self.create_record(model=model, data=serializer.validated_data)

    def perform_update(self, serializer) -> None:
        self.update_record(record=serializer.instance, changes=serializer.validated_data)

    def perform_destroy(self, instance) -> None:
        self.delete_record(record=instance)

    @bulk_action
    def bulk(self, request: Request) -> Response:
        return self.bulk_upsert(request)


class AccountViewSet(RecordViewSet):
    queryset = Account.objects.all()
    serializer_class = api_serializers.AccountSerializer
    filterset_class = filters.AccountFilter
    ordering_fields = ["id", "name", "external_id", "segment", "created_at"]
    ordering = ["name"]
    export_name = "accounts"
    bulk_kind = "accounts"


class ProductViewSet(RecordViewSet):
    queryset = Product.objects.all()
    serializer_class = api_serializers.ProductSerializer
    filterset_class = filters.ProductFilter
    ordering_fields = ["id", "name", "external_id", "family"]
    ordering = ["name"]
    export_name = "products"
    bulk_kind = "products"


class StageViewSet(RecordViewSet):
    queryset = Stage.objects.all()
    serializer_class = api_serializers.StageSerializer
    filterset_class = filters.StageFilter
    ordering_fields = ["id", "order", "name", "probability"]
    ordering = ["order"]
    export_name = "stages"
    bulk_kind = "stages"


class CustomerRecordViewSet(RecordViewSet):
    create_record = staticmethod(customer_services.customer_record_create)
    update_record = staticmethod(customer_services.customer_record_update)
    delete_record = staticmethod(customer_services.customer_record_delete)


class SubscriptionViewSet(CustomerRecordViewSet):
    queryset = Subscription.objects.all()
    serializer_class = api_serializers.SubscriptionSerializer
    filterset_class = filters.SubscriptionFilter
    ordering_fields = ["id", "start_date", "end_date", "mrr", "external_id"]
    ordering = ["start_date"]
    export_name = "subscriptions"
    bulk_kind = "subscriptions"


class NpsResponseViewSet(CustomerRecordViewSet):
    queryset = NpsResponse.objects.all()
    serializer_class = api_serializers.NpsResponseSerializer
    filterset_class = filters.NpsResponseFilter
    ordering_fields = ["id", "responded_on", "score"]
    ordering = ["-responded_on"]
    export_name = "nps-responses"
    bulk_kind = "nps"


# --- deals ---------------------------------------------------------------------------------
class OpportunityViewSet(
    ApiViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Deals you may see (your own; a manager's subtree; everything for executives and
    RevOps). Deals are never deleted here: a deal that will not close moves to a lost
    stage, so its history and the past pipelines stay intact."""

    serializer_class = api_serializers.OpportunitySerializer
    permission_classes = [DealPermission]
    filterset_class = filters.OpportunityFilter
    ordering_fields = ["id", "close_date", "created_date", "amount", "name", "updated_at"]
    ordering = ["-close_date", "name"]
    export_name = "opportunities"
    bulk_kind = "opportunities"

    def deals(self) -> QuerySet[Opportunity]:
        return filter_by_owner(
            Opportunity.objects.select_related("stage"), scope_for(self.request.user)
        )

    def get_queryset(self) -> QuerySet:
        if self.action == "history":
            return OpportunityHistory.objects.filter(opportunity__in=self.deals())
        return self.deals()

    def perform_create(self, serializer) -> None:
        serializer.instance = opportunity_create(
            **serializer.validated_data, changed_by=self.request.user, history_source="api"
        )

    def perform_update(self, serializer) -> None:
        deal: Opportunity = serializer.instance
        changes = {
            name: value
            for name, value in serializer.validated_data.items()
            if getattr(deal, name) != value
        }
        allowed = deal_editable_fields(
            self.request.user, owner_id=deal.owner_id, all_fields=EDITABLE_FIELDS
        )
        refused = sorted(set(changes) - allowed)
        if refused:
            hint = f" You may change {', '.join(sorted(allowed))}." if allowed else ""
            raise exceptions.PermissionDenied(
                f"You may not change {', '.join(refused)} on this deal.{hint}"
            )
        if changes:
            opportunity_update(
                opportunity=deal, changed_by=self.request.user, history_source="api", **changes
            )

    @extend_schema(responses=api_serializers.OpportunityHistorySerializer(many=True), filters=True)
    @action(
        detail=True,
        methods=["get"],
        serializer_class=api_serializers.OpportunityHistorySerializer,
        filterset_class=filters.OpportunityHistoryFilter,
        ordering_fields=["changed_at", "id"],
        ordering=["changed_at", "id"],
    )
    def history(self, request: Request, pk: str | None = None) -> Response:
        """The deal's history, oldest first: one snapshot row per change."""
        deal = get_object_or_404(self.deals(), pk=pk)
        self.export_name = f"opportunity-{deal.pk}-history"
        queryset = OpportunityHistory.objects.filter(opportunity=deal)
        return self.list_response(self.filter_queryset(queryset))

    @bulk_action
    def bulk(self, request: Request) -> Response:
        """Deals in bulk, in a fixed number of queries (apps.crm.services). Unlike the
        other bulk loads it is open to managers and reps: each item is checked against
        what the caller may change (docs/api.md, Bulk upserts)."""
        result = opportunities_upsert(rows=self.bulk_rows(request), user=request.user)
        return Response(dataclasses.asdict(result))


# --- quotas ---------------------------------------------------------------------------------
class QuotaViewSet(
    ApiViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Monthly quotas of the reps and teams you may see. Executives set any quota; a
    manager those of the reps and teams below them (:func:`can_set_quota`). Changes go
    through :func:`apps.quotas.services.quota_set` (audit, locked plans)."""

    serializer_class = api_serializers.QuotaSerializer
    filterset_class = filters.QuotaFilter
    ordering_fields = ["id", "period__start_date", "amount", "set_at"]
    ordering = ["period__start_date"]
    export_name = "quotas"
    bulk_kind = "quotas"

    def get_queryset(self) -> QuerySet[Quota]:
        scope = scope_for(self.request.user)
        return Quota.objects.filter(
            team_or_user_q(scope, team_field="team", user_field="rep")
        ).select_related("period")

    def _check_may_set(self, *, rep: User | None, team: Team | None) -> None:
        if not can_set_quota(self.request.user, rep=rep, team=team):
            raise exceptions.PermissionDenied(
                "You may not set this quota: executives set any quota, managers those of "
                "the reps and teams below them."
            )

    @staticmethod
    def _month(name: str) -> FiscalPeriod:
        period = fiscal.parse_period(name, settings.FISCAL_YEAR_START_MONTH)
        fiscal_periods_ensure(first_year=period.fiscal_year, last_year=period.fiscal_year)
        return FiscalPeriod.objects.get(name=period.name, kind=FiscalPeriod.Kind.MONTH)

    def perform_create(self, serializer) -> None:
        data = serializer.validated_data
        rep, team = data.get("rep"), data.get("team")
        self._check_may_set(rep=rep, team=team)
        existing = Quota.objects.filter(period__name=data["period"]["name"], rep=rep, team=team)
        found = existing.values_list("pk", flat=True).first()
        if found is not None:
            raise ApplicationError(
                f"This quota exists already (id {found}); change it with PUT or PATCH.",
                extra={"id": found},
            )
        serializer.instance = quota_set(
            period=self._month(data["period"]["name"]),
            amount=data["amount"],
            set_by=self.request.user,
            rep=rep,
            team=team,
            currency=data.get("currency"),
            note=data.get("note", ""),
            reason=data.get("reason", ""),
        )

    def perform_update(self, serializer) -> None:
        quota: Quota = serializer.instance
        data = serializer.validated_data
        self._check_may_set(rep=quota.rep, team=quota.team)
        serializer.instance = quota_set(
            period=quota.period,
            amount=data.get("amount", quota.amount),
            set_by=self.request.user,
            rep=quota.rep,
            team=quota.team,
            currency=data.get("currency", quota.currency),
            note=data.get("note", quota.note),
            reason=data.get("reason", ""),
        )

    @bulk_action
    def bulk(self, request: Request) -> Response:
        return self.bulk_upsert(request)


# --- performance reviews -------------------------------------------------------------------
class ReviewViewSet(
    ApiViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Reviews of the people you may see (a rep sees their own once submitted). Managers
    and executives start, edit and submit reviews of the people below them; the reviewed
    rep acknowledges. Everything goes through :mod:`apps.performance.services`."""

    serializer_class = api_serializers.ReviewSerializer
    filterset_class = filters.ReviewFilter
    ordering_fields = ["id", "period__start_date", "status", "submitted_at"]
    ordering = ["-period__start_date", "rep_id"]
    export_name = "reviews"

    def get_queryset(self) -> QuerySet[PerformanceReview]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return PerformanceReview.objects.none()
        return visible_reviews(user=self.request.user).prefetch_related(
            Prefetch("ratings", queryset=ReviewRating.objects.select_related("competency"))
        )

    def _answer(self, review: PerformanceReview, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=review.pk)
        return Response(api_serializers.ReviewSerializer(fresh).data, status=code)

    @extend_schema(
        request=api_serializers.ReviewCreateSerializer,
        responses={201: api_serializers.ReviewSerializer},
    )
    def create(self, request: Request) -> Response:
        serializer = api_serializers.ReviewCreateSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        name = serializer.validated_data["period"]
        parsed = fiscal.parse_period(name, settings.FISCAL_YEAR_START_MONTH)
        fiscal_periods_ensure(first_year=parsed.fiscal_year, last_year=parsed.fiscal_year)
        review = review_create(
            rep=serializer.validated_data["rep"],
            period=FiscalPeriod.objects.get(name=parsed.name),
            reviewer=request.user,
        )
        return self._answer(review, status.HTTP_201_CREATED)

    @extend_schema(
        request=api_serializers.ReviewChangeSerializer,
        responses=api_serializers.ReviewSerializer,
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        review = self.get_object()
        serializer = api_serializers.ReviewChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        texts = {name: data[name] for name in REVIEW_TEXT_FIELDS if name in data}
        ratings = {item["competency"]: item["score"] for item in data.get("ratings", [])}
        if review.status == PerformanceReview.Status.DRAFT:
            review_update(review=review, user=request.user, texts=texts, ratings=ratings)
        else:
            review_amend(
                review=review,
                user=request.user,
                texts=texts,
                ratings=ratings,
                reason=data.get("reason", ""),
            )
        return self._answer(review)

    @extend_schema(request=None, responses=api_serializers.ReviewSerializer)
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk: str | None = None) -> Response:
        """Draft -> submitted (every competency rated; strengths, areas to grow, goals)."""
        review = review_submit(review=self.get_object(), user=request.user)
        return self._answer(review)

    @extend_schema(
        request=api_serializers.ReviewAcknowledgeSerializer,
        responses=api_serializers.ReviewSerializer,
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        """Submitted -> acknowledged, by the reviewed rep, with an optional response."""
        serializer = api_serializers.ReviewAcknowledgeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        review = review_acknowledge(
            review=self.get_object(),
            user=request.user,
            response=serializer.validated_data.get("rep_response", ""),
        )
        return self._answer(review)


# --- import jobs (read only) ----------------------------------------------------------------
class ImportJobViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """File imports run through the import wizard or the command line: status, counts and
    every bad row. Seen by the people who may import (:func:`can_import`)."""

    serializer_class = api_serializers.ImportJobSerializer
    filterset_class = filters.ImportJobFilter
    ordering_fields = ["id", "created_at", "finished_at", "row_count"]
    ordering = ["-created_at"]
    export_name = "import-jobs"

    permission_classes = [ImportPermission]

    def get_queryset(self) -> QuerySet[ImportJob]:
        return ImportJob.objects.defer("file_data")


class UnknownEndpointView(APIView):
    """Anything else below /api/v1/: a JSON 404 (or 401/403 before signing in) instead of
    the site's HTML error page, so API clients always get the one error shape."""

    renderer_classes = [JSONRenderer]
    schema = None

    def http_method_not_allowed(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise exceptions.NotFound("No such API endpoint; GET /api/schema/ lists them.")


# --- the signed-in person's own API token ---------------------------------------------------
@require_http_methods(["GET", "POST"])
def token_page(request: HttpRequest) -> HttpResponse:
    """Create or replace your own API token. The key is shown once, right after."""
    key = None
    if request.method == "POST":
        key = api_token_rotate(user=request.user, request=request)
    existing = Token.objects.filter(user=request.user).values_list("created", flat=True).first()
    return render(request, "api/token.html", {"key": key, "created": existing})
