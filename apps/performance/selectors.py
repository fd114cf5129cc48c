"""Reads for performance reviews, always through the visibility policy of apps.org.policy.

Due dates: a review of a fiscal quarter is due ``REVIEW_GRACE_DAYS`` days after the quarter
ends (inclusive); after that day an unsubmitted review is overdue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, QuerySet

from apps.core.errors import ApplicationError
from apps.org.models import Role, Team, User
from apps.org.policy import ancestor_ids, filter_by_owner, scope_for, subtree_ids, team_tree
from apps.performance.models import Competency, PerformanceReview
from apps.quotas import fiscal
from apps.quotas.models import FiscalPeriod

REVIEW_GRACE_DAYS = 14
#: The KPIs a review shows, in order: (KPI registry name, label).
REVIEW_KPIS: tuple[tuple[str, str], ...] = (
    ("bookings", "Bookings"),
    ("attainment", "Quota attainment"),
    ("win_rate", "Win rate"),
    ("sales_cycle_mean", "Sales cycle (days)"),
    ("open_pipeline", "Open pipeline"),
)


def competencies_for_rep(rep: User) -> list[Competency]:
    """The active competencies a review of ``rep`` rates: company-wide ones and those of
    the rep's team and every team above it (a team overrides a company-wide competency
    with the same slug)."""
    teams = [rep.team_id, *ancestor_ids(rep.team_id)] if rep.team_id else []
    rows = list(
        Competency.objects.filter(Q(team__isnull=True) | Q(team_id__in=teams), is_active=True)
        .select_related("team")
        .order_by("order", "name")
    )
    team_slugs = {c.slug for c in rows if c.team_id is not None}
    return [c for c in rows if c.team_id is not None or c.slug not in team_slugs]


def visible_reviews(*, user: User) -> QuerySet[PerformanceReview]:
    """Reviews the user may open: executives and RevOps admins all, managers their
    people's, a rep their own once submitted (a draft is the manager's work in progress)."""
    scope = scope_for(user)
    reviews = PerformanceReview.objects.select_related("rep__team", "reviewer", "period")
    reviews = filter_by_owner(reviews, scope, "rep")
    if not scope.everything:
        reviews = reviews.exclude(Q(rep=user) & Q(status=PerformanceReview.Status.DRAFT))
    return reviews


def review_get(*, user: User, pk: int) -> PerformanceReview | None:
    return visible_reviews(user=user).filter(pk=pk).first()


def rep_history(*, user: User, rep_id: int) -> QuerySet[PerformanceReview] | None:
    """A person's reviews, newest period first, or None when the user may not see them."""
    if not scope_for(user).sees_user(rep_id):
        return None
    return visible_reviews(user=user).filter(rep_id=rep_id).order_by("-period__start_date")


@dataclass(frozen=True)
class DueReview:
    rep: User
    period: FiscalPeriod
    review: PerformanceReview | None
    due_on: date

    def overdue_on(self, today: date) -> bool:
        return today > self.due_on


def _ended_quarters(today: date, count: int) -> list[FiscalPeriod]:
    start_month = settings.FISCAL_YEAR_START_MONTH
    current = fiscal.period_containing(today, "quarter", start_month)
    names = [fiscal.shift(current, -k, start_month).name for k in range(1, count + 1)]
    return list(FiscalPeriod.objects.filter(name__in=names).order_by("-start_date"))


def reviews_due(*, user: User, today: date, quarters: int = 2) -> list[DueReview]:
    """For the last ``quarters`` ended fiscal quarters: each rep the user may review who
    has no submitted review yet (none, or a draft), with its due date. Executives see every
    rep; managers the reps of their subtree. Three queries after resolving the scope."""
    scope = scope_for(user)
    if user.role == Role.REP or not (scope.everything or scope.team_ids):
        return []
    periods = _ended_quarters(today, quarters)
    candidates = User.objects.filter(role=Role.REP, is_active=True).select_related("team")
    if not scope.everything:
        candidates = candidates.filter(pk__in=scope.user_ids)
    reps = list(candidates.exclude(pk=user.pk))
    reviews = {
        (r.rep_id, r.period_id): r
        for r in PerformanceReview.objects.filter(rep__in=reps, period__in=periods).select_related(
            "period"
        )
    }
    result = []
    for period in periods:
        for rep in reps:
            if rep.hired_on and rep.hired_on > period.end_date:
                continue
            review = reviews.get((rep.pk, period.pk))
            if review is None or review.status == PerformanceReview.Status.DRAFT:
                result.append(
                    DueReview(
                        rep=rep,
                        period=period,
                        review=review,
                        due_on=period.end_date + timedelta(days=REVIEW_GRACE_DAYS),
                    )
                )
    return result


@dataclass(frozen=True)
class TeamCompletion:
    team: Team
    reps: int
    submitted: int  # submitted or acknowledged
    acknowledged: int

    @property
    def percent(self) -> Decimal | None:
        if self.reps == 0:
            return None
        return (Decimal(100) * self.submitted / self.reps).quantize(Decimal("1"))


def completion_by_team(*, user: User, period: FiscalPeriod) -> list[TeamCompletion]:
    """Per visible team (each counted with its whole subtree): active reps, reviews
    submitted (or acknowledged) and acknowledged for ``period``. Four queries after
    resolving the scope."""
    scope = scope_for(user)
    teams = list(Team.objects.filter(is_active=True).order_by("name"))
    if not scope.everything:
        teams = [t for t in teams if t.pk in scope.team_ids]
    tree = team_tree()
    reps_by_team = dict(
        User.objects.filter(role=Role.REP, is_active=True, team__isnull=False)
        .values_list("team_id")
        .annotate(n=Count("id"))
    )
    done = {
        row["rep__team_id"]: row
        for row in PerformanceReview.objects.filter(period=period)
        .exclude(status=PerformanceReview.Status.DRAFT)
        .values("rep__team_id")
        .annotate(
            submitted=Count("id"),
            acknowledged=Count("id", filter=Q(status=PerformanceReview.Status.ACKNOWLEDGED)),
        )
    }
    result = []
    for team in teams:
        ids = subtree_ids([team.pk], tree)
        result.append(
            TeamCompletion(
                team=team,
                reps=sum(reps_by_team.get(i, 0) for i in ids),
                submitted=sum(done[i]["submitted"] for i in ids if i in done),
                acknowledged=sum(done[i]["acknowledged"] for i in ids if i in done),
            )
        )
    return result


@dataclass(frozen=True)
class ReviewKpi:
    name: str
    label: str
    unit: str
    value: Decimal | int | None
    note: str = ""


def review_kpis(*, user: User, review: PerformanceReview) -> list[ReviewKpi]:
    """The rep's KPIs for the review's period, read from the KPI selectors (the one place
    KPIs are computed). A KPI that cannot be read shows no value and says why."""
    from apps.kpis.registry import kpi_get
    from apps.kpis.selectors import kpi_value

    result = []
    for name, label in REVIEW_KPIS:
        try:
            value = kpi_value(
                name=name, period=review.period.name, user=user, rep_id=review.rep_id
            ).value
            result.append(ReviewKpi(name, label, kpi_get(name).unit, value))
        except ApplicationError as exc:
            result.append(ReviewKpi(name, label, "", None, exc.message))
    return result


def review_periods() -> QuerySet[FiscalPeriod]:
    return FiscalPeriod.objects.filter(
        kind__in=[FiscalPeriod.Kind.QUARTER, FiscalPeriod.Kind.YEAR]
    ).order_by("-start_date")


def last_ended_quarter(today: date) -> FiscalPeriod | None:
    ended = _ended_quarters(today, 1)
    return ended[0] if ended else None


def configurable_teams(*, user: User) -> QuerySet[Team]:
    """Teams whose competencies the user may configure: the teams they may plan
    (executives every team, managers their subtree; nobody else)."""
    teams = Team.objects.filter(is_active=True).order_by("name")
    if user.is_superuser or user.role == Role.EXECUTIVE:
        return teams
    if user.role != Role.MANAGER:
        return teams.none()
    return teams.filter(pk__in=scope_for(user).team_ids)


def team_competencies(*, team: Team) -> QuerySet[Competency]:
    """Company-wide competencies and the team's own, for its configuration page."""
    return Competency.objects.filter(Q(team__isnull=True) | Q(team=team)).order_by(
        "team_id", "order", "name"
    )
