"""Reads for quota planning, always through the visibility policy of apps.org.policy.

Money on the planning grid is in the quotas' own currency (normally BASE_CURRENCY, the only
currency the grid writes); reference figures (last period's quota and bookings) come from
the KPI selectors and are in BASE_CURRENCY.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, QuerySet

from apps.core.errors import ApplicationError
from apps.org.models import Role, Team, User
from apps.org.policy import (
    can_approve_plan,
    can_lock_plan,
    can_plan_team,
    can_view_plan,
    scope_for,
)
from apps.quotas import fiscal
from apps.quotas.models import FiscalPeriod, Quota, QuotaChange, QuotaPlan
from apps.quotas.services import PlanFrame, plan_frame, plan_quotas_by_cell

ZERO = Decimal("0.00")


class PlanNotVisible(ApplicationError):
    """The user may not see this team's plan (pages: 404, so nothing leaks)."""


@dataclass(frozen=True)
class Reference:
    """Last period's quota and bookings for one row, from the KPI selectors (None: no
    value, with ``note`` saying why when the KPI could not be read)."""

    quota: Decimal | None = None
    bookings: Decimal | None = None
    note: str = ""


@dataclass
class GridCell:
    key: str  # "r12:2025-01" / "t3:2025-01": the service's cell key
    month: FiscalPeriod
    amount: Decimal | None
    currency: str
    value: str  # what the input shows (the submitted text after an error)
    errors: list[str] = field(default_factory=list)


@dataclass
class GridRow:
    key: str
    label: str
    kind: str  # "rep", "child" (a team directly below) or "own" (the plan's team)
    email: str
    cells: list[GridCell]
    reference: Reference

    @property
    def total(self) -> Decimal:
        return sum((c.amount or ZERO for c in self.cells), ZERO)


@dataclass
class PlanGrid:
    frame: PlanFrame
    plan: QuotaPlan | None
    rows: list[GridRow]  # reps and child teams: the bottom-up view
    own: GridRow  # the team's own (top-down) quota
    previous_name: str
    can_edit: bool
    can_submit: bool
    can_approve: bool
    can_lock: bool
    history: list[QuotaChange]
    base_currency: str

    @property
    def status(self) -> str:
        return self.plan.status if self.plan else QuotaPlan.Status.DRAFT

    @property
    def status_label(self) -> str:
        return QuotaPlan.Status(self.status).label

    @property
    def column_totals(self) -> list[Decimal]:
        return [
            sum((row.cells[i].amount or ZERO for row in self.rows), ZERO)
            for i in range(len(self.frame.months))
        ]

    @property
    def bottom_up_total(self) -> Decimal:
        return sum(self.column_totals, ZERO)

    @property
    def gaps(self) -> list[Decimal | None]:
        """Top-down minus bottom-up per month; None where the team has no own quota."""
        return [
            None if cell.amount is None else cell.amount - total
            for cell, total in zip(self.own.cells, self.column_totals, strict=True)
        ]

    @property
    def total_gap(self) -> Decimal | None:
        """The gap over the months where the team has its own quota (a month without a
        top-down target has no gap to report)."""
        gaps = [g for g in self.gaps if g is not None]
        return sum(gaps, ZERO) if gaps else None

    @property
    def months_and_gaps(self) -> list[tuple[FiscalPeriod, Decimal, Decimal | None]]:
        return list(zip(self.frame.months, self.column_totals, self.gaps, strict=True))


def plan_period_get(name: str) -> FiscalPeriod | None:
    """A fiscal quarter or year by name (``2025-Q1``, ``FY2025``), or None."""
    try:
        parsed = fiscal.parse_period(name, settings.FISCAL_YEAR_START_MONTH)
    except fiscal.FiscalError:
        return None
    if parsed.kind == "month":
        return None
    return FiscalPeriod.objects.filter(name=parsed.name).first()


def plannable_teams(*, user: User) -> QuerySet[Team]:
    """Teams whose plans the user may open: every team for those who see everything, a
    manager's subtree; none for a rep."""
    scope = scope_for(user)
    teams = Team.objects.filter(is_active=True).select_related("parent", "manager")
    if scope.everything:
        return teams
    return teams.filter(pk__in=scope.team_ids)


def plan_statuses(*, teams: Iterable[Team], period: FiscalPeriod) -> dict[int, QuotaPlan]:
    return {
        p.team_id: p
        for p in QuotaPlan.objects.filter(team__in=list(teams), period=period).select_related(
            "submitted_by", "approved_by"
        )
    }


def _reference(user: User, row_key: str, previous_name: str) -> Reference:
    from apps.kpis.selectors import kpi_value

    row_id, is_rep = int(row_key[1:]), row_key.startswith("r")
    rep_id, team_id = (row_id, None) if is_rep else (None, row_id)
    try:
        quota = kpi_value(
            name="quota", period=previous_name, user=user, rep_id=rep_id, team_id=team_id
        ).value
        bookings = kpi_value(
            name="bookings", period=previous_name, user=user, rep_id=rep_id, team_id=team_id
        ).value
    except ApplicationError as exc:
        return Reference(note=exc.message)
    return Reference(quota=quota, bookings=bookings)  # type: ignore[arg-type]


def plan_grid(
    *,
    user: User,
    team: Team,
    period: FiscalPeriod,
    submitted: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
) -> PlanGrid:
    """Everything the planning page shows for ``team`` and ``period``. ``submitted`` and
    ``errors`` (after a refused save) put the typed text and its errors back into the cells.
    Raises PlanNotVisible when the user may not see the team's plan."""
    if not can_view_plan(user, team):
        raise PlanNotVisible("There is no such plan.")
    frame = plan_frame(team=team, period=period)
    plan = (
        QuotaPlan.objects.filter(team=team, period=period)
        .select_related("submitted_by", "approved_by", "locked_by")
        .first()
    )
    existing = plan_quotas_by_cell(frame)
    submitted, errors = submitted or {}, errors or {}
    previous = fiscal.previous(
        fiscal.parse_period(period.name, period.fiscal_start_month), period.fiscal_start_month
    )

    def make_row(key: str, label: str, kind: str, email: str = "") -> GridRow:
        cells = []
        for month in frame.months:
            quota = existing.get((key, month.pk))
            cell_key = f"{key}:{month.name}"
            amount = quota.amount if quota else None
            value = submitted.get(cell_key, "" if amount is None else f"{amount}")
            cells.append(
                GridCell(
                    key=cell_key,
                    month=month,
                    amount=amount,
                    currency=quota.currency if quota else settings.BASE_CURRENCY,
                    value=value,
                    errors=errors.get(cell_key, []),
                )
            )
        return GridRow(
            key=key,
            label=label,
            kind=kind,
            email=email,
            cells=cells,
            reference=_reference(user, key, previous.name),
        )

    rows = [make_row(f"r{r.pk}", str(r), "rep", r.email) for r in frame.reps]
    rows += [make_row(f"t{t.pk}", t.name, "child") for t in frame.child_teams]
    own = make_row(f"t{team.pk}", f"{team.name} (team target)", "own")
    status = plan.status if plan else QuotaPlan.Status.DRAFT
    may_plan = can_plan_team(user, team)
    return PlanGrid(
        frame=frame,
        plan=plan,
        rows=rows,
        own=own,
        previous_name=previous.name,
        can_edit=(status == QuotaPlan.Status.DRAFT and may_plan)
        or (status == QuotaPlan.Status.LOCKED and can_lock_plan(user)),
        can_submit=status == QuotaPlan.Status.DRAFT and may_plan,
        can_approve=status in (QuotaPlan.Status.SUBMITTED, QuotaPlan.Status.APPROVED)
        and can_approve_plan(user, team, submitted_by_id=plan.submitted_by_id if plan else None),
        can_lock=status == QuotaPlan.Status.APPROVED and can_lock_plan(user),
        history=plan_history(frame=frame, plan=plan),
        base_currency=settings.BASE_CURRENCY,
    )


def plan_history(
    *, frame: PlanFrame, plan: QuotaPlan | None, limit: int = 200
) -> list[QuotaChange]:
    """Audit entries of the plan's quotas and status, newest first."""
    rep_ids = [r.pk for r in frame.reps]
    team_ids = [t.pk for t in frame.child_teams] + [frame.team.pk]
    q = Q(month__in=frame.months) & (Q(rep_id__in=rep_ids) | Q(team_id__in=team_ids))
    if plan is not None:
        q |= Q(plan=plan)
    return list(
        QuotaChange.objects.filter(q)
        .select_related("changed_by", "rep", "team", "month", "plan__period")
        .order_by("-changed_at", "-id")[:limit]
    )


def plan_export_rows(grid: PlanGrid) -> tuple[list[str], list[list[object]]]:
    """Header and rows for the CSV/XLSX download of a plan, one line per row and month
    (the same columns the upload reads, plus labels)."""
    headers = ["rep_email", "team", "name", "month", "amount", "currency", "plan_status"]
    rows: list[list[object]] = []
    for row in [*grid.rows, grid.own]:
        for cell in row.cells:
            team_name = "" if row.kind == "rep" else row.label.removesuffix(" (team target)")
            rows.append(
                [
                    row.email if row.kind == "rep" else "",
                    team_name,
                    row.label,
                    cell.month.name,
                    cell.amount,
                    cell.currency,
                    grid.status,
                ]
            )
    return headers, rows


def my_quotas(*, user: User) -> QuerySet[Quota]:
    """A person's own monthly quotas, newest month first (a rep reads only these)."""
    return Quota.objects.filter(rep=user).select_related("period").order_by("-period__start_date")


def is_rep(user: User) -> bool:
    return user.role == Role.REP and not user.is_superuser
