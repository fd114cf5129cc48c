"""CRM read model: accounts, products, pipeline stages, opportunities and their history."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.core.models import CurrencyField, MoneyField


class Segment(models.TextChoices):
    SMB = "smb", "SMB"
    MID_MARKET = "mid_market", "Mid-market"
    ENTERPRISE = "enterprise", "Enterprise"


class Account(models.Model):
    external_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    segment = models.CharField(max_length=16, choices=Segment.choices, default=Segment.SMB)
    industry = models.CharField(max_length=80, blank=True)
    region = models.ForeignKey(
        "org.Region", null=True, blank=True, on_delete=models.PROTECT, related_name="accounts"
    )
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2 code")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["name"], name="account_name")]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    external_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=120, unique=True)
    family = models.CharField(max_length=80, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Stage(models.Model):
    """A pipeline stage. Its outcome decides whether a deal in it is open, won or lost."""

    class Outcome(models.TextChoices):
        OPEN = "open", "Open"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    name = models.CharField(max_length=80, unique=True)
    order = models.PositiveSmallIntegerField(unique=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.OPEN)
    probability = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Default win probability in percent (0-100).",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["order"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(probability__gte=0, probability__lte=100),
                name="stage_probability_0_100",
                violation_error_message="A stage's probability must be between 0 and 100.",
            ),
            models.CheckConstraint(
                condition=~models.Q(outcome="won") | models.Q(probability=100),
                name="stage_won_is_100",
                violation_error_message="A won stage has a probability of 100.",
            ),
            models.CheckConstraint(
                condition=~models.Q(outcome="lost") | models.Q(probability=0),
                name="stage_lost_is_0",
                violation_error_message="A lost stage has a probability of 0.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ForecastCategory(models.TextChoices):
    PIPELINE = "pipeline", "Pipeline"
    BEST_CASE = "best_case", "Best case"
    COMMIT = "commit", "Commit"
    CLOSED = "closed", "Closed"
    OMITTED = "omitted", "Omitted"


class DealType(models.TextChoices):
    NEW = "new", "New business"
    EXPANSION = "expansion", "Expansion"
    RENEWAL = "renewal", "Renewal"


class Opportunity(models.Model):
    """A deal. Amount is in ``currency``; KPIs convert it to the base currency at the rate
    effective on the close date. Changes to tracked fields go through
    :func:`apps.crm.services.opportunity_update`, which writes :class:`OpportunityHistory`.
    """

    external_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="opportunities")
    # owner and stage get no index of their own: opp_owner_close and opp_stage_close lead
    # with them, and every extra index slows each write and each bulk import.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="opportunities",
        db_index=False,
    )
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="opportunities"
    )
    amount = MoneyField()
    currency = CurrencyField()
    stage = models.ForeignKey(
        Stage, on_delete=models.PROTECT, related_name="opportunities", db_index=False
    )
    forecast_category = models.CharField(
        max_length=16, choices=ForecastCategory.choices, default=ForecastCategory.PIPELINE
    )
    deal_type = models.CharField(max_length=16, choices=DealType.choices, default=DealType.NEW)
    source = models.CharField(max_length=40, blank=True, help_text="Lead source, e.g. Inbound")
    created_date = models.DateField(help_text="When the deal was created in the CRM.")
    close_date = models.DateField(help_text="Actual close date, or expected while open.")
    lost_reason = models.CharField(max_length=120, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-close_date", "name"]
        verbose_name_plural = "opportunities"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gte=0),
                name="opp_amount_not_negative",
                violation_error_message="The amount cannot be negative.",
            ),
            models.CheckConstraint(
                condition=models.Q(close_date__gte=models.F("created_date")),
                name="opp_closes_after_created",
                violation_error_message="The close date cannot be before the created date.",
            ),
        ]
        indexes = [
            models.Index(fields=["close_date"], name="opp_close_date"),
            models.Index(fields=["owner", "close_date"], name="opp_owner_close"),
            models.Index(fields=["stage", "close_date"], name="opp_stage_close"),
        ]

    def __str__(self) -> str:
        return self.name


class OpportunityHistory(models.Model):
    """A snapshot of an opportunity's tracked fields, valid from ``changed_at``.

    One row is written when the deal is created and one per change of stage, amount,
    currency, close date, owner or forecast category; ``changed_fields`` names what changed
    (comma separated, ``created`` for the first row). The deal as it stood at any moment t
    is its latest row with ``changed_at <= t``, so any past day's pipeline can be rebuilt.
    """

    class Source(models.TextChoices):
        APP = "app", "App"
        IMPORT = "import", "Import"
        API = "api", "API"
        ADMIN = "admin", "Admin"
        SEED = "seed", "Demo seed"

    # No index of its own: opphist_opp_time leads with the deal.
    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.CASCADE, related_name="history", db_index=False
    )
    changed_at = models.DateTimeField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.APP)
    changed_fields = models.CharField(max_length=120)
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    amount = MoneyField()
    currency = CurrencyField()
    close_date = models.DateField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    forecast_category = models.CharField(max_length=16, choices=ForecastCategory.choices)

    class Meta:
        ordering = ["opportunity_id", "changed_at", "id"]
        verbose_name_plural = "opportunity history"
        indexes = [
            models.Index(fields=["opportunity", "changed_at"], name="opphist_opp_time"),
            models.Index(fields=["changed_at"], name="opphist_time"),
        ]

    def __str__(self) -> str:
        return f"{self.opportunity_id} {self.changed_fields} @ {self.changed_at:%Y-%m-%d %H:%M}"
