"""Admin for fiscal periods (generated, read-only) and quotas (saved through quota_set)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest

from apps.core.admin import ServiceErrorsAdminMixin
from apps.quotas.models import FiscalPeriod, Quota
from apps.quotas.services import quota_set


@admin.register(FiscalPeriod)
class FiscalPeriodAdmin(admin.ModelAdmin):
    """Periods come from the fiscal calendar (fiscal_periods_ensure); editing one by hand
    would break the calendar, so the admin only lists them."""

    list_display = (
        "name",
        "kind",
        "fiscal_year",
        "number",
        "start_date",
        "end_date",
        "fiscal_start_month",
    )
    list_filter = ("kind", "fiscal_year")
    search_fields = ("name",)
    date_hierarchy = "start_date"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Quota)
class QuotaAdmin(ServiceErrorsAdminMixin, admin.ModelAdmin):
    list_display = ("period", "rep", "team", "amount", "currency", "set_by", "set_at")
    list_filter = ("period__fiscal_year", "currency", "team")
    list_select_related = ("period", "rep", "team", "set_by")
    search_fields = ("period__name", "rep__username", "rep__last_name", "team__name", "note")
    autocomplete_fields = ("rep", "team")
    readonly_fields = ("set_by", "set_at")
    fields = ("period", "rep", "team", "amount", "currency", "note", "set_by", "set_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Quota | None = None):
        # quota_set keys a quota by (period, rep or team): changing the key of an existing
        # row would create another quota and leave this one. Delete and add instead.
        if obj is not None:
            return (*self.readonly_fields, "period", "rep", "team")
        return self.readonly_fields

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "period":
            # Quotas are kept per fiscal month; quarters and years are sums of months.
            kwargs["queryset"] = FiscalPeriod.objects.filter(kind=FiscalPeriod.Kind.MONTH)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Quota, form: ModelForm, change: bool) -> None:
        """Save through quota_set, which records who set the quota and when."""
        saved = quota_set(
            period=obj.period,
            rep=obj.rep,
            team=obj.team,
            amount=obj.amount,
            currency=obj.currency,
            note=obj.note,
            set_by=request.user,
        )
        obj.__dict__.update(saved.__dict__)
