from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.errors import ApplicationError
from apps.digests import services
from apps.digests.models import Delivery, DigestAlert, DigestSubscription


class SubscriptionAdminForm(forms.ModelForm):
    """The admin form checks every rule of the settings page (scope against the policy)."""

    actor = None  # set per request by DigestSubscriptionAdmin.get_form

    class Meta:
        model = DigestSubscription
        fields = (
            "owner",
            "recipient",
            "recipient_email",
            "recipient_name",
            "team",
            "frequency",
            "weekday",
            "day_of_month",
            "hour",
            "time_zone",
            "sections",
            "send_digest",
            "is_active",
        )

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.errors or self.actor is None:
            return
        try:
            services.subscription_validate(actor=self.actor, subscription=self.instance)
        except ApplicationError as exc:
            fields = exc.extra.get("fields") or {}
            for name, message in fields.items():
                self.add_error(name if name in self.fields else None, message)
            if not fields:
                self.add_error(None, exc.message)


class AlertInline(admin.TabularInline):
    model = DigestAlert
    extra = 0
    readonly_fields = ("state", "crossings", "last_value", "last_checked_at")


@admin.register(DigestSubscription)
class DigestSubscriptionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "recipient_label",
        "team",
        "frequency",
        "weekday",
        "day_of_month",
        "hour",
        "time_zone",
        "send_digest",
        "is_active",
    )
    list_filter = ("frequency", "is_active", "send_digest")
    search_fields = ("recipient__username", "recipient__email", "recipient_email", "recipient_name")
    raw_id_fields = ("owner", "recipient", "team")
    inlines = [AlertInline]
    form = SubscriptionAdminForm

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"actor": request.user})


@admin.register(DigestAlert)
class DigestAlertAdmin(admin.ModelAdmin):
    list_display = ("id", "subscription", "kpi", "operator", "threshold", "state", "crossings")
    list_filter = ("kpi", "state", "is_active")
    search_fields = ("subscription__recipient__username", "subscription__recipient_email", "kpi")
    raw_id_fields = ("subscription",)


@admin.action(description="Resend the selected failed deliveries")
def resend(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    done = 0
    for delivery in queryset.select_related("subscription"):
        try:
            services.delivery_resend(actor=request.user, delivery=delivery)
            done += 1
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{delivery}: {exc.message}", messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{done} delivery(ies) queued again.")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "subscription",
        "kind",
        "period_key",
        "to_email",
        "status",
        "attempts",
        "sent_at",
        "created_at",
    )
    list_filter = ("status", "kind")
    search_fields = ("to_email", "period_key")
    readonly_fields = (
        "subscription",
        "alert",
        "kind",
        "period_key",
        "scheduled_for",
        "to_email",
        "status",
        "attempts",
        "error",
        "created_at",
        "last_attempt_at",
        "sent_at",
        "requested_by",
    )
    exclude = ("payload",)
    actions = [resend]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
