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


class QuotaPlan(models.Model):
    """The planning workflow of one team's quotas for one fiscal quarter or year.

    The plan covers the team's own (top-down) monthly quotas and the monthly quotas of the
    reps in the team's subtree, for the months of ``period``. Draft: the team's managers
    edit. Submitted: waiting for an approver (an executive or the manager of a team above).
    Approved: accepted. Locked: final; only an executive may still change it, with a reason.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"
        APPROVED = "approved", "Approved"
        LOCKED = "locked", "Locked"

    team = models.ForeignKey("org.Team", on_delete=models.PROTECT, related_name="quota_plans")
    period = models.ForeignKey(FiscalPeriod, on_delete=models.PROTECT, related_name="quota_plans")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    locked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period__start_date", "team__name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "period"], name="uniq_quota_plan_team_period"),
            models.CheckConstraint(
                condition=models.Q(status="draft") | models.Q(submitted_at__isnull=False),
                name="quota_plan_submitted_has_time",
            ),
            models.CheckConstraint(
                condition=~models.Q(status__in=["approved", "locked"])
                | models.Q(approved_at__isnull=False),
                name="quota_plan_approved_has_time",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="locked") | models.Q(locked_at__isnull=False),
                name="quota_plan_locked_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team} {self.period} ({self.get_status_display()})"


class QuotaChange(models.Model):
    """One entry of the append-only audit of quotas and plans: who changed what, when,
    from which value to which, and why. ``field`` is ``amount`` for a quota (values are
    decimal amounts in ``currency``; empty old value: the quota was created) or
    ``status`` for a plan transition. Rows are never updated or deleted by the app."""

    class Field(models.TextChoices):
        AMOUNT = "amount", "Quota amount"
        STATUS = "status", "Plan status"

    plan = models.ForeignKey(
        QuotaPlan, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes"
    )
    quota = models.ForeignKey(
        Quota, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes"
    )
    month = models.ForeignKey(
        FiscalPeriod, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rep = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    team = models.ForeignKey(
        "org.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    field = models.CharField(max_length=12, choices=Field.choices)
    old_value = models.CharField(max_length=64, blank=True)
    new_value = models.CharField(max_length=64, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [
            models.Index(fields=["team", "changed_at"], name="quota_change_team_time"),
            models.Index(fields=["rep", "changed_at"], name="quota_change_rep_time"),
        ]

    def __str__(self) -> str:
        who = self.rep or self.team
        what = self.month or (self.plan.period if self.plan_id else "")
        return f"{who} {what} {self.field}: {self.old_value or '-'} -> {self.new_value}"
