"""Admin for subscriptions (recurring revenue) and NPS responses."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from apps.customers.models import NpsResponse, Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = (
        "external_id",
        "account",
        "product",
        "mrr",
        "currency",
        "start_date",
        "end_date",
        "active_today",
    )
    list_filter = ("currency", "product", "start_date")
    list_select_related = ("account", "product")
    search_fields = ("external_id", "account__name", "account__external_id", "product__name")
    autocomplete_fields = ("account", "product")
    date_hierarchy = "start_date"

    @admin.display(boolean=True, description="active today")
    def active_today(self, obj: Subscription) -> bool:
        # Active on day d when start <= d < end (end is the first day no longer billed).
        today = timezone.localdate()
        return obj.start_date <= today and (obj.end_date is None or today < obj.end_date)


@admin.register(NpsResponse)
class NpsResponseAdmin(admin.ModelAdmin):
    list_display = ("responded_on", "account", "score", "contact_name", "external_id")
    list_filter = ("score", "responded_on")
    list_select_related = ("account",)
    search_fields = ("external_id", "account__name", "contact_name", "contact_email", "comment")
    autocomplete_fields = ("account",)
    date_hierarchy = "responded_on"
