"""Performance reviews, the competencies they rate, and coaching notes."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

DEFAULT_COMPETENCIES: tuple[tuple[str, str], ...] = (
    ("pipeline-discipline", "Pipeline discipline"),
    ("forecast-accuracy", "Forecast accuracy"),
    ("customer-relationships", "Customer relationships"),
    ("product-knowledge", "Product knowledge"),
    ("collaboration", "Collaboration"),
    ("coaching-development", "Coaching and development"),
)


class Competency(models.Model):
    """A skill reviews rate from 1 to 5. ``team`` empty means company-wide."""

    slug = models.SlugField(max_length=60)
    name = models.CharField(max_length=80)
    description = models.TextField(blank=True)
    team = models.ForeignKey(
        "org.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="competencies"
    )
    order = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["order", "name"]
        verbose_name_plural = "competencies"
        constraints = [
            models.UniqueConstraint(
                fields=["slug"],
                condition=models.Q(team__isnull=True),
                name="uniq_competency_global",
            ),
            models.UniqueConstraint(
                fields=["team", "slug"],
                condition=models.Q(team__isnull=False),
                name="uniq_competency_team",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PerformanceReview(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"

    rep = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews_written"
    )
    period = models.ForeignKey(
        "quotas.FiscalPeriod", on_delete=models.PROTECT, related_name="reviews"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    strengths = models.TextField(blank=True)
    areas_to_grow = models.TextField(blank=True)
    goals = models.TextField(blank=True, help_text="Goals for the next period.")
    comments = models.TextField(blank=True)
    rep_response = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period__start_date", "rep"]
        constraints = [
            models.UniqueConstraint(fields=["rep", "period"], name="uniq_review_rep_period"),
            models.CheckConstraint(
                condition=~models.Q(status="draft") | models.Q(submitted_at__isnull=True),
                name="review_draft_not_submitted",
            ),
            models.CheckConstraint(
                condition=models.Q(status="draft") | models.Q(submitted_at__isnull=False),
                name="review_submitted_has_time",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="acknowledged")
                | models.Q(acknowledged_at__isnull=False),
                name="review_ack_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"Review of {self.rep} for {self.period}"


class ReviewRating(models.Model):
    review = models.ForeignKey(PerformanceReview, on_delete=models.CASCADE, related_name="ratings")
    competency = models.ForeignKey(Competency, on_delete=models.PROTECT, related_name="ratings")
    score = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)]
    )

    class Meta:
        ordering = ["competency__order"]
        constraints = [
            models.UniqueConstraint(
                fields=["review", "competency"], name="uniq_rating_per_competency"
            ),
            models.CheckConstraint(
                condition=models.Q(score__gte=1, score__lte=5), name="rating_1_to_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.competency}: {self.score}"


class CoachingNote(models.Model):
    rep = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="coaching_notes"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="coaching_notes_written"
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Note on {self.rep} by {self.author}"


class ReviewAmendment(models.Model):
    """A logged change to a review after it was submitted: which field (a text field or
    ``rating:<competency slug>``), the old and new value, who, when and why. Append-only."""

    review = models.ForeignKey(
        PerformanceReview, on_delete=models.CASCADE, related_name="amendments"
    )
    field = models.CharField(max_length=80)
    old_value = models.TextField(blank=True)
    new_value = models.TextField(blank=True)
    reason = models.CharField(max_length=500)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.review}: {self.field} amended"
