"""Helpers for the demo-seed tests: the demo data by natural key, and its digest."""

from __future__ import annotations

import hashlib
from datetime import date

from apps.core.models import ExchangeRate
from apps.crm.models import Account, Opportunity, OpportunityHistory
from apps.customers.models import NpsResponse, Subscription
from apps.demo.generator import DEMO_PREFIX
from apps.org.models import Team, User
from apps.performance.models import PerformanceReview, ReviewRating
from apps.quotas.models import Quota

AS_OF = date(2025, 6, 15)
SMALL = 1_500


def demo_rows() -> dict[str, list[tuple]]:
    """Every demo row as a tuple of natural keys and values (no auto ids), in a stable
    order, table by table."""
    demo = {"external_id__startswith": DEMO_PREFIX}
    return {
        "users": list(
            User.objects.filter(email__endswith="@acme-cloud.example")
            .order_by("username")
            .values_list(
                "username",
                "first_name",
                "last_name",
                "email",
                "role",
                "title",
                "team__name",
                "is_staff",
                "is_superuser",
                "hired_on",
            )
        ),
        "teams": list(
            Team.objects.order_by("name").values_list(
                "name", "kind", "parent__name", "manager__username", "region__code"
            )
        ),
        "accounts": list(
            Account.objects.filter(**demo)
            .order_by("external_id")
            .values_list("external_id", "name", "segment", "industry", "region__code", "country")
        ),
        "opportunities": list(
            Opportunity.objects.filter(**demo)
            .order_by("external_id")
            .values_list(
                "external_id",
                "name",
                "account__external_id",
                "owner__username",
                "product__external_id",
                "amount",
                "currency",
                "stage__name",
                "forecast_category",
                "deal_type",
                "source",
                "created_date",
                "close_date",
                "lost_reason",
            )
        ),
        "history": list(
            OpportunityHistory.objects.filter(opportunity__external_id__startswith=DEMO_PREFIX)
            .order_by("opportunity__external_id", "changed_at")
            .values_list(
                "opportunity__external_id",
                "changed_at",
                "changed_by__username",
                "source",
                "changed_fields",
                "stage__name",
                "amount",
                "currency",
                "close_date",
                "owner__username",
                "forecast_category",
            )
        ),
        "quotas": list(
            Quota.objects.order_by("period__start_date", "rep__username", "team__name").values_list(
                "period__name",
                "rep__username",
                "team__name",
                "amount",
                "currency",
                "set_by__username",
                "set_at",
                "note",
            )
        ),
        "reviews": list(
            PerformanceReview.objects.order_by("rep__username", "period__start_date").values_list(
                "rep__username",
                "reviewer__username",
                "period__name",
                "status",
                "strengths",
                "areas_to_grow",
                "goals",
                "comments",
                "rep_response",
                "submitted_at",
                "acknowledged_at",
            )
        ),
        "ratings": list(
            ReviewRating.objects.order_by(
                "review__rep__username", "review__period__start_date", "competency__slug"
            ).values_list(
                "review__rep__username", "review__period__name", "competency__slug", "score"
            )
        ),
        "subscriptions": list(
            Subscription.objects.filter(**demo)
            .order_by("external_id")
            .values_list(
                "external_id",
                "account__external_id",
                "product__external_id",
                "mrr",
                "currency",
                "start_date",
                "end_date",
            )
        ),
        "nps": list(
            NpsResponse.objects.filter(**demo)
            .order_by("external_id")
            .values_list(
                "external_id",
                "account__external_id",
                "contact_name",
                "contact_email",
                "score",
                "comment",
                "responded_on",
            )
        ),
        "rates": list(
            ExchangeRate.objects.order_by("currency", "rate_date").values_list(
                "currency", "base_currency", "rate_date", "rate"
            )
        ),
    }


def digest(rows: dict[str, list[tuple]]) -> str:
    sha = hashlib.sha256()
    for table in sorted(rows):
        sha.update(table.encode())
        for row in rows[table]:
            sha.update(repr(row).encode())
    return sha.hexdigest()
