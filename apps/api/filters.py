"""Query-string filters and ordering for the API lists (and their CSV/XLSX exports).

Every filter validates its value: a bad id, date or number is a 400 naming the parameter,
never an empty list by accident and never a server error. Ids are plain numbers, so a
filter on someone outside the caller's scope simply matches nothing (existence is never
revealed). Unknown ``ordering`` fields are a 400 listing the allowed ones.
"""

from __future__ import annotations

from datetime import date

from django import forms
from django.conf import settings
from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters
from rest_framework import exceptions
from rest_framework.filters import OrderingFilter

from apps.crm.models import Account, Opportunity, OpportunityHistory, Product, Segment, Stage
from apps.customers.models import NpsResponse, Subscription
from apps.imports.models import ImportJob
from apps.org.models import Team, User
from apps.org.policy import subtree_ids
from apps.performance.models import PerformanceReview
from apps.quotas import fiscal
from apps.quotas.models import Quota

#: Largest value of a 64-bit primary key; anything above cannot name a row.
MAX_ID = 2**63 - 1


class IdFilter(filters.NumberFilter):
    """A row id: a whole number from 1 up."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


def _money_filter(field_name: str, lookup_expr: str) -> filters.NumberFilter:
    return filters.NumberFilter(
        field_name=field_name, lookup_expr=lookup_expr, max_digits=18, decimal_places=2
    )


class StrictOrderingFilter(OrderingFilter):
    """``?ordering=a,-b``: like DRF's, but an unknown field is a 400 instead of being
    silently dropped, and the primary key breaks ties so pages never overlap."""

    def remove_invalid_fields(self, queryset, fields, view, request):
        valid = [item[0] for item in self.get_valid_fields(queryset, view, {"request": request})]
        bad = [term for term in fields if not term or term.lstrip("-") not in valid]
        if bad:
            raise exceptions.ValidationError(
                {
                    self.ordering_param: [
                        f"Cannot order by {', '.join(repr(b) for b in bad)}; "
                        f"use one of {', '.join(valid)} (prefix - for descending)."
                    ]
                }
            )
        return list(fields)

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        if ordering is None:
            return None
        ordering = list(ordering)
        if not any(term.lstrip("-") in ("pk", "id") for term in ordering):
            ordering.append("pk")
        return ordering


class TeamFilter(filters.FilterSet):
    parent = IdFilter(field_name="parent_id")
    region = IdFilter(field_name="region_id")
    manager = IdFilter(field_name="manager_id")
    within = IdFilter(method="filter_within", label="Team id: this team and every team below")

    class Meta:
        model = Team
        fields = ["kind", "is_active"]

    def filter_within(self, queryset: QuerySet, name: str, value: int) -> QuerySet:
        return queryset.filter(pk__in=subtree_ids([value]))


class UserFilter(filters.FilterSet):
    team = IdFilter(field_name="team_id")
    within = IdFilter(method="filter_within", label="Team id: members of it and teams below")

    class Meta:
        model = User
        fields = ["role", "is_active"]

    def filter_within(self, queryset: QuerySet, name: str, value: int) -> QuerySet:
        return queryset.filter(team_id__in=subtree_ids([value]))


class AccountFilter(filters.FilterSet):
    region = IdFilter(field_name="region_id")
    name = filters.CharFilter(lookup_expr="icontains", max_length=200)
    external_id = filters.CharFilter(max_length=64)
    country = filters.CharFilter(max_length=2)

    class Meta:
        model = Account
        fields = ["segment", "industry"]


class ProductFilter(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains", max_length=120)
    external_id = filters.CharFilter(max_length=64)

    class Meta:
        model = Product
        fields = ["family", "is_active"]


class StageFilter(filters.FilterSet):
    class Meta:
        model = Stage
        fields = ["outcome", "is_active"]


class OpportunityFilter(filters.FilterSet):
    owner = IdFilter(field_name="owner_id")
    account = IdFilter(field_name="account_id")
    product = IdFilter(field_name="product_id")
    stage = IdFilter(field_name="stage_id")
    outcome = filters.ChoiceFilter(field_name="stage__outcome", choices=Stage.Outcome.choices)
    team = IdFilter(method="filter_team", label="Team id: deals owned by its members and below")
    region = IdFilter(field_name="account__region_id")
    segment = filters.ChoiceFilter(field_name="account__segment", choices=Segment.choices)
    external_id = filters.CharFilter(max_length=64)
    currency = filters.CharFilter(max_length=3)
    close_date_after = filters.DateFilter(field_name="close_date", lookup_expr="gte")
    close_date_before = filters.DateFilter(field_name="close_date", lookup_expr="lte")
    created_date_after = filters.DateFilter(field_name="created_date", lookup_expr="gte")
    created_date_before = filters.DateFilter(field_name="created_date", lookup_expr="lte")
    amount_min = _money_filter("amount", "gte")
    amount_max = _money_filter("amount", "lte")

    class Meta:
        model = Opportunity
        fields = ["forecast_category", "deal_type"]

    def filter_team(self, queryset: QuerySet, name: str, value: int) -> QuerySet:
        return queryset.filter(owner__team_id__in=subtree_ids([value]))


class OpportunityHistoryFilter(filters.FilterSet):
    changed_after = filters.IsoDateTimeFilter(field_name="changed_at", lookup_expr="gte")
    changed_before = filters.IsoDateTimeFilter(field_name="changed_at", lookup_expr="lt")

    class Meta:
        model = OpportunityHistory
        fields = ["source"]


def _period_bounds(name: str) -> tuple[date, date]:
    """Inclusive bounds of a fiscal period name (``FY2025``, ``2025-Q3``, ``2025-03``)."""
    try:
        period = fiscal.parse_period(name, settings.FISCAL_YEAR_START_MONTH)
    except (fiscal.FiscalError, ValueError, OverflowError):
        raise exceptions.ValidationError(
            {"period": [f"{name!r} is not a fiscal period; use e.g. FY2025, 2025-Q3 or 2025-03."]}
        ) from None
    return period.start, period.end


class QuotaFilter(filters.FilterSet):
    rep = IdFilter(field_name="rep_id")
    team = IdFilter(field_name="team_id")
    period = filters.CharFilter(
        method="filter_period",
        max_length=16,
        label="Fiscal period name: the months inside it (FY2025, 2025-Q3, 2025-03)",
    )
    kind = filters.ChoiceFilter(
        method="filter_kind", choices=[("rep", "rep"), ("team", "team")], label="rep or team"
    )

    class Meta:
        model = Quota
        fields = []

    def filter_period(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        start, end = _period_bounds(value)
        return queryset.filter(period__start_date__gte=start, period__end_date__lte=end)

    def filter_kind(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(rep__isnull=value != "rep")


class ReviewFilter(filters.FilterSet):
    rep = IdFilter(field_name="rep_id")
    reviewer = IdFilter(field_name="reviewer_id")
    period = filters.CharFilter(
        method="filter_period", max_length=16, label="Fiscal period name the review is for"
    )

    class Meta:
        model = PerformanceReview
        fields = ["status"]

    def filter_period(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        start, end = _period_bounds(value)
        return queryset.filter(period__start_date__gte=start, period__end_date__lte=end)


class SubscriptionFilter(filters.FilterSet):
    account = IdFilter(field_name="account_id")
    product = IdFilter(field_name="product_id")
    external_id = filters.CharFilter(max_length=64)
    currency = filters.CharFilter(max_length=3)
    active_on = filters.DateFilter(
        method="filter_active_on", label="Active on this day (start <= day < end)"
    )

    class Meta:
        model = Subscription
        fields = []

    def filter_active_on(self, queryset: QuerySet, name: str, value: date) -> QuerySet:
        return queryset.filter(
            Q(start_date__lte=value) & (Q(end_date__isnull=True) | Q(end_date__gt=value))
        )


class NpsResponseFilter(filters.FilterSet):
    account = IdFilter(field_name="account_id")
    external_id = filters.CharFilter(max_length=64)
    score_min = filters.NumberFilter(
        field_name="score", lookup_expr="gte", min_value=0, max_value=10
    )
    score_max = filters.NumberFilter(
        field_name="score", lookup_expr="lte", min_value=0, max_value=10
    )
    responded_after = filters.DateFilter(field_name="responded_on", lookup_expr="gte")
    responded_before = filters.DateFilter(field_name="responded_on", lookup_expr="lte")

    class Meta:
        model = NpsResponse
        fields = []


class ImportJobFilter(filters.FilterSet):
    uploaded_by = IdFilter(field_name="uploaded_by_id")

    class Meta:
        model = ImportJob
        fields = ["kind", "status"]
