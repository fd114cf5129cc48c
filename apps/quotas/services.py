"""Writes for fiscal periods and quotas."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import Action, audit_event, audit_record, audit_record_many
from apps.core.errors import ApplicationError
from apps.org.models import Role, Team, User
from apps.org.policy import (
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
    the same values again changes nothing and records nothing.

    The rules live in :func:`quotas_set_bulk` (one definition for one quota and for
    many); a refusal is raised as the error itself (QuotaPermissionError or
    ApplicationError)."""
    item = QuotaInput(
        period=period, amount=amount, rep=rep, team=team, currency=currency, note=note
    )
    try:
        return quotas_set_bulk(items=[item], set_by=set_by, reason=reason, plan=plan)[0]
    except QuotaBulkError as exc:
        raise exc.errors[0][1] from None


@dataclass(frozen=True)
class QuotaInput:
    """One quota for :func:`quotas_set_bulk`: one rep **or** one team, one fiscal month,
    ``amount`` (non-negative, rounded to cents when stored) in ``currency`` (default
    BASE_CURRENCY), and a free-text ``note``."""

    period: FiscalPeriod
    amount: Decimal
    rep: User | None = None
    team: Team | None = None
    currency: str | None = None
    note: str = ""


class QuotaBulkError(ApplicationError):
    """Some quotas of a :func:`quotas_set_bulk` call were refused; nothing was written.
    ``errors`` lists every refusal as (position in the list, the error ``quota_set``
    raises for that quota alone: a QuotaPermissionError or an ApplicationError)."""

    def __init__(self, errors: list[tuple[int, ApplicationError]]) -> None:
        first = errors[0][1].message
        super().__init__(
            f"{len(errors)} quota(s) refused; nothing was saved. First: {first}",
            extra={"errors": [(i, e.message) for i, e in errors]},
        )
        self.errors = errors


def _input_error(item: QuotaInput) -> ApplicationError | None:
    """The refusal of one quota that needs no query (who, which period, what amount)."""
    if (item.rep is None) == (item.team is None):
        return ApplicationError("A quota is for exactly one rep or one team.")
    if item.period.kind != FiscalPeriod.Kind.MONTH:
        return ApplicationError(
            f"Quotas are set per fiscal month; {item.period.name} is a {item.period.kind}."
        )
    try:
        amount = Decimal(item.amount)
    except (TypeError, ValueError, InvalidOperation):
        return ApplicationError("A quota must be a non-negative amount.")
    if not amount.is_finite() or amount < 0:
        return ApplicationError("A quota must be a non-negative amount.")
    return None


def _locked_plan_refusal(
    locked: QuotaPlan, period: FiscalPeriod, set_by: User | None, reason: str
) -> ApplicationError | None:
    """A month inside a locked plan changes only by an executive who gives a reason."""
    if set_by is None or not can_lock_plan(set_by):
        return QuotaPermissionError(
            f"{period.name} is locked in the {locked.team} plan for {locked.period}; "
            "only an executive may change it."
        )
    if not reason.strip():
        return ApplicationError(
            f"{period.name} is locked in the {locked.team} plan for "
            f"{locked.period}: give a reason for the change."
        )
    return None


def _locked_plans_by_item(items: Sequence[QuotaInput]) -> list[QuotaPlan | None]:
    """For each quota, the locked plan covering its month (of its team or a team above
    it), the first by latest period, then team name:
    one query for the locked plans, one for the team tree only when there are some."""
    starts = [item.period.start_date for item in items]
    ends = [item.period.end_date for item in items]
    locked = list(
        QuotaPlan.objects.filter(
            status=QuotaPlan.Status.LOCKED,
            period__start_date__lte=max(ends),
            period__end_date__gte=min(starts),
        )
        .select_related("period", "team")
        .order_by("-period__start_date", "team__name", "pk")
    )
    if not locked:
        return [None] * len(items)
    parents = dict(Team.objects.values_list("id", "parent_id"))

    def lineage(team_id: int | None) -> set[int]:
        chain: set[int] = set()
        while team_id is not None and team_id not in chain:
            chain.add(team_id)
            team_id = parents.get(team_id)
        return chain

    found: list[QuotaPlan | None] = []
    for item in items:
        owner = item.team.pk if item.team is not None else (item.rep.team_id if item.rep else None)
        teams = lineage(owner) if owner is not None else set()
        found.append(
            next(
                (
                    plan
                    for plan in locked
                    if plan.team_id in teams
                    and plan.period.start_date <= item.period.start_date
                    and plan.period.end_date >= item.period.end_date
                ),
                None,
            )
        )
    return found


@transaction.atomic
def quotas_set_bulk(
    *,
    items: Sequence[QuotaInput],
    set_by: User | None,
    reason: str = "",
    plan: QuotaPlan | None = None,
) -> list[Quota]:
    """Create or replace many quotas at once, with exactly the rules of :func:`quota_set`
    (which is this function for one quota): one rep or one team per fiscal month, a
    non-negative amount, a month inside a locked plan (of the quota's team or any team
    above it) changed only by an executive who gives ``reason``; every change of amount or
    currency kept in the QuotaChange audit (and, outside a plan's grid, in the audit
    log); writing the same values again changes nothing and records nothing; the changed
    months queued for the KPI rollups after the commit.

    Every quota is checked before anything is written: if any is refused, QuotaBulkError
    lists every refusal by position and nothing is written. A rep or team may appear once
    per month in ``items``. Returns the quotas in the order of ``items``.

    A fixed number of queries whatever the number of quotas (on PostgreSQL; SQLite splits
    the bulk statements at its variable limit): the locked plans (and the team tree when
    there are any), the stored quotas (locked FOR UPDATE), one INSERT for new quotas, one
    UPDATE for changed ones, one INSERT each for their QuotaChange and audit rows.
    """
    items = list(items)
    if not items:
        return []
    errors: list[tuple[int, ApplicationError]] = []
    seen: dict[tuple[int, int | None, int | None], int] = {}
    for i, item in enumerate(items):
        error = _input_error(item)
        if error is None:
            key = (item.period.pk, getattr(item.rep, "pk", None), getattr(item.team, "pk", None))
            if key in seen:
                error = ApplicationError(
                    f"The quota of {item.rep or item.team} for {item.period.name} is given "
                    f"twice (first at position {seen[key] + 1})."
                )
            seen[key] = i
        if error is not None:
            errors.append((i, error))
    if errors:
        raise QuotaBulkError(errors)
    for i, (item, locked) in enumerate(zip(items, _locked_plans_by_item(items), strict=True)):
        if locked is not None:
            error = _locked_plan_refusal(locked, item.period, set_by, reason)
            if error is not None:
                errors.append((i, error))
    if errors:
        raise QuotaBulkError(errors)
    period_ids = {item.period.pk for item in items}
    rep_ids = {item.rep.pk for item in items if item.rep is not None}
    team_ids = {item.team.pk for item in items if item.team is not None}
    stored = {
        (q.period_id, q.rep_id, q.team_id): q
        for q in Quota.objects.select_for_update()
        .filter(period_id__in=period_ids)
        .filter(Q(rep_id__in=rep_ids) | Q(team_id__in=team_ids))
    }
    now = timezone.now()
    result: list[Quota] = []
    created: list[Quota] = []
    updated: list[Quota] = []
    # (quota, item, old amount, old currency) for each change of amount or currency
    changes: list[tuple[Quota, QuotaInput, Decimal | None, str]] = []
    months: set[date] = set()  # the months written, for the KPI rollups
    for item in items:
        amount = Decimal(item.amount)
        currency = (item.currency or settings.BASE_CURRENCY).upper()
        key = (item.period.pk, getattr(item.rep, "pk", None), getattr(item.team, "pk", None))
        quota = stored.get(key)
        if quota is not None and (quota.amount, quota.currency, quota.note) == (
            amount.quantize(planning.CENT),
            currency,
            item.note,
        ):
            result.append(quota)
            continue
        old_amount = quota.amount if quota is not None else None
        old_currency = quota.currency if quota is not None else ""
        if quota is None:
            quota = Quota(period=item.period, rep=item.rep, team=item.team)
            created.append(quota)
        else:
            updated.append(quota)
        months.add(item.period.start_date)
        quota.amount, quota.currency, quota.note = amount, currency, item.note
        quota.set_by, quota.set_at = set_by, now
        result.append(quota)
        if old_amount != amount or old_currency != currency:
            changes.append((quota, item, old_amount, old_currency))
    Quota.objects.bulk_create(created)
    Quota.objects.bulk_update(updated, ["amount", "currency", "set_by", "set_at", "note"])
    reason_text = reason.strip()[:500]
    QuotaChange.objects.bulk_create(
        [
            QuotaChange(
                plan=plan,
                quota=quota,
                month=item.period,
                rep=item.rep,
                team=item.team,
                field=QuotaChange.Field.AMOUNT,
                old_value=_money_text(old_amount)
                + (f" {old_currency}" if old_currency and old_currency != quota.currency else ""),
                new_value=_money_text(quota.amount),
                currency=quota.currency,
                reason=reason_text,
                changed_by=set_by,
                changed_at=now,
            )
            for quota, item, old_amount, old_currency in changes
        ]
    )
    if plan is None and changes:  # a plan's grid is audited once per save (quota_plan_save)
        audit_record_many(
            events=[
                audit_event(
                    action=Action.QUOTA_CHANGED,
                    actor=set_by,
                    target=quota,
                    summary=(
                        f"Quota of {item.rep if item.rep is not None else item.team} for "
                        f"{item.period.name}: {_money_text(old_amount) or 'none'} -> "
                        f"{_money_text(quota.amount)} {quota.currency}"
                    ),
                    detail={"reason": reason_text} if reason_text else None,
                )
                for quota, item, old_amount, _ in changes
            ]
        )
    if months:
        from apps.kpis.models import DirtyMonth
        from apps.kpis.services import rollups_mark_dirty

        # robust: the quotas are committed by then; a failure to queue their rollup
        # update is logged (the nightly rebuild settles it), never answered as "nothing
        # was changed".
        transaction.on_commit(
            lambda: rollups_mark_dirty(area=DirtyMonth.Area.QUOTAS, months=sorted(months)),
            robust=True,
        )
    return result


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
    changed: list[QuotaInput] = []
    for (row, month), amount in parsed.items():
        current = existing.get((row, month.pk))
        if current is not None and current.amount == amount:
            continue
        changed.append(
            QuotaInput(
                period=month,
                amount=amount,
                rep=reps.get(row),
                team=teams.get(row),
                currency=current.currency if current is not None else None,
                note=current.note if current is not None else "",
            )
        )
    if changed:
        # One bulk write for the whole grid (the same rules as quota_set, which is the
        # bulk service for one quota); a refusal is raised as quota_set would raise it.
        try:
            quotas_set_bulk(items=changed, set_by=user, reason=reason, plan=plan)
        except QuotaBulkError as exc:
            raise exc.errors[0][1] from None
    written = len(changed)
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
