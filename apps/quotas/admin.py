"""Admin for fiscal periods (generated, read-only), quotas (saved through quota_set), quota
plans (their workflow runs on the planning page) and the quota change history (read-only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from apps.core.admin import ServiceErrorsAdminMixin
from apps.quotas.models import FiscalPeriod, Quota, QuotaChange, QuotaPlan
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


class ReadOnlyAdminMixin:
    """The audit is append-only: the admin lists and shows it, never edits it."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PlanChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = QuotaChange
    fk_name = "plan"
    fields = (
        "changed_at",
        "changed_by",
        "field",
        "rep",
        "team",
        "month",
        "old_value",
        "new_value",
        "reason",
    )
    readonly_fields = fields
    extra = 0
    ordering = ("-changed_at",)


def history_table(changes) -> str:
    """The change history as a small read-only table (shown on the quota's admin page; a
    read-only field rather than an inline, so saving a quota never posts a formset)."""
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                c.changed_at.strftime("%Y-%m-%d %H:%M"),
                c.changed_by or "-",
                c.old_value or "-",
                c.new_value,
                c.reason,
            )
            for c in changes
        ),
    )
    if not rows:
        return "No changes recorded."
    return format_html(
        "<table><thead><tr><th>When</th><th>Who</th><th>Old</th><th>New</th><th>Reason</th>"
        "</tr></thead><tbody>{}</tbody></table>",
        rows,
    )


class QuotaAdminForm(ModelForm):
    change_reason = forms.CharField(
        max_length=500,
        required=False,
        help_text="Why the quota changes (kept in its history; required in a locked plan).",
    )

    class Meta:
        model = Quota
        fields = ("period", "rep", "team", "amount", "currency", "note")


@admin.register(Quota)
class QuotaAdmin(ServiceErrorsAdminMixin, admin.ModelAdmin):
    form = QuotaAdminForm
    list_display = ("period", "rep", "team", "amount", "currency", "set_by", "set_at")
    list_filter = ("period__fiscal_year", "currency", "team")
    list_select_related = ("period", "rep", "team", "set_by")
    search_fields = ("period__name", "rep__username", "rep__last_name", "team__name", "note")
    autocomplete_fields = ("rep", "team")
    readonly_fields = ("set_by", "set_at", "history")
    fields = (
        "period",
        "rep",
        "team",
        "amount",
        "currency",
        "note",
        "change_reason",
        "set_by",
        "set_at",
        "history",
    )

    @admin.display(description="history")
    def history(self, obj: Quota) -> str:
        if obj.pk is None:
            return "-"
        return history_table(obj.changes.select_related("changed_by").order_by("-changed_at"))

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
            reason=form.cleaned_data.get("change_reason", ""),
        )
        obj.__dict__.update(saved.__dict__)


@admin.register(QuotaPlan)
class QuotaPlanAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Plans move through their workflow on the planning page (where the policy checks who
    may submit, approve and lock); the admin shows them with their history."""

    list_display = ("team", "period", "status", "submitted_by", "approved_by", "locked_at")
    list_filter = ("status", "period__fiscal_year")
    list_select_related = ("team", "period", "submitted_by", "approved_by")
    search_fields = ("team__name", "period__name")
    inlines = (PlanChangeInline,)


@admin.register(QuotaChange)
class QuotaChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "changed_at",
        "changed_by",
        "field",
        "rep",
        "team",
        "month",
        "old_value",
        "new_value",
        "reason",
    )
    list_filter = ("field", "month__fiscal_year")
    list_select_related = ("changed_by", "rep", "team", "month")
    search_fields = ("rep__username", "rep__last_name", "team__name", "month__name", "reason")
    date_hierarchy = "changed_at"
