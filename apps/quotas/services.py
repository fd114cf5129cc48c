"""Writes for fiscal periods and quotas."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import Action, audit_record
from apps.core.errors import ApplicationError
from apps.org.models import Role, Team, User
from apps.org.policy import (
    ancestor_ids,
    can_approve_plan,
    can_lock_plan,
    can_plan_team,
)
from apps.quotas import fiscal, planning
from apps.quotas.models import FiscalPeriod, Quota, QuotaChange, QuotaPlan


@transaction.atomic
def fiscal_periods_ensure(*, first_year: int, last_year: int) -> int:
    """Create the fiscal years, quarters and months from ``first_year`` to ``last_year``
    (fiscal years, inclusive) for the configured FISCAL_YEAR_START_MONTH. Idempotent;
    returns the number of periods created. Refuses to mix calendars: if periods built with
    another start month exist, that is an error to resolve by hand, never a silent mix."""
    if first_year > last_year:
        raise ApplicationError("first_year must not be after last_year")
    start_month = settings.FISCAL_YEAR_START_MONTH
    other = FiscalPeriod.objects.exclude(fiscal_start_month=start_month).first()
    if other is not None:
        raise ApplicationError(
            "Fiscal periods exist for another fiscal year start month "
            f"({other.fiscal_start_month}); FISCAL_YEAR_START_MONTH is now {start_month}."
        )
    existing = set(FiscalPeriod.objects.values_list("name", flat=True))
    new = [
        FiscalPeriod(
            name=p.name,
            kind=p.kind,
            fiscal_year=p.fiscal_year,
            number=p.number,
            start_date=p.start,
            end_date=p.end,
            fiscal_start_month=start_month,
        )
        for year in range(first_year, last_year + 1)
        for p in fiscal.periods_of_year(year, start_month)
        if p.name not in existing
    ]
    FiscalPeriod.objects.bulk_create(new)
    return len(new)


def fiscal_periods_ensure_around(*, day: date, years_back: int = 4, years_ahead: int = 2) -> int:
    fy = fiscal.fiscal_year_of(day, settings.FISCAL_YEAR_START_MONTH)
    return fiscal_periods_ensure(first_year=fy - years_back, last_year=fy + years_ahead)


class QuotaPermissionError(ApplicationError):
    """The user may not do this to this plan or quota (pages: 403)."""


class QuotaValidationError(ApplicationError):
    """Bad grid input. ``errors`` maps a cell key (``r<rep id>:<YYYY-MM>`` or
    ``t<team id>:<YYYY-MM>``) or ``__all__`` to its messages; nothing was written."""

    def __init__(self, message: str, *, errors: dict[str, list[str]]) -> None:
        super().__init__(message, extra={"errors": errors})
        self.errors = errors


class QuotaImportError(ApplicationError):
    """A bad CSV upload: ``lines`` lists every (line number, reason); nothing was written."""

    def __init__(self, message: str, *, lines: list[tuple[int, str]]) -> None:
        super().__init__(message, extra={"lines": lines})
        self.lines = lines


def _locked_plan_covering(*, team_id: int, month: FiscalPeriod) -> QuotaPlan | None:
    """A locked plan of ``team_id`` or a team above it whose period contains ``month``."""
    return (
        QuotaPlan.objects.filter(
            team_id__in=[team_id, *ancestor_ids(team_id)],
            status=QuotaPlan.Status.LOCKED,
            period__start_date__lte=month.start_date,
            period__end_date__gte=month.end_date,
        )
        .select_related("period", "team")
        .first()
    )


def _money_text(amount: Decimal | None) -> str:
    return "" if amount is None else f"{Decimal(amount).quantize(planning.CENT)}"


@transaction.atomic
def quota_set(
    *,
    period: FiscalPeriod,
    amount: Decimal,
    set_by: User | None,
    rep: User | None = None,
    team: Team | None = None,
    currency: str | None = None,
    note: str = "",
    reason: str = "",
    plan: QuotaPlan | None = None,
) -> Quota:
    """Create or replace the quota of one rep or one team for one fiscal month (amount in
    ``currency``, default BASE_CURRENCY). Every change of amount or currency is kept in
    the QuotaChange audit with ``reason``. A month inside a locked plan (of the quota's
    team or any team above it) changes only by an executive who gives a reason. Writing
    the same values again changes nothing and records nothing."""
    if (rep is None) == (team is None):
        raise ApplicationError("A quota is for exactly one rep or one team.")
    if period.kind != FiscalPeriod.Kind.MONTH:
        raise ApplicationError(
            f"Quotas are set per fiscal month; {period.name} is a {period.kind}."
        )
    try:
        amount = Decimal(amount)
    except (TypeError, InvalidOperation):
        raise ApplicationError("A quota must be a non-negative amount.") from None
    if not amount.is_finite() or amount < 0:
        raise ApplicationError("A quota must be a non-negative amount.")
    currency = (currency or settings.BASE_CURRENCY).upper()
    owner_team_id = team.pk if team is not None else (rep.team_id if rep is not None else None)
    if owner_team_id is not None:
        locked = _locked_plan_covering(team_id=owner_team_id, month=period)
        if locked is not None:
            if set_by is None or not can_lock_plan(set_by):
                raise QuotaPermissionError(
                    f"{period.name} is locked in the {locked.team} plan for {locked.period}; "
                    "only an executive may change it."
                )
            if not reason.strip():
                raise ApplicationError(
                    f"{period.name} is locked in the {locked.team} plan for "
                    f"{locked.period}: give a reason for the change."
                )
    existing = Quota.objects.select_for_update().filter(period=period, rep=rep, team=team).first()
    if existing is not None and (existing.amount, existing.currency, existing.note) == (
        amount.quantize(planning.CENT),
        currency,
        note,
    ):
        return existing
    now = timezone.now()
    old_amount = existing.amount if existing is not None else None
    old_currency = existing.currency if existing is not None else ""
    quota, _ = Quota.objects.update_or_create(
        period=period,
        rep=rep,
        team=team,
        defaults={
            "amount": amount,
            "currency": currency,
            "set_by": set_by,
            "set_at": now,
            "note": note,
        },
    )
    if old_amount != amount or old_currency != currency:
        QuotaChange.objects.create(
            plan=plan,
            quota=quota,
            month=period,
            rep=rep,
            team=team,
            field=QuotaChange.Field.AMOUNT,
            old_value=_money_text(old_amount)
            + (f" {old_currency}" if old_currency and old_currency != currency else ""),
            new_value=_money_text(amount),
            currency=currency,
            reason=reason.strip()[:500],
            changed_by=set_by,
            changed_at=now,
        )
        if plan is None:  # a plan's grid is audited once per save (quota_plan_save)
            whose = rep if rep is not None else team
            audit_record(
                action=Action.QUOTA_CHANGED,
                summary=f"Quota of {whose} for {period.name}: "
                f"{_money_text(old_amount) or 'none'} -> {_money_text(amount)} {currency}",
                actor=set_by,
                target=quota,
                detail={"reason": reason.strip()[:500]} if reason.strip() else None,
            )
    from apps.kpis.services import rollups_quota_changed

    # robust: the quota is committed by then; a failure to queue its rollup update is
    # logged (the nightly rebuild settles it), never answered as "nothing was changed".
    transaction.on_commit(lambda: rollups_quota_changed(month=period.start_date), robust=True)
    return quota


# --- Planning: which rows and months a plan covers -------------------------------------------
@dataclass(frozen=True)
class PlanFrame:
    """What a plan of ``team`` for ``period`` covers: its fiscal months (in order), the
    reps who are direct members of the team and the team's direct child teams (the rows),
    and the team itself (its own, top-down quota)."""

    team: Team
    period: FiscalPeriod
    months: tuple[FiscalPeriod, ...]
    reps: tuple[User, ...]
    child_teams: tuple[Team, ...]

    def row_keys(self) -> list[str]:
        return (
            [f"r{r.pk}" for r in self.reps]
            + [f"t{t.pk}" for t in self.child_teams]
            + [f"t{self.team.pk}"]
        )

    def month_by_name(self) -> dict[str, FiscalPeriod]:
        return {m.name: m for m in self.months}


def plan_frame(*, team: Team, period: FiscalPeriod) -> PlanFrame:
    """Resolve the rows and months of a plan (three queries). Raises ApplicationError when
    ``period`` is not a quarter or year or its months have not been generated."""
    if period.kind not in (FiscalPeriod.Kind.QUARTER, FiscalPeriod.Kind.YEAR):
        raise ApplicationError(f"Plan a fiscal quarter or year; {period.name} is a {period.kind}.")
    months = tuple(
        FiscalPeriod.objects.filter(
            kind=FiscalPeriod.Kind.MONTH,
            start_date__gte=period.start_date,
            end_date__lte=period.end_date,
        ).order_by("start_date")
    )
    expected = len(fiscal.months_in(_as_fiscal(period), period.fiscal_start_month))
    if len(months) != expected:
        raise ApplicationError(
            f"The fiscal months of {period.name} have not been generated; run "
            "fiscal_periods_ensure first."
        )
    reps = tuple(
        User.objects.filter(team=team, role=Role.REP, is_active=True).order_by(
            "first_name", "last_name", "username"
        )
    )
    child_teams = tuple(Team.objects.filter(parent=team, is_active=True).order_by("name"))
    return PlanFrame(team=team, period=period, months=months, reps=reps, child_teams=child_teams)


def _as_fiscal(period: FiscalPeriod) -> fiscal.Period:
    return fiscal.Period(
        start=period.start_date,
        end=period.end_date,
        kind=period.kind,  # type: ignore[arg-type]
        fiscal_year=period.fiscal_year,
        number=period.number,
        name=period.name,
    )


def _plan_for_update(*, team: Team, period: FiscalPeriod) -> QuotaPlan:
    """The plan row, created as a draft on first use, locked for this transaction."""
    overlapping = (
        QuotaPlan.objects.filter(
            team=team,
            period__start_date__lte=period.end_date,
            period__end_date__gte=period.start_date,
        )
        .exclude(period=period)
        .select_related("period")
        .first()
    )
    if overlapping is not None:
        raise ApplicationError(
            f"{team} already has a plan for {overlapping.period}, which overlaps "
            f"{period.name}; plan in that period instead."
        )
    QuotaPlan.objects.get_or_create(team=team, period=period)
    return (
        QuotaPlan.objects.select_for_update()
        .select_related("team", "period")
        .get(team=team, period=period)
    )


def _check_can_edit(plan: QuotaPlan, user: User, reason: str) -> None:
    if plan.status == QuotaPlan.Status.LOCKED:
        if not can_lock_plan(user):
            raise QuotaPermissionError("This plan is locked; only an executive may change it.")
        if not reason.strip():
            raise ApplicationError("This plan is locked: give a reason for the change.")
        return
    if not can_plan_team(user, plan.team):
        raise QuotaPermissionError("You may not edit this team's quotas.")
    if plan.status != QuotaPlan.Status.DRAFT:
        raise ApplicationError(
            f"This plan is {plan.get_status_display().lower()}; it changes only after it "
            "is sent back to draft."
        )


# --- Planning: writes -------------------------------------------------------------------------
def _parse_cells(
    frame: PlanFrame, values: Mapping[str, str], existing: dict[tuple[str, int], Quota]
) -> tuple[dict[tuple[str, FiscalPeriod], Decimal], dict[str, list[str]]]:
    rows = set(frame.row_keys())
    months = frame.month_by_name()
    parsed: dict[tuple[str, FiscalPeriod], Decimal] = {}
    errors: dict[str, list[str]] = {}
    for key, raw in values.items():
        row, _, month_name = key.partition(":")
        if row not in rows:
            errors.setdefault(key, []).append(
                f"{row!r} is not a rep or team of {frame.team} in this plan."
            )
            continue
        month = months.get(month_name)
        if month is None:
            errors.setdefault(key, []).append(
                f"{month_name!r} is not a fiscal month of {frame.period.name}."
            )
            continue
        try:
            amount = planning.parse_amount(raw)
        except planning.AmountError as exc:
            errors.setdefault(key, []).append(str(exc))
            continue
        if amount is None:
            if (row, month.pk) in existing:
                errors.setdefault(key, []).append(
                    "A quota is set here; enter 0 instead of leaving it empty."
                )
            continue
        parsed[(row, month)] = amount
    return parsed, errors


def plan_quotas_by_cell(frame: PlanFrame) -> dict[tuple[str, int], Quota]:
    rep_ids = [r.pk for r in frame.reps]
    team_ids = [t.pk for t in frame.child_teams] + [frame.team.pk]
    quotas = Quota.objects.filter(period__in=frame.months).filter(
        Q(rep_id__in=rep_ids) | Q(team_id__in=team_ids)
    )
    return {(f"r{q.rep_id}" if q.rep_id else f"t{q.team_id}", q.period_id): q for q in quotas}


@transaction.atomic
def quota_plan_save(
    *,
    team: Team,
    period: FiscalPeriod,
    user: User,
    values: Mapping[str, str],
    reason: str = "",
) -> int:
    """Save the grid of a plan: ``values`` maps ``r<rep id>:<YYYY-MM>`` (a rep's quota)
    or ``t<team id>:<YYYY-MM>`` (the team's own or a child team's quota) to the typed
    amount in BASE_CURRENCY. Every cell is validated first; on any error nothing is
    written and QuotaValidationError lists the errors by cell. Only changed cells are
    written (and audited). Returns the number of quotas written."""
    frame = plan_frame(team=team, period=period)
    plan = _plan_for_update(team=team, period=period)
    _check_can_edit(plan, user, reason)
    existing = plan_quotas_by_cell(frame)
    parsed, errors = _parse_cells(frame, values, existing)
    if errors:
        raise QuotaValidationError(
            f"{sum(len(v) for v in errors.values())} value(s) need fixing; nothing was saved.",
            errors=errors,
        )
    reps = {f"r{r.pk}": r for r in frame.reps}
    teams = {f"t{t.pk}": t for t in (*frame.child_teams, frame.team)}
    written = 0
    for (row, month), amount in parsed.items():
        current = existing.get((row, month.pk))
        if current is not None and current.amount == amount:
            continue
        quota_set(
            period=month,
            amount=amount,
            set_by=user,
            rep=reps.get(row),
            team=teams.get(row),
            currency=current.currency if current is not None else None,
            note=current.note if current is not None else "",
            reason=reason,
            plan=plan,
        )
        written += 1
    if written:
        audit_record(
            action=Action.QUOTA_CHANGED,
            summary=f"Saved the {team} plan for {period.name}: {written} quota(s) changed",
            actor=user,
            target=plan,
            detail={"reason": reason.strip()[:500]} if reason.strip() else None,
        )
    return written


def _record_status(plan: QuotaPlan, *, old: str, user: User, reason: str = "") -> None:
    QuotaChange.objects.create(
        plan=plan,
        team=plan.team,
        field=QuotaChange.Field.STATUS,
        old_value=old,
        new_value=plan.status,
        reason=reason.strip()[:500],
        changed_by=user,
        changed_at=timezone.now(),
    )
    audit_record(
        action=Action.QUOTA_PLAN,
        summary=f"{plan.team} plan for {plan.period}: {old} -> {plan.status}",
        actor=user,
        target=plan,
        detail={"reason": reason.strip()[:500]} if reason.strip() else None,
    )


def _plan_in_status(plan_id: int, *allowed: str, action: str) -> QuotaPlan:
    plan = QuotaPlan.objects.select_for_update().select_related("team", "period").get(pk=plan_id)
    if plan.status not in allowed:
        names = " or ".join(QuotaPlan.Status(s).label.lower() for s in allowed)
        raise ApplicationError(
            f"Only a {names} plan can be {action}; this one is {plan.get_status_display().lower()}."
        )
    return plan


@transaction.atomic
def quota_plan_submit(*, team: Team, period: FiscalPeriod, user: User) -> QuotaPlan:
    """Draft -> submitted, by someone who may plan the team (its manager, a manager above
    it, or an executive)."""
    plan_frame(team=team, period=period)
    plan = _plan_for_update(team=team, period=period)
    if not can_plan_team(user, plan.team):
        raise QuotaPermissionError("You may not submit this team's quotas.")
    plan = _plan_in_status(plan.pk, QuotaPlan.Status.DRAFT, action="submitted")
    plan.status = QuotaPlan.Status.SUBMITTED
    plan.submitted_by, plan.submitted_at = user, timezone.now()
    plan.save()
    _record_status(plan, old=QuotaPlan.Status.DRAFT, user=user)
    return plan


@transaction.atomic
def quota_plan_approve(*, plan: QuotaPlan, user: User) -> QuotaPlan:
    """Submitted -> approved, by an executive or a manager of a team above (never the
    submitter, never for a team the approver runs)."""
    plan = _plan_in_status(plan.pk, QuotaPlan.Status.SUBMITTED, action="approved")
    if not can_approve_plan(user, plan.team, submitted_by_id=plan.submitted_by_id):
        raise QuotaPermissionError(
            "You may not approve this plan: it needs an executive or the manager of a team "
            "above it, other than the person who submitted it."
        )
    plan.status = QuotaPlan.Status.APPROVED
    plan.approved_by, plan.approved_at = user, timezone.now()
    plan.save()
    _record_status(plan, old=QuotaPlan.Status.SUBMITTED, user=user)
    return plan


@transaction.atomic
def quota_plan_return(*, plan: QuotaPlan, user: User, reason: str) -> QuotaPlan:
    """Submitted or approved -> draft (sent back for changes), by someone who may approve
    it, with a reason the manager can read."""
    if not reason.strip():
        raise ApplicationError("Say why the plan goes back to draft.")
    plan = _plan_in_status(
        plan.pk, QuotaPlan.Status.SUBMITTED, QuotaPlan.Status.APPROVED, action="sent back"
    )
    if not can_approve_plan(user, plan.team, submitted_by_id=plan.submitted_by_id):
        raise QuotaPermissionError("You may not send this plan back.")
    old = plan.status
    plan.status = QuotaPlan.Status.DRAFT
    plan.submitted_by = plan.submitted_at = plan.approved_by = plan.approved_at = None
    plan.save()
    _record_status(plan, old=old, user=user, reason=reason)
    return plan


@transaction.atomic
def quota_plan_lock(*, plan: QuotaPlan, user: User) -> QuotaPlan:
    """Approved -> locked, by an executive. From then on only an executive changes its
    quotas, each change with a reason."""
    if not can_lock_plan(user):
        raise QuotaPermissionError("Only an executive may lock a plan.")
    plan = _plan_in_status(plan.pk, QuotaPlan.Status.APPROVED, action="locked")
    plan.status = QuotaPlan.Status.LOCKED
    plan.locked_by, plan.locked_at = user, timezone.now()
    plan.save()
    _record_status(plan, old=QuotaPlan.Status.APPROVED, user=user)
    return plan


def _previous_period(period: FiscalPeriod) -> FiscalPeriod:
    prev = fiscal.previous(_as_fiscal(period), period.fiscal_start_month)
    found = FiscalPeriod.objects.filter(name=prev.name).first()
    if found is None:
        raise ApplicationError(f"The previous period {prev.name} has not been generated.")
    return found


@transaction.atomic
def quota_plan_copy_previous(
    *,
    team: Team,
    period: FiscalPeriod,
    user: User,
    growth_pct: Decimal = Decimal(0),
    reason: str = "",
) -> int:
    """Copy every quota of the plan's rows from the previous period of the same kind,
    month by month (first month to first month ...), grown by ``growth_pct`` percent and
    rounded to cents. Saved like the grid (same checks, same audit). Returns the number
    of quotas written."""
    try:
        planning.check_growth(Decimal(growth_pct))
    except (planning.AmountError, InvalidOperation) as exc:
        raise QuotaValidationError(str(exc), errors={"growth": [str(exc)]}) from None
    frame = plan_frame(team=team, period=period)
    previous = _previous_period(period)
    before = plan_frame(team=team, period=previous)
    position = {m.pk: i for i, m in enumerate(before.months)}
    # Rows are taken from the current frame: a rep who left is not copied back in.
    before = PlanFrame(
        team=team,
        period=previous,
        months=before.months,
        reps=frame.reps,
        child_teams=frame.child_teams,
    )
    values: dict[str, str] = {}
    for (row, month_id), quota in plan_quotas_by_cell(before).items():
        target = frame.months[position[month_id]]
        values[f"{row}:{target.name}"] = str(planning.apply_growth(quota.amount, growth_pct))
    if not values:
        raise ApplicationError(f"There are no quotas in {previous.name} to copy.")
    return quota_plan_save(team=team, period=period, user=user, values=values, reason=reason)


@transaction.atomic
def quota_plan_spread(
    *,
    team: Team,
    period: FiscalPeriod,
    user: User,
    row: str,
    quarter: FiscalPeriod,
    amount: Decimal,
    method: str,
    reason: str = "",
) -> int:
    """Spread a quarterly ``amount`` (BASE_CURRENCY) over the quarter's months for one row
    (``r<rep id>`` or ``t<team id>``): ``even`` (equal shares, left-over cents to the first
    months) or ``seasonality`` (in proportion to the row's bookings in the same months a
    year earlier, from the KPI selectors). Saved like the grid. Returns quotas written."""
    frame = plan_frame(team=team, period=period)
    if row not in frame.row_keys():
        raise QuotaValidationError(
            "Pick a rep or team of this plan.", errors={"row": ["Not a row of this plan."]}
        )
    if (
        quarter.kind != FiscalPeriod.Kind.QUARTER
        or quarter.start_date < period.start_date
        or quarter.end_date > period.end_date
    ):
        raise QuotaValidationError(
            f"Pick a quarter of {period.name}.", errors={"quarter": ["Not a quarter of the plan."]}
        )
    months = [m for m in frame.months if quarter.start_date <= m.start_date <= quarter.end_date]
    if method == "even":
        shares = planning.split_even(amount, len(months))
    elif method == "seasonality":
        weights = _last_year_bookings(user=user, row=row, months=months)
        try:
            shares = planning.split_weighted(amount, weights)
        except ValueError:
            raise ApplicationError(
                "There were no bookings in the same months last year to weight by; spread "
                "evenly instead."
            ) from None
    else:
        raise QuotaValidationError(
            "Pick how to spread.", errors={"method": ["Choose even or seasonality."]}
        )
    values = {f"{row}:{m.name}": str(share) for m, share in zip(months, shares, strict=True)}
    return quota_plan_save(team=team, period=period, user=user, values=values, reason=reason)


def _last_year_bookings(*, user: User, row: str, months: list[FiscalPeriod]) -> list[Decimal]:
    """Bookings (BASE_CURRENCY) of the row's rep or team in each of ``months`` a year
    earlier, read from the KPI selectors (one call: a month's series covers 12 months)."""
    from apps.kpis.selectors import kpi_value

    last = months[-1]
    year_ago = date(last.start_date.year - 1, last.start_date.month, 1)
    row_id, is_rep = int(row[1:]), row.startswith("r")
    result = kpi_value(
        name="bookings",
        period=f"{year_ago:%Y-%m}",
        user=user,
        rep_id=row_id if is_rep else None,
        team_id=None if is_rep else row_id,
    )
    series = dict(result.series)
    wanted = [f"{m.start_date.year - 1:04d}-{m.start_date.month:02d}" for m in months]
    return [Decimal(series.get(name) or 0) for name in wanted]


# --- CSV upload ------------------------------------------------------------------------------
CSV_COLUMNS = ("rep_email", "team", "month", "amount")
MAX_UPLOAD_BYTES = 1_000_000


def quota_csv_parse(*, frame: PlanFrame, content: bytes) -> dict[str, str]:
    """Turn an uploaded CSV into grid values, or raise QuotaImportError listing every bad
    line. Columns (header row, any order, case-insensitive): ``rep_email`` (a rep of the
    team) or ``team`` (the team itself or a direct child team, by name; one of the two per
    line), ``month`` (YYYY-MM, a month of the plan) and ``amount`` (non-negative, at most
    two decimals; empty leaves the quota as it is)."""
    if len(content) > MAX_UPLOAD_BYTES:
        raise QuotaImportError(
            "The file is too large.", lines=[(0, f"The file is over {MAX_UPLOAD_BYTES} bytes.")]
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise QuotaImportError(
            "The file is not UTF-8 text.", lines=[(0, "Save the file as CSV (UTF-8).")]
        ) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise QuotaImportError("The file is empty.", lines=[(1, "The file has no header row.")])
    names = [h.strip().lower() for h in header]
    missing = [c for c in ("month", "amount") if c not in names]
    if "rep_email" not in names and "team" not in names:
        missing.insert(0, "rep_email or team")
    if missing:
        raise QuotaImportError(
            "The header is incomplete.",
            lines=[(1, f"Missing column(s): {', '.join(missing)}.")],
        )
    index = {name: i for i, name in enumerate(names)}
    reps = {r.email.strip().lower(): r for r in frame.reps if r.email}
    teams = {t.name.strip().lower(): t for t in (*frame.child_teams, frame.team)}
    months = frame.month_by_name()
    values: dict[str, str] = {}
    seen: dict[str, int] = {}
    errors: list[tuple[int, str]] = []
    for line_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue

        def cell(name: str, cells: list[str] = cells) -> str:
            i = index.get(name)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        email, team_name, month_name, raw = (
            cell("rep_email"),
            cell("team"),
            cell("month"),
            cell("amount"),
        )
        problems: list[str] = []
        row: str | None = None
        if email and team_name:
            problems.append("give rep_email or team, not both")
        elif email:
            rep = reps.get(email.lower())
            if rep is None:
                problems.append(f"{email} is not a rep of {frame.team}")
            else:
                row = f"r{rep.pk}"
        elif team_name:
            found = teams.get(team_name.lower())
            if found is None:
                problems.append(f"{team_name!r} is not {frame.team} or a team directly below it")
            else:
                row = f"t{found.pk}"
        else:
            problems.append("rep_email or team is required")
        month = months.get(month_name)
        if month is None:
            problems.append(
                f"month {month_name!r} is not a month of {frame.period.name} (use YYYY-MM)"
                if month_name
                else "month is required (YYYY-MM)"
            )
        try:
            amount = planning.parse_amount(raw)
        except planning.AmountError as exc:
            problems.append(f"amount: {exc}")
            amount = None
        if row is not None and month is not None:
            key = f"{row}:{month.name}"
            if key in seen:
                problems.append(f"duplicate of line {seen[key]}")
            else:
                seen[key] = line_no
                if amount is not None and not problems:
                    values[key] = str(amount)
        if problems:
            errors.append((line_no, "; ".join(problems)))
    if errors:
        raise QuotaImportError(
            f"{len(errors)} line(s) need fixing; nothing was saved.", lines=errors
        )
    if not values:
        raise QuotaImportError("The file has no amounts.", lines=[(0, "No line has an amount.")])
    return values


@transaction.atomic
def quota_plan_import_csv(
    *, team: Team, period: FiscalPeriod, user: User, content: bytes, reason: str = ""
) -> int:
    """Bulk upload: parse and check the whole file, then save it like the grid. All or
    nothing. Returns the number of quotas written."""
    frame = plan_frame(team=team, period=period)
    values = quota_csv_parse(frame=frame, content=content)
    return quota_plan_save(team=team, period=period, user=user, values=values, reason=reason)
