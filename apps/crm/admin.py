"""Admin for the CRM read model. Deals are saved through the CRM services so that every
change made here lands in the deal's history, like any other change."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from apps.core.admin import ServiceErrorsAdminMixin
from apps.crm.models import Account, Opportunity, OpportunityHistory, Product, Stage
from apps.crm.services import EDITABLE_FIELDS, opportunity_create, opportunity_update


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("name", "external_id", "segment", "industry", "region", "country")
    list_filter = ("segment", "region", "industry")
    list_select_related = ("region",)
    search_fields = ("name", "external_id", "industry")
    autocomplete_fields = ("region",)
    readonly_fields = ("created_at",)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "external_id", "family", "is_active")
    list_filter = ("is_active", "family")
    search_fields = ("name", "external_id", "family")


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin):
    list_display = ("order", "name", "outcome", "probability", "is_active")
    list_display_links = ("name",)
    list_filter = ("outcome", "is_active")
    search_fields = ("name",)


class ReadOnlyAdminMixin:
    """History rows are written by the CRM services only; the admin may look, never touch."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


HISTORY_FIELDS = (
    "changed_at",
    "changed_fields",
    "stage",
    "amount",
    "currency",
    "close_date",
    "owner",
    "forecast_category",
    "source",
    "changed_by",
)


class OpportunityHistoryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OpportunityHistory
    fields = HISTORY_FIELDS
    readonly_fields = HISTORY_FIELDS
    ordering = ("-changed_at", "-id")
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OpportunityHistory]:
        return super().get_queryset(request).select_related("stage", "owner", "changed_by")


@admin.register(Opportunity)
class OpportunityAdmin(ServiceErrorsAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "external_id",
        "account",
        "owner",
        "stage",
        "amount",
        "currency",
        "forecast_category",
        "close_date",
    )
    list_filter = ("stage", "forecast_category", "deal_type", "currency", "close_date")
    list_select_related = ("account", "owner", "stage")
    search_fields = ("name", "external_id", "account__name", "owner__username", "owner__last_name")
    date_hierarchy = "close_date"
    autocomplete_fields = ("account", "owner", "product", "stage")
    readonly_fields = ("updated_at",)
    inlines = (OpportunityHistoryInline,)
    fieldsets = (
        (None, {"fields": ("external_id", "name", "account", "owner", "product")}),
        (
            "Deal",
            {
                "fields": (
                    "stage",
                    "forecast_category",
                    "amount",
                    "currency",
                    "deal_type",
                    "source",
                    "created_date",
                    "close_date",
                    "lost_reason",
                )
            },
        ),
        ("Audit", {"fields": ("updated_at",)}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Opportunity | None = None):
        # The external id is the CRM's key: it is set once, on creation.
        if obj is not None:
            return (*self.readonly_fields, "external_id")
        return self.readonly_fields

    def save_model(
        self, request: HttpRequest, obj: Opportunity, form: ModelForm, change: bool
    ) -> None:
        """Save through the services, never ``obj.save()``, so that history is written."""
        if change:
            changes = {
                name: form.cleaned_data[name]
                for name in form.changed_data
                if name in EDITABLE_FIELDS
            }
            opportunity_update(
                opportunity=obj,
                changed_by=request.user,
                history_source=OpportunityHistory.Source.ADMIN,
                **changes,
            )
            return
        data = form.cleaned_data
        created = opportunity_create(
            external_id=data["external_id"],
            name=data["name"],
            account=data["account"],
            owner=data["owner"],
            product=data.get("product"),
            amount=data["amount"],
            currency=data["currency"],
            stage=data["stage"],
            forecast_category=data.get("forecast_category"),
            deal_type=data["deal_type"],
            source=data.get("source", ""),
            created_date=data["created_date"],
            close_date=data["close_date"],
            lost_reason=data.get("lost_reason", ""),
            changed_by=request.user,
            history_source=OpportunityHistory.Source.ADMIN,
        )
        # The admin goes on with ``obj`` (log entry, redirect, inlines): make it the saved row.
        obj.__dict__.update(created.__dict__)


@admin.register(OpportunityHistory)
class OpportunityHistoryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("opportunity", *HISTORY_FIELDS)
    list_filter = ("source", "stage", "forecast_category")
    list_select_related = ("opportunity", "stage", "owner", "changed_by")
    search_fields = ("opportunity__name", "opportunity__external_id", "changed_fields")
    date_hierarchy = "changed_at"
