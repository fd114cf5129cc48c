"""Admin for exchange rates and background job runs, and the shared admin plumbing."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from apps.core.errors import ApplicationError
from apps.core.models import ExchangeRate, JobRun


class ServiceErrorsAdminMixin:
    """For admins whose ``save_model`` calls a service: an :class:`ApplicationError` the
    form could not foresee becomes an error message on the same page instead of a 500.

    The admin runs the whole change view in one transaction, so by the time the error
    reaches here everything the request wrote is rolled back: nothing changes.
    """

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            self.message_user(request, f"Not saved: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


@admin.register(ExchangeRate)
class ExchangeRateAdmin(admin.ModelAdmin):
    list_display = ("currency", "base_currency", "rate_date", "rate", "created_at")
    list_filter = ("currency", "base_currency")
    search_fields = ("currency", "base_currency")
    date_hierarchy = "rate_date"
    readonly_fields = ("created_at",)
    ordering = ("currency", "-rate_date")


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    """Runs are written by the jobs themselves; the admin only lists them (and may delete
    old ones)."""

    list_display = (
        "kind",
        "status",
        "started_at",
        "finished_at",
        "duration",
        "rows",
        "error_summary",
    )
    list_filter = ("status", "kind")
    search_fields = ("kind", "error")
    date_hierarchy = "started_at"
    readonly_fields = (
        "kind",
        "status",
        "started_at",
        "finished_at",
        "rows",
        "error",
        "detail",
    )

    @admin.display(description="duration (s)")
    def duration(self, obj: JobRun) -> str:
        seconds = obj.duration_seconds
        return "-" if seconds is None else f"{seconds:.1f}"

    @admin.display(description="error")
    def error_summary(self, obj: JobRun) -> str:
        first_line = obj.error.splitlines()[0] if obj.error else ""
        return first_line[:80] + ("..." if len(first_line) > 80 else "")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: JobRun | None = None) -> bool:
        return False
