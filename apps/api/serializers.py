"""Serializers: the JSON shape of each resource and the validation of its input.

They only translate and validate; writes happen in services (see ``views.py``). Related
records are referred to by id. A person or team outside the caller's scope is reported
as "does not exist", so ids never reveal who exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import serializers

from apps.crm.models import Account, Opportunity, OpportunityHistory, Product, Stage
from apps.customers.models import NpsResponse, Subscription
from apps.imports.models import ImportJob
from apps.org.models import Team, User
from apps.org.policy import visible_teams, visible_users
from apps.performance.models import PerformanceReview, ReviewRating
from apps.quotas import fiscal
from apps.quotas.models import Quota

#: Money in the API: a decimal string with two places, at most 16 digits before the point.
MONEY = {"max_digits": 18, "decimal_places": 2, "min_value": 0}


class CurrencyField(serializers.CharField):
    """An ISO 4217 code; accepted in any case, stored upper-case."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_length", 3)
        kwargs.setdefault("max_length", 3)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data).upper()
        if not (value.isascii() and value.isalpha()):
            raise serializers.ValidationError("Use a three-letter ISO 4217 code, e.g. USD.")
        return value


class ErrorSerializer(serializers.Serializer):
    """Every 4xx body: a sentence for people and details for programs (``extra.fields``
    maps each bad field to its messages; bulk errors list every bad row)."""

    message = serializers.CharField()
    extra = serializers.DictField()


class StrictModelSerializer(serializers.ModelSerializer):
    """A model serializer that refuses keys it does not know (a typo is a 400, not a
    silently ignored field). Read-only fields may be sent back and are ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {key: ["Unknown field."] for key in unknown}
                    | {"non_field_errors": [f"Allowed fields: {', '.join(self._writable())}."]}
                )
        return super().to_internal_value(data)

    def _writable(self) -> list[str]:
        return [name for name, field in self.fields.items() if not field.read_only]


class VisibleUserField(serializers.PrimaryKeyRelatedField):
    """A person the caller may see (the whole company for CRM editors)."""

    def get_queryset(self):
        request = self.context.get("request")
        if request is None:
            return User.objects.none()
        return visible_users(request.user)


class VisibleTeamField(serializers.PrimaryKeyRelatedField):
    def get_queryset(self):
        request = self.context.get("request")
        if request is None:
            return Team.objects.none()
        return visible_teams(request.user)


# --- org (read only) ----------------------------------------------------------------------
class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "kind", "parent", "manager", "region", "is_active"]
        read_only_fields = fields


class UserSerializer(serializers.ModelSerializer):
    full_name = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "first_name",
            "last_name",
            "full_name",
            "email",
            "role",
            "title",
            "team",
            "hired_on",
            "is_active",
        ]
        read_only_fields = fields

    def get_full_name(self, user: User) -> str:
        return user.get_full_name() or user.username


# --- crm ------------------------------------------------------------------------------------
class AccountSerializer(StrictModelSerializer):
    class Meta:
        model = Account
        fields = [
            "id",
            "external_id",
            "name",
            "segment",
            "industry",
            "region",
            "country",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def validate_country(self, value: str) -> str:
        value = value.upper()
        if value and not (len(value) == 2 and value.isascii() and value.isalpha()):
            raise serializers.ValidationError("Use a two-letter ISO 3166 code, e.g. DE.")
        return value


class ProductSerializer(StrictModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "external_id", "name", "family", "is_active"]
        read_only_fields = ["id"]


class StageSerializer(StrictModelSerializer):
    class Meta:
        model = Stage
        fields = ["id", "name", "order", "outcome", "probability", "is_active"]
        read_only_fields = ["id"]
        extra_kwargs = {"order": {"max_value": 32767}}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        outcome = attrs.get("outcome", getattr(self.instance, "outcome", Stage.Outcome.OPEN))
        probability = attrs.get("probability", getattr(self.instance, "probability", None))
        if outcome == Stage.Outcome.WON and probability is not None and probability != 100:
            raise serializers.ValidationError({"probability": ["A won stage is 100 percent."]})
        if outcome == Stage.Outcome.LOST and probability is not None and probability != 0:
            raise serializers.ValidationError({"probability": ["A lost stage is 0 percent."]})
        return attrs


class OpportunitySerializer(StrictModelSerializer):
    owner = VisibleUserField()
    outcome = serializers.CharField(source="stage.outcome", read_only=True)
    amount = serializers.DecimalField(**MONEY)
    currency = CurrencyField()

    class Meta:
        model = Opportunity
        fields = [
            "id",
            "external_id",
            "name",
            "account",
            "owner",
            "product",
            "amount",
            "currency",
            "stage",
            "outcome",
            "forecast_category",
            "deal_type",
            "source",
            "created_date",
            "close_date",
            "lost_reason",
            "updated_at",
        ]
        read_only_fields = ["id", "outcome", "updated_at"]
        extra_kwargs = {"forecast_category": {"required": False}}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        created = attrs.get("created_date", getattr(self.instance, "created_date", None))
        closes = attrs.get("close_date", getattr(self.instance, "close_date", None))
        if created and closes and closes < created:
            raise serializers.ValidationError(
                {"close_date": ["The close date cannot be before the created date."]}
            )
        return attrs


class OpportunityHistorySerializer(serializers.ModelSerializer):
    class Meta:
        model = OpportunityHistory
        fields = [
            "id",
            "opportunity",
            "changed_at",
            "changed_by",
            "source",
            "changed_fields",
            "stage",
            "amount",
            "currency",
            "close_date",
            "owner",
            "forecast_category",
        ]
        read_only_fields = fields


# --- quotas ---------------------------------------------------------------------------------
class QuotaSerializer(StrictModelSerializer):
    """A monthly quota of one rep or one team. ``period`` is the fiscal month's name
    (``2025-03``); the month's row is created on first use."""

    period = serializers.CharField(source="period.name", max_length=16)
    period_start = serializers.DateField(source="period.start_date", read_only=True)
    period_end = serializers.DateField(source="period.end_date", read_only=True)
    rep = VisibleUserField(required=False, allow_null=True)
    team = VisibleTeamField(required=False, allow_null=True)
    amount = serializers.DecimalField(**MONEY)
    currency = CurrencyField(required=False)
    reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=500,
        help_text="Why the quota changes; required inside a locked plan.",
    )

    class Meta:
        model = Quota
        fields = [
            "id",
            "period",
            "period_start",
            "period_end",
            "rep",
            "team",
            "amount",
            "currency",
            "note",
            "reason",
            "set_by",
            "set_at",
        ]
        read_only_fields = ["id", "period_start", "period_end", "set_by", "set_at"]

    def validate_period(self, value: str) -> str:
        try:
            period = fiscal.parse_period(value, settings.FISCAL_YEAR_START_MONTH)
        except (fiscal.FiscalError, ValueError, OverflowError):
            raise serializers.ValidationError(
                f"{value!r} is not a fiscal month; use YYYY-MM, e.g. 2025-03."
            ) from None
        if period.kind != "month":
            raise serializers.ValidationError(
                f"Quotas are set per fiscal month; {period.name} is a {period.kind}."
            )
        if not 1900 <= period.start.year <= 2200:
            raise serializers.ValidationError("Use a month between 1900 and 2200.")
        return period.name

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None:
            # An existing quota keeps its rep or team and month; only the figures change.
            changed = []
            if "period" in attrs and attrs["period"]["name"] != self.instance.period.name:
                changed.append("period")
            changed += [
                k for k in ("rep", "team") if k in attrs and attrs[k] != getattr(self.instance, k)
            ]
            if changed:
                raise serializers.ValidationError(
                    {k: ["Cannot change who or which month a quota is for."] for k in changed}
                )
            return attrs
        if (attrs.get("rep") is None) == (attrs.get("team") is None):
            raise serializers.ValidationError(
                {"non_field_errors": ["A quota is for exactly one rep or one team."]}
            )
        return attrs


# --- performance -----------------------------------------------------------------------------
class ReviewRatingSerializer(serializers.ModelSerializer):
    competency_slug = serializers.SlugRelatedField(
        source="competency", slug_field="slug", read_only=True
    )

    class Meta:
        model = ReviewRating
        fields = ["competency", "competency_slug", "score"]
        read_only_fields = fields


class ReviewSerializer(serializers.ModelSerializer):
    period = serializers.CharField(source="period.name", read_only=True)
    ratings = ReviewRatingSerializer(many=True, read_only=True)

    class Meta:
        model = PerformanceReview
        fields = [
            "id",
            "rep",
            "reviewer",
            "period",
            "status",
            "strengths",
            "areas_to_grow",
            "goals",
            "comments",
            "rep_response",
            "ratings",
            "created_at",
            "updated_at",
            "submitted_at",
            "acknowledged_at",
        ]
        read_only_fields = fields


class ReviewCreateSerializer(StrictModelSerializer):
    """Start a draft review of a rep for a fiscal quarter or year (``2025-Q1``, ``FY2025``);
    you are its reviewer."""

    rep = VisibleUserField()
    period = serializers.CharField(max_length=16)

    class Meta:
        model = PerformanceReview
        fields = ["rep", "period"]

    def validate_period(self, value: str) -> str:
        try:
            period = fiscal.parse_period(value, settings.FISCAL_YEAR_START_MONTH)
        except (fiscal.FiscalError, ValueError, OverflowError):
            raise serializers.ValidationError(
                f"{value!r} is not a fiscal quarter or year; use e.g. 2025-Q1 or FY2025."
            ) from None
        if period.kind == "month":
            raise serializers.ValidationError(
                "Reviews are written per fiscal quarter or year, not per month."
            )
        if not 1900 <= period.start.year <= 2200:
            raise serializers.ValidationError("Use a period between 1900 and 2200.")
        return period.name


class RatingInputSerializer(serializers.Serializer):
    competency = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    score = serializers.IntegerField(
        min_value=1, max_value=5, allow_null=True, help_text="1-5; null clears a draft's rating."
    )


class ReviewChangeSerializer(serializers.Serializer):
    """Change a review: a draft directly; a submitted one as an amendment with a reason."""

    strengths = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    areas_to_grow = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    goals = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    comments = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    ratings = RatingInputSerializer(many=True, required=False)
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text="Why a submitted review changes (required then).",
    )

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)


class ReviewAcknowledgeSerializer(serializers.Serializer):
    rep_response = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


# --- customers ------------------------------------------------------------------------------
class SubscriptionSerializer(StrictModelSerializer):
    mrr = serializers.DecimalField(**MONEY)
    currency = CurrencyField()

    class Meta:
        model = Subscription
        fields = [
            "id",
            "external_id",
            "account",
            "product",
            "mrr",
            "currency",
            "start_date",
            "end_date",
        ]
        read_only_fields = ["id"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start = attrs.get("start_date", getattr(self.instance, "start_date", None))
        end = attrs.get("end_date", getattr(self.instance, "end_date", None))
        if start and end and end <= start:
            raise serializers.ValidationError(
                {"end_date": ["The end date (first day no longer billed) must be after the start."]}
            )
        return attrs


class NpsResponseSerializer(StrictModelSerializer):
    class Meta:
        model = NpsResponse
        fields = [
            "id",
            "external_id",
            "account",
            "contact_name",
            "contact_email",
            "score",
            "comment",
            "responded_on",
        ]
        read_only_fields = ["id"]
        extra_kwargs = {"score": {"min_value": 0, "max_value": 10}}


class ImportJobSerializer(serializers.ModelSerializer):
    errors = serializers.ListField(
        child=serializers.DictField(),
        read_only=True,
        help_text="Bad rows: line, field and message (at most the first 5,000).",
    )

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "kind",
            "file_name",
            "file_type",
            "file_size",
            "uploaded_by",
            "status",
            "headers",
            "row_count",
            "created",
            "updated",
            "unchanged",
            "error_count",
            "errors",
            "progress",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class BulkResultSerializer(serializers.Serializer):
    """Counts of a successful bulk upsert (nothing is written when any row is bad)."""

    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
