"""Admin for competencies, performance reviews (with their ratings) and coaching notes."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from apps.performance.models import (
    CoachingNote,
    Competency,
    PerformanceReview,
    ReviewAmendment,
    ReviewRating,
)


@admin.register(Competency)
class CompetencyAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "team", "order", "is_active")
    list_filter = ("is_active", "team")
    list_select_related = ("team",)
    search_fields = ("name", "slug", "description")
    autocomplete_fields = ("team",)
    prepopulated_fields = {"slug": ("name",)}


class ReviewRatingInline(admin.TabularInline):
    model = ReviewRating
    fields = ("competency", "score")
    autocomplete_fields = ("competency",)
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("competency")

    # A submitted review changes only through a logged amendment (on the review page).
    def has_add_permission(self, request, obj=None) -> bool:
        return obj is None or obj.status == PerformanceReview.Status.DRAFT

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None or obj.status == PerformanceReview.Status.DRAFT

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is None or obj.status == PerformanceReview.Status.DRAFT


@admin.register(PerformanceReview)
class PerformanceReviewAdmin(admin.ModelAdmin):
    list_display = ("rep", "period", "reviewer", "status", "submitted_at", "acknowledged_at")
    list_filter = ("status", "period__kind", "period__fiscal_year")
    list_select_related = ("rep", "period", "reviewer")
    search_fields = ("rep__username", "rep__last_name", "reviewer__username", "period__name")
    autocomplete_fields = ("rep", "reviewer", "period")
    readonly_fields = ("created_at", "updated_at", "amendment_log")
    inlines = (ReviewRatingInline,)

    @admin.display(description="amendments")
    def amendment_log(self, obj: PerformanceReview) -> str:
        """The logged amendments (read-only: the log is append-only)."""
        if obj.pk is None:
            return "-"
        entries = obj.amendments.select_related("changed_by")
        if not entries:
            return "No amendments."
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} {} - {}: {} &rarr; {} ({})</li>",
                (
                    (
                        a.changed_at.strftime("%Y-%m-%d %H:%M"),
                        a.changed_by or "-",
                        a.field,
                        a.old_value[:80],
                        a.new_value[:80],
                        a.reason,
                    )
                    for a in entries
                ),
            ),
        )

    def get_readonly_fields(self, request, obj=None):
        # Submitted reviews are read-only here: amendments go through the review page,
        # which logs who changed what and why.
        if obj is not None and obj.status != PerformanceReview.Status.DRAFT:
            return [f for _, options in self.fieldsets for f in options["fields"]]
        return self.readonly_fields

    fieldsets = (
        (None, {"fields": ("rep", "reviewer", "period", "status")}),
        ("Review", {"fields": ("strengths", "areas_to_grow", "goals", "comments")}),
        ("Rep", {"fields": ("rep_response",)}),
        (
            "Audit",
            {
                "fields": (
                    "submitted_at",
                    "acknowledged_at",
                    "created_at",
                    "updated_at",
                    "amendment_log",
                )
            },
        ),
    )


@admin.register(ReviewRating)
class ReviewRatingAdmin(admin.ModelAdmin):
    """Ratings are normally edited inside their review; this list is for looking across."""

    list_display = ("review", "competency", "score")
    list_filter = ("score", "competency")
    list_select_related = ("review__rep", "review__period", "competency")
    search_fields = ("review__rep__username", "review__rep__last_name", "competency__name")
    autocomplete_fields = ("review", "competency")


@admin.register(CoachingNote)
class CoachingNoteAdmin(admin.ModelAdmin):
    list_display = ("rep", "author", "created_at", "excerpt")
    list_select_related = ("rep", "author")
    search_fields = ("rep__username", "rep__last_name", "author__username", "body")
    autocomplete_fields = ("rep", "author")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at",)

    @admin.display(description="note")
    def excerpt(self, obj: CoachingNote) -> str:
        return obj.body[:80] + ("..." if len(obj.body) > 80 else "")


@admin.register(ReviewAmendment)
class ReviewAmendmentAdmin(admin.ModelAdmin):
    list_display = ("review", "field", "changed_by", "changed_at", "reason")
    list_select_related = ("review__rep", "review__period", "changed_by")
    search_fields = ("review__rep__username", "review__rep__last_name", "field", "reason")
    date_hierarchy = "changed_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
