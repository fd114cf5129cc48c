"""Fiscal periods and quotas."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import CurrencyField, MoneyField


class FiscalPeriod(models.Model):
    """A fiscal month, quarter or year, generated from FISCAL_YEAR_START_MONTH by
    :func:`apps.quotas.services.fiscal_periods_ensure` (see :mod:`apps.quotas.fiscal`).
    Bounds are inclusive."""

    class Kind(models.TextChoices):
        MONTH = "month", "Month"
        QUARTER = "quarter", "Quarter"
        YEAR = "year", "Year"

    name = models.CharField(max_length=16, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    fiscal_year = models.PositiveSmallIntegerField()
    number = models.PositiveSmallIntegerField()
    start_date = models.DateField()
    end_date = models.DateField()
    fiscal_start_month = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["start_date", "-end_date"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "start_date"], name="uniq_period_kind_start"),
            models.UniqueConstraint(
                fields=["kind", "fiscal_year", "number"], name="uniq_period_kind_fy_number"
            ),
            models.CheckConstraint(
                condition=models.Q(end_date__gte=models.F("start_date")),
                name="period_end_after_start",
            ),
        ]
        indexes = [
            models.Index(fields=["kind", "start_date", "end_date"], name="period_kind_bounds")
        ]

    def __str__(self) -> str:
        return self.name


class Quota(models.Model):
    """A sales target for one rep or one team for one fiscal month.

    Quotas are kept at the month grain; a quarter's or year's quota is the sum of its months,
    so no figure is ever counted twice. A team quota is the top-down target for the team;
    the sum of its reps' quotas is the bottom-up view.
    """

    period = models.ForeignKey(FiscalPeriod, on_delete=models.PROTECT, related_name="quotas")
    rep = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="quotas",
    )
    team = models.ForeignKey(
        "org.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="quotas"
    )
    amount = MoneyField()
    currency = CurrencyField()
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    set_at = models.DateTimeField()
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["period__start_date"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="quota_not_negative"),
            models.CheckConstraint(
                condition=(models.Q(rep__isnull=False) & models.Q(team__isnull=True))
                | (models.Q(rep__isnull=True) & models.Q(team__isnull=False)),
                name="quota_for_rep_xor_team",
                violation_error_message="A quota is for exactly one rep or one team.",
            ),
            models.UniqueConstraint(
                fields=["period", "rep"],
                condition=models.Q(rep__isnull=False),
                name="uniq_quota_rep_period",
            ),
            models.UniqueConstraint(
                fields=["period", "team"],
                condition=models.Q(team__isnull=False),
                name="uniq_quota_team_period",
            ),
        ]

    def __str__(self) -> str:
        who = self.rep or self.team
        return f"{who} {self.period}: {self.amount} {self.currency}"
