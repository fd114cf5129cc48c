"""Rollup tables: precomputed aggregates at a grain that answers every dashboard filter.

All amounts are in the base currency (settings.BASE_CURRENCY at rebuild time), converted
per record at the rate of the record's date (see :mod:`apps.kpis.services`). ``month`` is
always the first day of a calendar month; fiscal quarters and years are unions of months.

Rows are written only by :mod:`apps.kpis.services` (full rebuild, or incremental update of
some months or of some (month, owner) cells), always as DELETE + INSERT inside one
transaction.

Team is deliberately not a column: a deal belongs to its owner's *current* team, which
selectors resolve at read time (owner ids of the team subtree), so moving a person to
another team is reflected at once without rewriting history rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce

from apps.core.models import CurrencyField, MoneyField


def _grain(*fields: str) -> list:
    """Unique-constraint expressions for a grain; nullable keys count NULL as one value
    (as GROUP BY does), which plain unique constraints on SQLite cannot express."""
    nullable = {"region", "product", "rep", "team"}
    return [
        Coalesce(name, models.Value(0)) if name in nullable else models.F(name) for name in fields
    ]


def _loose_reference(to: str, *, null: bool = False) -> models.ForeignKey:
    """A reference from a rollup row to a domain row, without a database constraint or an
    index of its own: rollups are rebuilt from the domain tables (a deleted deal or person
    simply drops out at the next rebuild), and each table's grain index already leads with
    the columns its queries filter on."""
    return models.ForeignKey(
        to,
        null=null,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )


_DIMS = ("owner", "region", "segment", "product", "deal_type")


class DealDims(models.Model):
    """The deal dimensions every deal rollup shares (owner, account region/segment,
    product, deal type)."""

    month = models.DateField()
    owner = _loose_reference(settings.AUTH_USER_MODEL)
    region = _loose_reference("org.Region", null=True)
    segment = models.CharField(max_length=16)
    product = _loose_reference("crm.Product", null=True)
    deal_type = models.CharField(max_length=16)

    class Meta:
        abstract = True


class ClosedDealRollup(DealDims):
    """Closed deals by close month x owner x region x segment x product x deal type x
    outcome (won/lost). ``cycle_days`` sums created -> close days; ``new_logos`` counts
    deals that are their account's first won deal."""

    outcome = models.CharField(max_length=8)
    deals = models.IntegerField()
    amount = MoneyField()
    cycle_days = models.BigIntegerField()
    new_logos = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                *_grain("month", *_DIMS, "outcome"), name="uniq_kpi_closed_grain"
            )
        ]
        indexes = [models.Index(fields=["month", "owner"], name="kpi_closed_month_owner")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} owner {self.owner_id} {self.outcome}: {self.deals}"


class PipelineRollup(DealDims):
    """Open deals (as of the rebuild) by expected close month x dims x stage x forecast
    category. ``weighted_amount`` is amount x stage probability / 100."""

    stage = _loose_reference("crm.Stage")
    forecast_category = models.CharField(max_length=16)
    deals = models.IntegerField()
    amount = MoneyField()
    weighted_amount = MoneyField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                *_grain("month", *_DIMS, "stage", "forecast_category"),
                name="uniq_kpi_pipeline_grain",
            )
        ]
        indexes = [models.Index(fields=["month", "owner"], name="kpi_pipe_month_owner")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} owner {self.owner_id} stage {self.stage_id}: {self.deals}"


class StageEntryRollup(DealDims):
    """Stage conversion cohorts: deals that first reached open stage number ``level``
    (1 = first open stage by order) in ``month``, and how many of them have since reached
    level + 1 (the next open stage, or won after the last one). Skipped stages count as
    reached when a later stage or won is reached."""

    level = models.PositiveSmallIntegerField()
    entered = models.IntegerField()
    advanced = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(*_grain("month", *_DIMS, "level"), name="uniq_kpi_stage_grain")
        ]
        indexes = [models.Index(fields=["level", "month"], name="kpi_stage_level_month")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} level {self.level}: {self.advanced}/{self.entered}"


class CloseDateMove(models.Model):
    """A change that moved a deal's close date later (from history): the detail rows that
    slipped deals are counted from, indexed by the time of the change. ``owner`` is the
    deal's owner when its moves were last written (rewritten with every edit of its owner),
    so one owner's slipped-deal cells find their moves by index."""

    deal = _loose_reference("crm.Opportunity")
    owner = _loose_reference(settings.AUTH_USER_MODEL, null=True)
    changed_at = models.DateTimeField()
    old_close = models.DateField()
    new_close = models.DateField()

    class Meta:
        indexes = [
            models.Index(fields=["changed_at"], name="kpi_move_time"),
            models.Index(fields=["deal"], name="kpi_move_deal"),
            models.Index(fields=["owner", "changed_at"], name="kpi_move_owner_time"),
            # The slipped-deals table (moves out of a period made during it): the old close
            # date narrows to the period, the time is read in the index, and the covered
            # columns spare a heap page per candidate (at 1M deals a quarter has ~50k moves
            # in time but ~3k out of it; the time index alone read ~22k heap pages).
            models.Index(
                fields=["old_close", "changed_at"],
                name="kpi_move_slip",
                include=["new_close", "deal"],
            ),
        ]

    def __str__(self) -> str:
        return f"deal {self.deal_id}: {self.old_close} -> {self.new_close}"


#: Period lengths (months) slipped deals are precomputed for: a fiscal month, quarter, year.
SLIPPED_SPANS = (1, 3, 12)


class SlippedDealRollup(DealDims):
    """Slipped deals of the period of ``months`` months starting at ``month``: deals with a
    close-date move made during the period from inside it to after it, still open and
    closing after the period at its end (the selectors' definition, counted once per deal).
    Dimensions are the deal's at the last update, as in the other deal rollups, so the rows
    of a period add up under any scope and filter."""

    months = models.PositiveSmallIntegerField()
    deals = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                *_grain("month", "months", *_DIMS), name="uniq_kpi_slipped_grain"
            )
        ]
        indexes = [
            models.Index(fields=["months", "month", "owner"], name="kpi_slipped_period_owner")
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} +{self.months} owner {self.owner_id}: {self.deals}"


class DealFootprint(models.Model):
    """Where a deal was last rolled up: its owner, account and close month, and the months
    of its first and last history rows (all as of the last rebuild or update of the deal).
    An incremental update clears these old cells too, which history alone cannot give for
    a deal whose account changed (history does not track it) or that was deleted."""

    deal = models.OneToOneField(
        "crm.Opportunity",
        primary_key=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    owner = _loose_reference(settings.AUTH_USER_MODEL)
    account = _loose_reference("crm.Account")
    close_month = models.DateField()
    first_change = models.DateField(null=True)
    last_change = models.DateField(null=True)
    #: The highest history row id then: rows above it were written since, and one dated
    #: before an older row (a back-dated change) can move stage entries and slips.
    last_history_id = models.BigIntegerField(null=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "last_change"], name="kpi_footprint_owner_change")]

    def __str__(self) -> str:
        return f"deal {self.deal_id}: owner {self.owner_id} {self.close_month:%Y-%m}"


class AccountMrrRollup(models.Model):
    """An account's MRR on the first day of ``month`` and on the first day of the next
    month (base currency, converted at the rate of that day). Retention for any period is
    two month columns of this table; monthly churn is one row."""

    month = models.DateField()
    account = _loose_reference("crm.Account")
    region = _loose_reference("org.Region", null=True)
    segment = models.CharField(max_length=16)
    mrr = MoneyField()
    next_mrr = MoneyField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["month", "account"], name="uniq_kpi_mrr_grain")
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} account {self.account_id}: {self.mrr}"


class _AccountDims(models.Model):
    """Region and segment of the account (the only filters customer KPIs take)."""

    region = _loose_reference("org.Region", null=True)
    segment = models.CharField(max_length=16)

    class Meta:
        abstract = True


class MrrMonthRollup(_AccountDims):
    """The account MRR rollup summed per month x region x segment: total MRR and paying
    accounts on the month's first day, and how it moved to the next month's first day
    (new from 0, expansion, contraction, churn to 0; churn as a positive amount), with the
    paying accounts that churned. Customer pages and logo churn read this, never the
    per-account rows."""

    month = models.DateField()
    mrr = MoneyField()
    paying = models.IntegerField()
    new = MoneyField()
    expansion = MoneyField()
    contraction = MoneyField()
    churn = MoneyField()
    churned = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                *_grain("month", "region", "segment"), name="uniq_kpi_mrr_month_grain"
            )
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} region {self.region_id} {self.segment}: {self.mrr}"


#: Spans (months) the retention rollup is kept for: a fiscal month, quarter and year.
RETENTION_SPANS = (1, 3, 12)


class RetentionRollup(_AccountDims):
    """Retention of the accounts paying on ``month``'s first day, ``months`` later, per
    region x segment: their opening MRR, the part of it kept (each account's closing MRR
    capped at its opening), their closing MRR, how many there were and how many pay
    nothing at the end. GRR, NRR and logo churn of a period of 1, 3 or 12 months are
    one row group; other lengths read the account rows."""

    month = models.DateField()
    months = models.PositiveSmallIntegerField()
    opening = MoneyField()
    retained = MoneyField()
    closing = MoneyField()
    accounts = models.IntegerField()
    churned = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                *_grain("month", "months", "region", "segment"),
                name="uniq_kpi_retention_grain",
            )
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} +{self.months} region {self.region_id} {self.segment}"


class AccountCohort(_AccountDims):
    """An account's cohort: the first month on whose first day it had MRR."""

    account = models.OneToOneField(
        "crm.Account",
        primary_key=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    cohort = models.DateField(db_index=True)

    def __str__(self) -> str:
        return f"account {self.account_id}: {self.cohort:%Y-%m}"


class CohortRollup(_AccountDims):
    """Logo retention cohorts: of the accounts whose cohort is ``cohort``, how many pay
    on ``month``'s first day, per region x segment (at ``month == cohort``: all of them,
    the cohort's size)."""

    cohort = models.DateField()
    month = models.DateField()
    accounts = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                *_grain("cohort", "month", "region", "segment"), name="uniq_kpi_cohort_grain"
            )
        ]

    def __str__(self) -> str:
        return f"cohort {self.cohort:%Y-%m} at {self.month:%Y-%m}: {self.accounts}"


class NpsRollup(models.Model):
    """NPS responses by month x account region x segment, split by category."""

    month = models.DateField()
    region = _loose_reference("org.Region", null=True)
    segment = models.CharField(max_length=16)
    promoters = models.IntegerField()
    passives = models.IntegerField()
    detractors = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                *_grain("month", "region", "segment"), name="uniq_kpi_nps_grain"
            )
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} region {self.region_id} {self.segment}"


class QuotaRollup(models.Model):
    """Monthly quotas converted to the base currency (rate of the month's first day);
    exactly one of ``rep`` and ``team`` is set, as on the quota."""

    month = models.DateField()
    rep = _loose_reference(settings.AUTH_USER_MODEL, null=True)
    team = _loose_reference("org.Team", null=True)
    amount = MoneyField()

    class Meta:
        constraints = [
            models.UniqueConstraint(*_grain("month", "rep", "team"), name="uniq_kpi_quota_grain")
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} rep {self.rep_id} team {self.team_id}: {self.amount}"


class DailyRate(models.Model):
    """Dense daily exchange rates to the base currency, forward-filled from
    core.ExchangeRate, so conversion is an equality join on (currency, day)."""

    currency = CurrencyField()
    day = models.DateField()
    rate = models.DecimalField(max_digits=20, decimal_places=10)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["currency", "day"], name="uniq_kpi_rate_day")
        ]

    def __str__(self) -> str:
        return f"{self.currency} {self.day}: {self.rate}"


class DirtyMonth(models.Model):
    """A month of one rollup area that changed since the last update (coalescing queue)."""

    class Area(models.TextChoices):
        DEALS = "deals", "Deals (by close month)"
        STAGES = "stages", "Stage history (by month of change)"
        QUOTAS = "quotas", "Quotas"
        SUBSCRIPTIONS = "subscriptions", "Subscriptions"
        NPS = "nps", "NPS"

    area = models.CharField(max_length=16, choices=Area.choices)
    month = models.DateField()
    marked_at = models.DateTimeField(auto_now_add=True)

    # No unique key on purpose: a commit that queues a month while an update or the
    # nightly rebuild is dequeuing the same month must not wait for that long transaction
    # (a unique insert would, and the request that saved the change would time out after
    # its data was committed). The update reads the rows as a set and deletes only those
    # it read, so a duplicate costs nothing and a later one waits for the next update.

    def __str__(self) -> str:
        return f"{self.area} {self.month:%Y-%m}"


class DirtyDeal(models.Model):
    """A deal changed since the last update (coalescing queue of per-deal updates): the
    update recomputes only the (month, owner) cells the deal was and now is in. ``area``
    is ``deals`` (closed and pipeline rollups) or ``stages`` (its stage history too)."""

    area = models.CharField(max_length=16, choices=DirtyMonth.Area.choices[:2])
    deal = _loose_reference("crm.Opportunity")
    marked_at = models.DateTimeField(auto_now_add=True)

    # No unique key, for the reason given on DirtyMonth.

    def __str__(self) -> str:
        return f"{self.area} deal {self.deal_id}"
