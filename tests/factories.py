"""factory_boy factories for every model, shared by the whole test suite.

Defaults are valid on their own and respect every database constraint: money is Decimal,
datetimes are timezone-aware, won stages are 100 % and lost stages 0 %, quotas are for a
rep (or, with ``for_team=True``, a team) in a fiscal *month*, and teams hang below a
company. Opportunities are created through :func:`apps.crm.services.opportunity_create`,
so each one starts with its "created" history row, exactly like real data.

Usage::

    rep = RepFactory()                       # a rep in a team below the company
    won = StageFactory(won=True)             # outcome won, probability 100
    opp = OpportunityFactory(owner=rep, stage=won, amount=Decimal("5000.00"))
    QuotaFactory(rep=rep, period=FiscalPeriodFactory(day=date(2025, 3, 1)))
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.conf import settings
from django.utils import timezone
from factory.django import DjangoModelFactory

from apps.core.models import ExchangeRate, JobRun
from apps.crm.models import (
    Account,
    DealType,
    Opportunity,
    OpportunityHistory,
    Product,
    Segment,
    Stage,
)
from apps.crm.services import opportunity_create
from apps.customers.models import NpsResponse, Subscription
from apps.org.models import Region, Role, Team, User
from apps.performance.models import (
    CoachingNote,
    Competency,
    PerformanceReview,
    ReviewAmendment,
    ReviewRating,
)
from apps.quotas import fiscal
from apps.quotas.models import FiscalPeriod, Quota, QuotaChange, QuotaPlan

#: The password every user made by :class:`UserFactory` logs in with.
PASSWORD = "correct-horse-battery-staple"

_REGION_NAMES = {"NA": "North America", "EMEA": "Europe, Middle East and Africa", "APAC": "APAC"}


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + (day.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


# --- core ---------------------------------------------------------------------------------
class ExchangeRateFactory(DjangoModelFactory):
    """1 EUR in USD, one row per day from 2025-01-01 on."""

    class Meta:
        model = ExchangeRate

    currency = "EUR"
    base_currency = "USD"
    rate_date = factory.Sequence(lambda n: dt.date(2025, 1, 1) + dt.timedelta(days=n))
    rate = Decimal("1.0800000000")


class JobRunFactory(DjangoModelFactory):
    """A finished, successful background run of one minute."""

    class Meta:
        model = JobRun

    kind = "rollups_rebuild"
    status = JobRun.Status.SUCCEEDED
    started_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(minutes=1))
    finished_at = factory.LazyAttribute(
        lambda o: None if o.status == JobRun.Status.RUNNING else timezone.now()
    )
    rows = 10


# --- org ----------------------------------------------------------------------------------
class RegionFactory(DjangoModelFactory):
    """Cycles through NA, EMEA and APAC; the same code always returns the same row."""

    class Meta:
        model = Region
        django_get_or_create = ("code",)

    code = factory.Iterator(["NA", "EMEA", "APAC"])
    name = factory.LazyAttribute(lambda o: _REGION_NAMES.get(o.code, f"Region {o.code}"))


class CompanyFactory(DjangoModelFactory):
    """The root of the team tree. There is normally one, so it is fetched by name."""

    class Meta:
        model = Team
        django_get_or_create = ("name", "kind")

    name = "Company"
    kind = Team.Kind.COMPANY
    parent = None


class TeamFactory(DjangoModelFactory):
    """A sales team directly below the company (pass ``parent`` for a deeper tree)."""

    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Team {n}")
    kind = Team.Kind.TEAM
    parent = factory.SubFactory(CompanyFactory)
    manager = None
    region = None
    is_active = True


class RegionTeamFactory(TeamFactory):
    """A region-level node below the company, tied to a :class:`Region`."""

    name = factory.Sequence(lambda n: f"Region team {n}")
    kind = Team.Kind.REGION
    region = factory.SubFactory(RegionFactory)


class UserFactory(DjangoModelFactory):
    """A rep without a team; see the role-specific factories below."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Sequence(lambda n: f"First{n}")
    last_name = factory.Sequence(lambda n: f"Last{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password(PASSWORD)
    role = Role.REP
    title = "Account Executive"
    team = None
    is_active = True


class RepFactory(UserFactory):
    """A rep who belongs to a (new) team."""

    team = factory.SubFactory(TeamFactory)


class ManagerFactory(UserFactory):
    """A sales manager. ``team`` defaults to a new team that this user manages."""

    role = Role.MANAGER
    title = "Sales Manager"
    team = factory.SubFactory(TeamFactory)

    @factory.post_generation
    def manages_team(self, create: bool, extracted: bool | None, **kwargs) -> None:
        # A manager belongs to the team they run; pass manages_team=False to opt out.
        if create and extracted is not False and self.team_id and self.team.manager_id is None:
            self.team.manager = self
            self.team.save(update_fields=["manager"])


class ExecutiveFactory(UserFactory):
    role = Role.EXECUTIVE
    title = "CSO"


class RevOpsAdminFactory(UserFactory):
    role = Role.REVOPS_ADMIN
    title = "Revenue Operations"


class SuperUserFactory(UserFactory):
    """A Django superuser (admin access); its sales role is RevOps admin."""

    username = factory.Sequence(lambda n: f"admin{n}")
    role = Role.REVOPS_ADMIN
    title = "Administrator"
    is_staff = True
    is_superuser = True


# --- crm ----------------------------------------------------------------------------------
class AccountFactory(DjangoModelFactory):
    class Meta:
        model = Account

    external_id = factory.Sequence(lambda n: f"ACC-{n:05d}")
    name = factory.Sequence(lambda n: f"Account {n}")
    segment = Segment.MID_MARKET
    industry = "Software"
    region = factory.SubFactory(RegionFactory)
    country = "US"


class ProductFactory(DjangoModelFactory):
    class Meta:
        model = Product

    external_id = factory.Sequence(lambda n: f"PRD-{n:04d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    family = "Platform"
    is_active = True


class StageFactory(DjangoModelFactory):
    """An open stage at 20 %; ``won=True`` or ``lost=True`` for the closed outcomes.

    ``order`` counts up from 100 so that hand-numbered stages (1, 2, 3...) never clash.
    """

    class Meta:
        model = Stage

    class Params:
        won = factory.Trait(outcome=Stage.Outcome.WON, probability=Decimal("100"))
        lost = factory.Trait(outcome=Stage.Outcome.LOST, probability=Decimal("0"))

    name = factory.Sequence(lambda n: f"Stage {n}")
    order = factory.Sequence(lambda n: 100 + n)
    outcome = Stage.Outcome.OPEN
    probability = Decimal("20.00")
    is_active = True


class OpportunityFactory(DjangoModelFactory):
    """An open USD 10,000.00 deal, created through the service so that its first history
    row ("created") exists. Extra keywords of the service pass through: ``changed_by``,
    ``changed_at`` (when the "created" row is dated) and ``history_source``. Use
    ``create()`` (the default); ``build()`` leaves ``forecast_category`` for the service
    to derive, so pass one if you build an unsaved deal."""

    class Meta:
        model = Opportunity

    external_id = factory.Sequence(lambda n: f"OPP-{n:06d}")
    name = factory.Sequence(lambda n: f"Deal {n}")
    account = factory.SubFactory(AccountFactory)
    owner = factory.SubFactory(RepFactory)
    product = factory.SubFactory(ProductFactory)
    amount = Decimal("10000.00")
    currency = "USD"
    stage = factory.SubFactory(StageFactory)
    # None lets the service derive it: pipeline while open, closed if won, omitted if lost.
    forecast_category = None
    deal_type = DealType.NEW
    source = "Inbound"
    created_date = dt.date(2025, 1, 15)
    close_date = dt.date(2025, 3, 31)
    lost_reason = ""

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return opportunity_create(**kwargs)


class OpportunityHistoryFactory(DjangoModelFactory):
    """An extra snapshot row copying the deal's current state (the deal's own "created"
    row already exists). Override the snapshot fields to describe a change."""

    class Meta:
        model = OpportunityHistory

    opportunity = factory.SubFactory(OpportunityFactory)
    changed_at = factory.LazyFunction(timezone.now)
    changed_by = None
    source = OpportunityHistory.Source.APP
    changed_fields = "amount"
    stage = factory.SelfAttribute("opportunity.stage")
    amount = factory.SelfAttribute("opportunity.amount")
    currency = factory.SelfAttribute("opportunity.currency")
    close_date = factory.SelfAttribute("opportunity.close_date")
    owner = factory.SelfAttribute("opportunity.owner")
    forecast_category = factory.SelfAttribute("opportunity.forecast_category")


# --- quotas -------------------------------------------------------------------------------
class FiscalPeriodFactory(DjangoModelFactory):
    """A fiscal period of the configured calendar (FISCAL_YEAR_START_MONTH, read when the
    factory runs). Pass ``day`` and ``period_kind`` ("month", "quarter", "year") to pick
    it; by default each call gives the next month from January 2025. The same period
    twice returns the same row."""

    class Meta:
        model = FiscalPeriod
        django_get_or_create = ("name",)

    class Params:
        day = factory.Sequence(lambda n: _add_months(dt.date(2025, 1, 1), n))
        period_kind = "month"
        calendar = factory.LazyAttribute(
            lambda o: fiscal.period_containing(o.day, o.period_kind, o.fiscal_start_month)
        )

    fiscal_start_month = factory.LazyFunction(lambda: settings.FISCAL_YEAR_START_MONTH)
    name = factory.SelfAttribute("calendar.name")
    kind = factory.SelfAttribute("calendar.kind")
    fiscal_year = factory.SelfAttribute("calendar.fiscal_year")
    number = factory.SelfAttribute("calendar.number")
    start_date = factory.SelfAttribute("calendar.start")
    end_date = factory.SelfAttribute("calendar.end")


class QuotaFactory(DjangoModelFactory):
    """A USD 50,000.00 monthly quota for a rep; ``for_team=True`` makes it a team's."""

    class Meta:
        model = Quota

    class Params:
        for_team = factory.Trait(rep=None, team=factory.SubFactory(TeamFactory))

    period = factory.SubFactory(FiscalPeriodFactory)
    rep = factory.SubFactory(RepFactory)
    team = None
    amount = Decimal("50000.00")
    currency = "USD"
    set_by = None
    set_at = factory.LazyFunction(timezone.now)
    note = ""


class QuotaPlanFactory(DjangoModelFactory):
    """A draft plan of a team for a fiscal quarter (pass ``period`` for another)."""

    class Meta:
        model = QuotaPlan

    team = factory.SubFactory(TeamFactory)
    period = factory.SubFactory(FiscalPeriodFactory, period_kind="quarter", day=dt.date(2025, 1, 1))
    status = QuotaPlan.Status.DRAFT


class QuotaChangeFactory(DjangoModelFactory):
    """An audit entry: a rep's monthly quota created at USD 50,000.00."""

    class Meta:
        model = QuotaChange

    quota = factory.SubFactory(QuotaFactory)
    month = factory.SelfAttribute("quota.period")
    rep = factory.SelfAttribute("quota.rep")
    field = QuotaChange.Field.AMOUNT
    old_value = ""
    new_value = "50000.00"
    currency = "USD"
    changed_at = factory.LazyFunction(timezone.now)


# --- performance --------------------------------------------------------------------------
class CompetencyFactory(DjangoModelFactory):
    """A company-wide competency (``team`` empty)."""

    class Meta:
        model = Competency

    slug = factory.Sequence(lambda n: f"competency-{n}")
    name = factory.Sequence(lambda n: f"Competency {n}")
    description = ""
    team = None
    order = factory.Sequence(lambda n: n)
    is_active = True


class PerformanceReviewFactory(DjangoModelFactory):
    """A draft review of a rep by a manager for a fiscal quarter; traits ``submitted`` and
    ``acknowledged`` set the matching timestamps so the status constraints hold."""

    class Meta:
        model = PerformanceReview

    class Params:
        submitted = factory.Trait(
            status=PerformanceReview.Status.SUBMITTED,
            submitted_at=factory.LazyFunction(timezone.now),
        )
        acknowledged = factory.Trait(
            status=PerformanceReview.Status.ACKNOWLEDGED,
            submitted_at=factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=1)),
            acknowledged_at=factory.LazyFunction(timezone.now),
        )

    rep = factory.SubFactory(RepFactory)
    reviewer = factory.SubFactory(ManagerFactory)
    period = factory.SubFactory(
        FiscalPeriodFactory,
        period_kind="quarter",
        day=factory.Sequence(lambda n: _add_months(dt.date(2025, 1, 1), 3 * n)),
    )
    status = PerformanceReview.Status.DRAFT
    strengths = "Disciplined pipeline hygiene."
    areas_to_grow = "Multi-threading in larger accounts."
    goals = "Close two enterprise deals."
    comments = ""
    rep_response = ""
    submitted_at = None
    acknowledged_at = None


class ReviewRatingFactory(DjangoModelFactory):
    class Meta:
        model = ReviewRating

    review = factory.SubFactory(PerformanceReviewFactory)
    competency = factory.SubFactory(CompetencyFactory)
    score = 3


class ReviewAmendmentFactory(DjangoModelFactory):
    """A logged change to a submitted review."""

    class Meta:
        model = ReviewAmendment

    review = factory.SubFactory(PerformanceReviewFactory, submitted=True)
    field = "goals"
    old_value = "Close two enterprise deals."
    new_value = "Close three enterprise deals."
    reason = "Agreed in the follow-up meeting."
    changed_by = factory.SelfAttribute("review.reviewer")
    changed_at = factory.LazyFunction(timezone.now)


class CoachingNoteFactory(DjangoModelFactory):
    class Meta:
        model = CoachingNote

    rep = factory.SubFactory(RepFactory)
    author = factory.SubFactory(ManagerFactory)
    body = "Walked through the discovery call; next time confirm budget earlier."


# --- customers ----------------------------------------------------------------------------
class SubscriptionFactory(DjangoModelFactory):
    """An active USD 1,000.00/month subscription from 2025-01-01 (no end date)."""

    class Meta:
        model = Subscription

    external_id = factory.Sequence(lambda n: f"SUB-{n:06d}")
    account = factory.SubFactory(AccountFactory)
    product = factory.SubFactory(ProductFactory)
    mrr = Decimal("1000.00")
    currency = "USD"
    start_date = dt.date(2025, 1, 1)
    end_date = None


class NpsResponseFactory(DjangoModelFactory):
    """A promoter (score 9) answering on 2025-02-01."""

    class Meta:
        model = NpsResponse

    external_id = factory.Sequence(lambda n: f"NPS-{n:06d}")
    account = factory.SubFactory(AccountFactory)
    contact_name = factory.Sequence(lambda n: f"Contact {n}")
    contact_email = factory.Sequence(lambda n: f"contact{n}@customer.example")
    score = 9
    comment = ""
    responded_on = dt.date(2025, 2, 1)


#: One factory per model, for suites that walk every model (admin pages, validation).
MODEL_FACTORIES: dict[type, type[DjangoModelFactory]] = {
    ExchangeRate: ExchangeRateFactory,
    JobRun: JobRunFactory,
    Region: RegionFactory,
    Team: TeamFactory,
    User: RepFactory,
    Account: AccountFactory,
    Product: ProductFactory,
    Stage: StageFactory,
    Opportunity: OpportunityFactory,
    OpportunityHistory: OpportunityHistoryFactory,
    FiscalPeriod: FiscalPeriodFactory,
    Quota: QuotaFactory,
    QuotaPlan: QuotaPlanFactory,
    QuotaChange: QuotaChangeFactory,
    Competency: CompetencyFactory,
    PerformanceReview: PerformanceReviewFactory,
    ReviewRating: ReviewRatingFactory,
    ReviewAmendment: ReviewAmendmentFactory,
    CoachingNote: CoachingNoteFactory,
    Subscription: SubscriptionFactory,
    NpsResponse: NpsResponseFactory,
}
