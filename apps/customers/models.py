"""Recurring revenue (subscriptions) and NPS survey responses."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.core.models import CurrencyField, MoneyField


class Subscription(models.Model):
    """Recurring revenue from one account. Active on day d when start <= d < end: ``end_date``
    is the first day no longer billed and stays empty while the subscription runs."""

    external_id = models.CharField(max_length=64, unique=True)
    account = models.ForeignKey(
        "crm.Account", on_delete=models.PROTECT, related_name="subscriptions"
    )
    product = models.ForeignKey(
        "crm.Product", null=True, blank=True, on_delete=models.PROTECT, related_name="subscriptions"
    )
    mrr = MoneyField(verbose_name="MRR", help_text="Monthly recurring revenue in `currency`.")
    currency = CurrencyField()
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True, help_text="First day no longer billed.")

    class Meta:
        ordering = ["account", "start_date"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(mrr__gte=0),
                name="sub_mrr_not_negative",
                violation_error_message="MRR cannot be negative.",
            ),
            models.CheckConstraint(
                condition=models.Q(end_date__isnull=True)
                | models.Q(end_date__gt=models.F("start_date")),
                name="sub_end_after_start",
                violation_error_message="A subscription must end after it starts.",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "start_date"], name="sub_account_start"),
            models.Index(fields=["start_date", "end_date"], name="sub_dates"),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.mrr} {self.currency}/mo from {self.start_date}"


class NpsResponse(models.Model):
    """One answer to "How likely are you to recommend us?" (0-10)."""

    external_id = models.CharField(max_length=64, blank=True)
    account = models.ForeignKey(
        "crm.Account", on_delete=models.PROTECT, related_name="nps_responses"
    )
    contact_name = models.CharField(max_length=120, blank=True)
    contact_email = models.EmailField(blank=True)
    score = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(0), MaxValueValidator(10)]
    )
    comment = models.TextField(blank=True)
    responded_on = models.DateField()

    class Meta:
        ordering = ["-responded_on"]
        verbose_name = "NPS response"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(score__gte=0, score__lte=10),
                name="nps_score_0_10",
                violation_error_message="An NPS score is a whole number from 0 to 10.",
            ),
            models.UniqueConstraint(
                fields=["external_id"],
                condition=~models.Q(external_id=""),
                name="uniq_nps_external_id",
            ),
        ]
        indexes = [models.Index(fields=["responded_on"], name="nps_responded_on")]

    def __str__(self) -> str:
        return f"{self.account} scored {self.score} on {self.responded_on}"
