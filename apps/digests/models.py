"""Digest subscriptions, threshold alerts and the delivery log.

A subscription says who gets which sections, for which scope (the company or a team
subtree) and when (daily, weekly on a weekday, monthly on a day, at an hour of a time zone).
The schedule lives in these rows, so editing it takes effect at the next dispatcher run,
without a restart. Every mail sent (digest, alert or test) is a :class:`Delivery` row whose
unique key (subscription, period key) makes sending at most once per subscription and
period, however many dispatchers run.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Frequency(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class Section(models.TextChoices):
    HEADLINE = "headline", "Headline KPIs vs quota"
    FORECAST = "forecast", "Forecast and range"
    PIPELINE = "pipeline", "Pipeline changes since the last digest"
    DEALS = "deals", "Biggest deals won, lost and slipped"
    ATTAINMENT = "attainment", "Team attainment"
    CUSTOMERS = "customers", "Retention, CLV and NPS"
    MANAGER = "manager", "Overdue reviews and forecast calls (managers)"


SECTION_ORDER: tuple[str, ...] = tuple(Section.values)


class DigestSubscription(models.Model):
    """Who receives which digest, for which scope, when.

    The recipient is a user, or an external address with a name. ``owner`` is the user who
    manages the subscription; for an external address the owner's visibility bounds the
    scope (the address sees what its owner may see, never more). ``team`` empty means the
    whole company.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digests_owned"
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="digests_received",
    )
    recipient_email = models.EmailField(blank=True)
    recipient_name = models.CharField(max_length=120, blank=True)
    team = models.ForeignKey(
        "org.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="digest_subscriptions",
        help_text="Empty: the whole company.",
    )
    frequency = models.CharField(max_length=8, choices=Frequency.choices, default=Frequency.WEEKLY)
    weekday = models.PositiveSmallIntegerField(
        null=True, blank=True, choices=Weekday.choices, help_text="Weekly digests only."
    )
    day_of_month = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Monthly digests only, 1-31; a day past the month's end means its last day.",
    )
    hour = models.PositiveSmallIntegerField(default=7, help_text="0-23, in the time zone.")
    time_zone = models.CharField(max_length=64, default="UTC")
    sections = models.JSONField(default=list, blank=True)
    send_digest = models.BooleanField(
        default=True, help_text="Off: the subscription only carries threshold alerts."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(recipient__isnull=False) & Q(recipient_email=""))
                | (Q(recipient__isnull=True) & ~Q(recipient_email="")),
                name="digest_one_recipient",
                violation_error_message="Choose a user or an external address, not both.",
            ),
            models.CheckConstraint(
                condition=Q(hour__gte=0, hour__lte=23), name="digest_hour_range"
            ),
            models.CheckConstraint(
                condition=~Q(frequency="weekly") | Q(weekday__isnull=False, weekday__lte=6),
                name="digest_weekly_has_weekday",
            ),
            models.CheckConstraint(
                condition=~Q(frequency="monthly")
                | Q(day_of_month__isnull=False, day_of_month__gte=1, day_of_month__lte=31),
                name="digest_monthly_has_day",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_frequency_display()} digest to {self.recipient_label}"

    @property
    def recipient_label(self) -> str:
        if self.recipient_id is not None:
            return str(self.recipient)
        return self.recipient_name or self.recipient_email

    @property
    def address(self) -> str:
        """The mail address the digest goes to."""
        if self.recipient_id is not None:
            return self.recipient.email
        return self.recipient_email

    @property
    def scope_label(self) -> str:
        return self.team.name if self.team_id is not None else "Company"

    @property
    def schedule_text(self) -> str:
        """'Weekly on Monday at 07:00 (Europe/Berlin)'."""
        when = f"at {self.hour:02d}:00 ({self.time_zone})"
        if self.frequency == Frequency.WEEKLY and self.weekday is not None:
            return f"Weekly on {Weekday(self.weekday).label} {when}"
        if self.frequency == Frequency.MONTHLY:
            return f"Monthly on day {self.day_of_month} {when}"
        return f"Daily {when}"


class AlertKpi(models.TextChoices):
    """What an alert can watch: KPI registry names, and ``forecast_attainment`` (the
    forecast for the period / the quota for the period; see
    :func:`apps.digests.selectors.forecast_attainment`)."""

    PIPELINE_COVERAGE = "pipeline_coverage", "Pipeline coverage (x)"
    ATTAINMENT = "attainment", "Quota attainment (%)"
    WIN_RATE = "win_rate", "Win rate (%)"
    BOOKINGS = "bookings", "Bookings"
    OPEN_PIPELINE = "open_pipeline", "Open pipeline"
    NRR = "nrr", "Net revenue retention (%)"
    GRR = "grr", "Gross revenue retention (%)"
    NPS = "nps", "NPS"
    FORECAST_ATTAINMENT = "forecast_attainment", "Forecast attainment (%)"


class DigestAlert(models.Model):
    """Mail the subscription's recipient when a KPI of its scope crosses a threshold.

    The KPI is measured for the current fiscal period (``period_kind``). ``state`` keeps
    whether the condition held at the last check: an alert fires when it goes from armed
    to triggered (one mail per crossing) and re-arms when the condition stops holding.
    Percentages are entered as percent (90 means 90 %), coverage as a multiple (3 = 3x).
    """

    class Operator(models.TextChoices):
        BELOW = "below", "falls below"
        ABOVE = "above", "rises above"

    class State(models.TextChoices):
        ARMED = "armed", "Armed"
        TRIGGERED = "triggered", "Triggered"

    class PeriodKind(models.TextChoices):
        MONTH = "month", "Current fiscal month"
        QUARTER = "quarter", "Current fiscal quarter"
        YEAR = "year", "Current fiscal year"

    subscription = models.ForeignKey(
        DigestSubscription, on_delete=models.CASCADE, related_name="alerts"
    )
    kpi = models.CharField(max_length=32, choices=AlertKpi.choices)
    operator = models.CharField(max_length=8, choices=Operator.choices, default=Operator.BELOW)
    threshold = models.DecimalField(max_digits=18, decimal_places=4)
    period_kind = models.CharField(
        max_length=8, choices=PeriodKind.choices, default=PeriodKind.QUARTER
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.ARMED)
    crossings = models.PositiveIntegerField(default=0)
    last_value = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_kpi_display()} {self.get_operator_display()} {self.threshold}"


class Delivery(models.Model):
    """One mail of a subscription: a digest for a period, an alert crossing or a test.

    ``period_key`` names what the mail is for (``weekly:2024-07-01``, ``alert:3:2``,
    ``test:...``); the unique constraint on (subscription, period key) is what makes a
    digest go out at most once per period even with two dispatchers or two beats.
    ``payload`` keeps the rendered mail, so retries and resends send exactly the same
    message.
    """

    class Kind(models.TextChoices):
        DIGEST = "digest", "Digest"
        ALERT = "alert", "Alert"
        TEST = "test", "Test"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        RETRYING = "retrying", "Retrying"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    subscription = models.ForeignKey(
        DigestSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    alert = models.ForeignKey(
        DigestAlert, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.DIGEST)
    period_key = models.CharField(max_length=80)
    scheduled_for = models.DateTimeField(help_text="The schedule occurrence (or creation).")
    to_email = models.EmailField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    payload = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "period_key"], name="uniq_delivery_subscription_period"
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="delivery_sent_has_time",
            ),
        ]
        indexes = [models.Index(fields=["status", "last_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.period_key} to {self.to_email}: {self.status}"
