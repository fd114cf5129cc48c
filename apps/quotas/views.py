"""Quota planning pages. Thin: parse input, ask the policy (through the selectors and
services), call a service, render. Out of scope is a 404 (nothing leaks); in scope but not
allowed is a 403; bad input is shown on the page and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.errors import ApplicationError
from apps.core.exports import download_response
from apps.org.models import Team
from apps.org.policy import can_approve_plan, can_view_plan
from apps.quotas import fiscal, services
from apps.quotas.forms import CopyForm, ReturnForm, SaveForm, SpreadForm, UploadForm
from apps.quotas.models import FiscalPeriod, QuotaPlan
from apps.quotas.selectors import (
    PlanGrid,
    PlanNotVisible,
    is_rep,
    my_quotas,
    plan_export_rows,
    plan_grid,
    plan_period_get,
    plan_statuses,
    plannable_teams,
)

CELL_PREFIX = "cell-"


def _current_quarter_name() -> str:
    start_month = settings.FISCAL_YEAR_START_MONTH
    return fiscal.period_containing(timezone.localdate(), "quarter", start_month).name


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """Managers and executives: the teams they may plan, with each plan's status for the
    chosen period and the plans waiting for their approval. Reps: their own quotas."""
    user = request.user
    if is_rep(user):
        return render(request, "quotas/mine.html", {"quotas": my_quotas(user=user)[:36]})
    name = request.GET.get("period") or _current_quarter_name()
    period = plan_period_get(name)
    teams = list(plannable_teams(user=user))
    statuses = plan_statuses(teams=teams, period=period) if period else {}
    awaiting = [
        p
        for p in QuotaPlan.objects.filter(
            status=QuotaPlan.Status.SUBMITTED, team__in=teams
        ).select_related("team", "period", "submitted_by")
        if can_approve_plan(user, p.team, submitted_by_id=p.submitted_by_id)
    ]
    periods = FiscalPeriod.objects.filter(
        kind__in=[FiscalPeriod.Kind.QUARTER, FiscalPeriod.Kind.YEAR]
    ).order_by("start_date", "-end_date")
    return render(
        request,
        "quotas/index.html",
        {
            "period": period,
            "period_name": name,
            "periods": periods,
            "rows": [(team, statuses.get(team.pk)) for team in teams],
            "awaiting": awaiting,
        },
    )


def _plan_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Resolve ``team_id`` and ``period`` to objects the user may see (404 otherwise) and
    turn a refused permission into a 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, team_id: int, period: str, **kwargs: Any) -> HttpResponse:
        team = get_object_or_404(Team, pk=team_id)
        fiscal_period = plan_period_get(period)
        if fiscal_period is None or not can_view_plan(request.user, team):
            raise Http404("There is no such plan.")
        try:
            return view(request, team, fiscal_period, **kwargs)
        except services.QuotaPermissionError as exc:
            raise PermissionDenied(exc.message) from None
        except PlanNotVisible:
            raise Http404("There is no such plan.") from None
        except ApplicationError as exc:
            # Anything else a service refuses (e.g. months not generated): say so, change nothing.
            return render(
                request,
                "quotas/unavailable.html",
                {"team": team, "period": fiscal_period, "message": exc.message},
                status=400,
            )

    return wrapper


def _plan_url(team: Team, period: FiscalPeriod) -> str:
    return reverse("quotas:plan", args=[team.pk, period.name])


def _render_plan(
    request: HttpRequest,
    team: Team,
    period: FiscalPeriod,
    *,
    grid: PlanGrid | None = None,
    status: int = 200,
    forms: dict[str, Any] | None = None,
    upload_errors: list[tuple[int, str]] | None = None,
) -> HttpResponse:
    try:
        grid = grid or plan_grid(user=request.user, team=team, period=period)
    except PlanNotVisible:
        raise Http404("There is no such plan.") from None
    except ApplicationError as exc:
        return render(
            request,
            "quotas/unavailable.html",
            {"team": team, "period": period, "message": exc.message},
            status=400,
        )
    quarters = [
        p.name
        for p in FiscalPeriod.objects.filter(
            kind=FiscalPeriod.Kind.QUARTER,
            start_date__gte=period.start_date,
            end_date__lte=period.end_date,
        ).order_by("start_date")
    ]
    row_choices = [(row.key, row.label) for row in [*grid.rows, grid.own]]
    forms = forms or {}
    context = {
        "grid": grid,
        "team": team,
        "period": period,
        "save_form": forms.get("save") or SaveForm(),
        "copy_form": forms.get("copy") or CopyForm(),
        "spread_form": forms.get("spread") or SpreadForm(rows=row_choices, quarters=quarters),
        "upload_form": forms.get("upload") or UploadForm(),
        "return_form": forms.get("return") or ReturnForm(),
        "upload_errors": upload_errors or [],
        "locked_edit": grid.status == QuotaPlan.Status.LOCKED and grid.can_edit,
    }
    return render(request, "quotas/plan.html", context, status=status)


@require_http_methods(["GET", "POST"])
@_plan_view
def plan(request: HttpRequest, team: Team, period: FiscalPeriod) -> HttpResponse:
    """The planning grid; POST saves every cell at once (or nothing, with cell errors)."""
    if request.method == "GET":
        return _render_plan(request, team, period)
    form = SaveForm(request.POST)
    values = {
        key.removeprefix(CELL_PREFIX): value
        for key, value in request.POST.items()
        if key.startswith(CELL_PREFIX)
    }
    if not form.is_valid():
        return _render_plan(request, team, period, forms={"save": form}, status=400)
    try:
        written = services.quota_plan_save(
            team=team,
            period=period,
            user=request.user,
            values=values,
            reason=form.cleaned_data["reason"],
        )
    except services.QuotaValidationError as exc:
        grid = plan_grid(
            user=request.user, team=team, period=period, submitted=values, errors=exc.errors
        )
        messages.error(request, exc.message)
        return _render_plan(request, team, period, grid=grid, forms={"save": form}, status=400)
    except services.QuotaPermissionError:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return _render_plan(request, team, period, forms={"save": form}, status=400)
    messages.success(request, f"Saved {written} quota(s).")
    return redirect(_plan_url(team, period))


def _plan_action(
    request: HttpRequest, team: Team, period: FiscalPeriod, action: Callable[[], str]
) -> HttpResponse:
    try:
        messages.success(request, action())
    except services.QuotaPermissionError:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(_plan_url(team, period))


def _existing_plan(team: Team, period: FiscalPeriod) -> QuotaPlan:
    plan = QuotaPlan.objects.filter(team=team, period=period).first()
    if plan is None:
        raise ApplicationError("This plan has not been submitted yet.")
    return plan


@require_POST
@_plan_view
def plan_submit(request: HttpRequest, team: Team, period: FiscalPeriod) -> HttpResponse:
    def act() -> str:
        services.quota_plan_submit(team=team, period=period, user=request.user)
        return "Plan submitted for approval."

    return _plan_action(request, team, period, act)


@require_POST
@_plan_view
def plan_approve(request: HttpRequest, team: Team, period: FiscalPeriod) -> HttpResponse:
    def act() -> str:
        services.quota_plan_approve(plan=_existing_plan(team, period), user=request.user)
        return "Plan approved."

    return _plan_action(request, team, period, act)


@require_POST
@_plan_view
def plan_return(request: HttpRequest, team: Team, period: FiscalPeriod) -> HttpResponse:
    form = ReturnForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the plan goes back to draft.")
        return redirect(_plan_url(team, period))

    def act() -> str:
        services.quota_plan_return(
            plan=_existing_plan(team, period),
            user=request.user,
            reason=form.cleaned_data["reason"],
        )
        return "Plan sent back to draft."

    return _plan_action(request, team, period, act)


@require_POST
@_plan_view
def plan_lock(request: HttpRequest, team: Team, period: FiscalPeriod) -> HttpResponse:
    def act() -> str:
        services.quota_plan_lock(plan=_existing_plan(team, period), user=request.user)
        return "Plan locked."

    return _plan_action(request, team, period, act)


@require_POST
@_plan_view
def plan_copy(request: HttpRequest, team: Team, period: FiscalPeriod) -> HttpResponse:
    form = CopyForm(request.POST)
    if not form.is_valid():
        return _render_plan(request, team, period, forms={"copy": form}, status=400)

    def act() -> str:
        written = services.quota_plan_copy_previous(
            team=team,
            period=period,
            user=request.user,
            growth_pct=form.cleaned_data["growth_pct"] or Decimal(0),
            reason=form.cleaned_data["reason"],
        )
        return f"Copied from the previous period: {written} quota(s) written."

    return _plan_action(request, team, period, act)


@require_POST
@_plan_view
def plan_spread(request: HttpRequest, team: Team, period: FiscalPeriod) -> HttpResponse:
    grid = plan_grid(user=request.user, team=team, period=period)
    quarters = list(
        FiscalPeriod.objects.filter(
            kind=FiscalPeriod.Kind.QUARTER,
            start_date__gte=period.start_date,
            end_date__lte=period.end_date,
        ).order_by("start_date")
    )
    form = SpreadForm(
        request.POST,
        rows=[(row.key, row.label) for row in [*grid.rows, grid.own]],
        quarters=[q.name for q in quarters],
    )
    if not form.is_valid():
        return _render_plan(request, team, period, grid=grid, forms={"spread": form}, status=400)
    quarter = next(q for q in quarters if q.name == form.cleaned_data["quarter"])

    def act() -> str:
        written = services.quota_plan_spread(
            team=team,
            period=period,
            user=request.user,
            row=form.cleaned_data["row"],
            quarter=quarter,
            amount=form.cleaned_data["amount"],
            method=form.cleaned_data["method"],
            reason=form.cleaned_data["reason"],
        )
        return f"Spread over {quarter.name}: {written} quota(s) written."

    return _plan_action(request, team, period, act)


@require_POST
@_plan_view
def plan_upload(request: HttpRequest, team: Team, period: FiscalPeriod) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_plan(request, team, period, forms={"upload": form}, status=400)
    try:
        written = services.quota_plan_import_csv(
            team=team,
            period=period,
            user=request.user,
            content=form.cleaned_data["file"].read(services.MAX_UPLOAD_BYTES + 1),
            reason=form.cleaned_data["reason"],
        )
    except services.QuotaImportError as exc:
        messages.error(request, f"Upload refused: {exc.message}")
        return _render_plan(
            request, team, period, forms={"upload": form}, upload_errors=exc.lines, status=400
        )
    except services.QuotaValidationError as exc:
        lines = [(0, f"{key}: {'; '.join(errs)}") for key, errs in exc.errors.items()]
        messages.error(request, f"Upload refused: {exc.message}")
        return _render_plan(
            request, team, period, forms={"upload": form}, upload_errors=lines, status=400
        )
    except services.QuotaPermissionError:
        raise
    except ApplicationError as exc:
        messages.error(request, f"Upload refused: {exc.message}")
        return redirect(_plan_url(team, period))
    messages.success(request, f"Uploaded: {written} quota(s) written.")
    return redirect(_plan_url(team, period))


def _grid_or_404(request: HttpRequest, team: Team, period: FiscalPeriod) -> PlanGrid:
    try:
        return plan_grid(user=request.user, team=team, period=period)
    except ApplicationError as exc:
        raise Http404(exc.message) from None


@require_GET
@_plan_view
def plan_template(request: HttpRequest, team: Team, period: FiscalPeriod) -> HttpResponse:
    """The upload template: one line per row and month, filled with today's amounts."""
    grid = _grid_or_404(request, team, period)
    headers, rows = plan_export_rows(grid)
    keep = [headers.index(c) for c in services.CSV_COLUMNS]
    return download_response(
        filename=f"quotas-{team.pk}-{period.name}-template",
        file_format="csv",
        headers=list(services.CSV_COLUMNS),
        rows=[[row[i] for i in keep] for row in rows],
    )


@require_GET
@_plan_view
def plan_export(
    request: HttpRequest, team: Team, period: FiscalPeriod, file_format: str
) -> HttpResponse:
    if file_format not in ("csv", "xlsx"):
        raise Http404("Download as csv or xlsx.")
    grid = _grid_or_404(request, team, period)
    headers, rows = plan_export_rows(grid)
    return download_response(
        filename=f"quotas-{team.pk}-{period.name}",
        file_format=file_format,
        headers=headers,
        rows=rows,
        sheet=f"{period.name} quotas",
    )
