"""The Forecast page and its form posts; thin: parse, check, call selectors/services.

Filters are the dashboards' (period, team, rep, region, segment, product, deal type, in the
URL, parsed by :func:`apps.dashboards.query.query_parse`). A scope the viewer may not see
is a 404, as on the dashboards; bad input is a 400 showing the reason.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Count, F, Max, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.core.errors import ApplicationError
from apps.crm.models import ForecastCategory, Opportunity, OpportunityHistory
from apps.dashboards import formatting
from apps.dashboards.charts import figure_json
from apps.dashboards.query import PARAMS, DashboardQuery, query_parse
from apps.dashboards.selectors import pipeline_by_month_and_category
from apps.dashboards.views import filter_options  # the dashboards' filter bar, shared
from apps.forecasting import charts, selectors, services
from apps.forecasting.forms import CallForm, CategoryForm, ScenarioForm
from apps.forecasting.models import ForecastCall
from apps.forecasting.scopes import key_for, root_team_ids
from apps.kpis.models import CloseDateMove
from apps.kpis.selectors import KpiPermissionError, kpi_value, period_parse
from apps.org.models import Role, Team
from apps.org.policy import Scope, can_edit_crm, can_submit_forecast_call, scope_for

logger = logging.getLogger(__name__)
#: Shown when the engine fails unexpectedly: the rest of the page still works.
ENGINE_FAILED = "The forecast engine failed on this request; the error was logged."
PAGE_SIZE = 25
STALE_DAYS = 30
LOW_PROBABILITY = 0.5
OWN_PARAMS = frozenset({"page", "sort", "growth", "win", "heads", "months", "scenario"})
SORTS = {
    "value": "Expected value",
    "risk": "Risk first",
    "amount": "Amount",
    "close": "Close date",
}
OUTLOOK_CACHE_SECONDS = 60 * 60
OUTLOOK_CACHE_PREFIX = "forecasting:outlook:"
#: The largest primary key a row can have (64-bit).
MAX_PK = 2**63 - 1


def _split_params(params: QueryDict) -> QueryDict:
    """The dashboards' filter parameters; anything neither theirs nor this page's is an
    error (as on the dashboards)."""
    unknown = sorted(set(params) - set(PARAMS) - OWN_PARAMS)
    if unknown:
        raise ApplicationError(f"Unknown parameter {', '.join(unknown)}.")
    dash = QueryDict(mutable=True)
    for key in PARAMS:
        if key in params:
            dash.setlist(key, params.getlist(key))
    return dash


def _money(value: Any) -> str:
    return formatting.money(value, settings.BASE_CURRENCY)


@dataclass(frozen=True)
class Tile:
    label: str
    value: str
    extra: tuple[tuple[str, str], ...] = ()
    note: str = ""
    key: str = ""


def _call_team(query: DashboardQuery, roots: set[int]) -> Team | None:
    """The team whose calls belong to the scope: the team itself, or the company's root
    team for the company; a rep scope has no calls."""
    if query.scope.kind == "team":
        return Team.objects.filter(pk=query.scope.team_id).first()
    if query.scope.kind == "company" and roots:
        return Team.objects.filter(pk=min(roots)).first()
    return None


def _kpi(name: str, query: DashboardQuery, user, *, filters: bool = True) -> Any:
    return kpi_value(
        name=name,
        period=query.period,
        user=user,
        team_id=query.team_id,
        rep_id=query.rep_id,
        filters=query.filters if filters else None,
    ).value


def _has_filters(query: DashboardQuery) -> bool:
    return any(v is not None for v in query.filters.as_dict().values())


def _methods(query: DashboardQuery, scope_key: str) -> tuple[list[Any], bool, str]:
    """(forecasts, live, error): stored forecasts for the scope; with region/segment/
    product/deal-type filters they are computed now (stored ones are unfiltered)."""
    if not _has_filters(query):
        return selectors.forecast_values(scope_key=scope_key, period=query.period), False, ""
    try:
        api = services.engine_api()
        return (
            api.forecasts_compute(scope=query.scope, period=query.period, filters=query.filters),
            True,
            "",
        )
    except ApplicationError as exc:
        return [], True, exc.message
    except Exception:
        logger.exception("forecast engine failed for %s %s", scope_key, query.period.name)
        return [], True, ENGINE_FAILED


def _deal_rows(
    request: HttpRequest, query: DashboardQuery, sort: str, page_no: str, visible: Scope
) -> dict[str, Any]:
    """The open deals of the scope closing in the period with their stored ML probability
    and top factors (written by the forecast recompute; a deal not scored yet shows its
    stage probability, marked), risk flags, paged. Three queries whatever the size, and
    no engine call: scoring a large book takes longer than a request may."""
    rows = selectors.scored_open_deals(
        user=request.user, period=query.period, scope=query.scope, filters=query.filters
    )
    in_period = Q(deal__close_date__gte=query.period.start, deal__close_date__lte=query.period.end)
    pushes = dict(
        CloseDateMove.objects.filter(in_period, new_close__gt=F("old_close"))
        .values("deal_id")
        .annotate(n=Count("id"))
        .values_list("deal_id", "n")
    )
    last_change = dict(
        OpportunityHistory.objects.filter(
            opportunity__close_date__gte=query.period.start,
            opportunity__close_date__lte=query.period.end,
            opportunity__stage__outcome="open",
        )
        .values("opportunity_id")
        .annotate(at=Max("changed_at"))
        .values_list("opportunity_id", "at")
    )
    stale_before = timezone.now() - timedelta(days=STALE_DAYS)
    crm_editor = can_edit_crm(request.user)
    scored_at = None
    for row in rows:
        stage_p = float(row["stage__probability"]) / 100
        row["probability"] = row["score__probability"]
        row["scored"] = row["probability"] is not None
        row["stage_probability"] = stage_p
        row["factors"] = [(label, value) for label, value in (row["score__top_factors"] or [])[:3]]
        if row["scored"] and (scored_at is None or row["score__computed_at"] > scored_at[1]):
            scored_at = (row["score__as_of"], row["score__computed_at"])
        p = row["probability"] if row["probability"] is not None else stage_p
        base = row["base_amount"] if row["base_amount"] is not None else Decimal(0)
        row["expected_value"] = (Decimal(base) * Decimal(str(p))).quantize(Decimal("0.01"))
        row["pushes"] = pushes.get(row["id"], 0)
        changed = last_change.get(row["id"])
        row["stale"] = changed is not None and changed < stale_before
        row["low_commit"] = (
            row["forecast_category"] == ForecastCategory.COMMIT and p < LOW_PROBABILITY
        )
        row["risks"] = [
            text
            for flag, text in (
                (row["low_commit"], "Low probability in commit"),
                (row["pushes"] > 0, f"Pushed {row['pushes']}\u00d7"),
                (row["stale"], f"No change in {STALE_DAYS} days"),
            )
            if flag
        ]
        owner = row["owner_id"]
        # Mirrors apps.org.policy.deal_editable_fields (the service checks it again).
        row["editable"] = crm_editor or (
            (request.user.role == Role.MANAGER and visible.sees_user(owner))
            or (request.user.role == Role.REP and owner == request.user.pk)
        )
    keys = {
        "value": lambda r: (-r["expected_value"], r["id"]),
        "risk": lambda r: (-len(r["risks"]), -r["expected_value"], r["id"]),
        "amount": lambda r: (-(r["base_amount"] or 0), r["id"]),
        "close": lambda r: (r["close_date"], r["id"]),
    }
    rows.sort(key=keys[sort])
    page = Paginator(rows, PAGE_SIZE).get_page(page_no)
    unscored = sum(1 for r in rows if not r["scored"])
    return {
        "deals_page": page,
        "deals_unscored": unscored,
        "deals_scored": len(rows) - unscored,
        "deals_scored_as_of": scored_at[0] if scored_at else None,
        "deals_scored_at": scored_at[1] if scored_at else None,
    }


def _scenario_inputs(request: HttpRequest) -> tuple[ScenarioForm, Any]:
    """The what-if inputs from the URL (or a saved scenario's), validated."""
    data = {"growth": "0", "win": "0", "heads": "0", "months": "36"}
    scenario_id = (request.GET.get("scenario") or "").strip()
    if scenario_id:
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        if not re.fullmatch(r"[0-9]+", scenario_id):
            raise ApplicationError("scenario must be a numeric id.")
        # A number beyond the 64-bit key range names no scenario: the same 404 as a missing
        # one, without sending the database a value its column cannot hold.
        if len(scenario_id) > len(str(MAX_PK)) or int(scenario_id) > MAX_PK:
            raise Http404("No such scenario.")
        saved = selectors.scenario_get(user=request.user, scenario_id=int(scenario_id))
        if saved is None:
            raise Http404("No such scenario.")
        data = {
            "name": saved.name,
            "growth": str(saved.growth_pct),
            "win": str(saved.win_rate_delta_pts),
            "heads": str(saved.headcount_delta),
            "months": str(saved.months),
        }
    for key in ("growth", "win", "heads", "months"):
        if request.GET.get(key, "").strip():
            data[key] = request.GET[key].strip()
    form = ScenarioForm(data)
    return form, form.cleaned_data if form.is_valid() else None


def _outlook(query: DashboardQuery, inputs: dict[str, Any] | None) -> dict[str, Any]:
    if inputs is None:
        return {"outlook_error": "Fix the scenario inputs to see the outlook."}
    try:
        api = services.engine_api()
        scenario = api.ScenarioInputs(
            growth_pct=float(inputs["growth"]),
            win_rate_delta_pts=float(inputs["win"]),
            headcount_delta=int(inputs["heads"]),
        )
        raw = f"{key_for(query.scope)}|{inputs['months']}|{scenario}|{timezone.localdate()}"
        cache_key = OUTLOOK_CACHE_PREFIX + hashlib.sha256(raw.encode()).hexdigest()
        outlook = cache.get(cache_key)
        if outlook is None:
            outlook = api.outlook_compute(
                scope=query.scope, months=int(inputs["months"]), scenario=scenario
            )
            cache.set(cache_key, outlook, OUTLOOK_CACHE_SECONDS)
    except ApplicationError as exc:
        return {"outlook_error": exc.message}
    except Exception:
        logger.exception("forecast engine outlook failed")
        return {"outlook_error": ENGINE_FAILED}
    money = formatting.SYMBOLS.get(settings.BASE_CURRENCY, "")
    figure = charts.outlook(
        outlook.history,
        [charts.OutlookMonth(p.month, p.value, p.low, p.high, p.baseline) for p in outlook.points],
        title=f"Monthly bookings outlook · {query.scope.label}",
        money=money,
    )
    return {
        "outlook": outlook,
        "outlook_chart": figure_json(figure),
        "outlook_years": [
            {"name": name, "value": value, "baseline": base, "delta": value - base}
            for name, value, base in outlook.yearly
        ],
    }


def _page_context(
    request: HttpRequest,
    query: DashboardQuery,
    *,
    call_form: CallForm | None = None,
) -> dict[str, Any]:
    user = request.user
    visible = scope_for(user)
    roots = root_team_ids()
    scope_key = key_for(query.scope, roots=roots)
    money = formatting.SYMBOLS.get(settings.BASE_CURRENCY, "")
    methods, live, methods_error = _methods(query, scope_key)
    won = _kpi("bookings", query, user)
    quota = None if _has_filters(query) else _kpi("quota", query, user, filters=False)
    team = _call_team(query, roots)
    rollup = history = None
    can_submit = False
    if team is not None:
        rollup = selectors.call_rollup(team=team, period=query.period)
        history = list(
            selectors.call_history(user=user, team=team, period=query.period, visible=visible)
        )
        can_submit = (
            can_submit_forecast_call(user, team, visible=visible)
            and query.period.kind in ("quarter", "month")
            and query.period.end >= timezone.localdate()
        )
    latest = rollup.latest_call if rollup else None
    if can_submit and call_form is None:
        call_form = CallForm(
            initial={
                "team": team.pk,
                "period": query.period.name,
                "commit": latest.commit if latest else rollup.commit,
                "best_case": latest.best_case if latest else rollup.best_case,
            }
        )
    tiles = [
        Tile("Closed to date", _money(won), key="won"),
        Tile(
            "Quota",
            _money(quota),
            extra=(("Attainment", formatting.percent(won / quota if quota else None)),),
            key="quota",
        ),
    ]
    for m in methods:
        extra: list[tuple[str, str]] = []
        if m.p10 is not None and m.p90 is not None:
            extra.append(("P10\u2013P90", f"{_money(m.p10)} \u2013 {_money(m.p90)}"))
        if quota:
            extra.append(("vs quota", formatting.percent(m.expected / quota)))
        tiles.append(Tile(m.label, _money(m.expected), tuple(extra), key=m.method))
    if latest is not None:
        tiles.append(
            Tile(
                "Latest call",
                _money(latest.commit),
                (("Best case", _money(latest.best_case)), ("By", str(latest.submitted_by))),
                note=f"{latest.submitted_at:%d %b %Y %H:%M}",
                key="call",
            )
        )
    by_category = pipeline_by_month_and_category(
        period=query.period, scope=query.scope, filters=query.filters
    )
    categories = [
        {
            "key": c.value,
            "label": c.label,
            "deals": sum(m.deals for m in by_category.get(c.value, {}).values()),
            "amount": sum((m.amount for m in by_category.get(c.value, {}).values()), Decimal(0)),
        }
        for c in (
            ForecastCategory.COMMIT,
            ForecastCategory.BEST_CASE,
            ForecastCategory.PIPELINE,
            ForecastCategory.OMITTED,
        )
    ]
    chart = charts.forecast_vs_quota(
        [charts.MethodBar(m.method, m.label, m.expected, m.p10, m.p90) for m in methods],
        won_to_date=won,
        quota=quota,
        call_commit=latest.commit if latest else None,
        call_best_case=latest.best_case if latest else None,
        title=f"Forecast vs quota · {query.period.name}",
        money=money,
    )
    snaps = selectors.snapshot_history(scope_key=scope_key, period=query.period)
    labels = {m.method: m.label for m in methods}
    history_chart = None
    if history or snaps:
        history_chart = figure_json(
            charts.calls_history(
                [
                    charts.CallMark(c.submitted_at, c.commit, c.best_case)
                    for c in reversed(history or [])
                ],
                snapshots={
                    source: [
                        (query.period.start + timedelta(days=7 * (w - 1)), v) for w, v in points
                    ]
                    for source, points in snaps.items()
                    if not source.startswith("call_")
                },
                labels=labels,
                title="Calls and forecasts through the period",
                money=money,
            )
        )
    sort = request.GET.get("sort") or "value"
    if sort not in SORTS:
        raise ApplicationError(f"sort must be one of {', '.join(SORTS)}; got {sort!r}.")
    scenario_form, inputs = _scenario_inputs(request)
    computed_at = max((getattr(m, "computed_at", None) for m in methods if not live), default=None)
    return {
        "section": "forecast",
        "today": timezone.localdate(),
        "scope_key": scope_key,
        "tiles": tiles,
        "open_by_category": categories,
        "methods": methods,
        "methods_live": live,
        "methods_error": methods_error,
        "computed_at": computed_at,
        "forecast_chart": figure_json(chart) if methods else None,
        "history_chart": history_chart,
        "call_team": team,
        "rollup": rollup,
        "history": history,
        "can_submit": can_submit,
        "call_form": call_form,
        "accuracy": selectors.accuracy_rows(scope_key=scope_key),
        "accuracy_periods": selectors.accuracy_periods(scope_key=scope_key),
        **dict(
            zip(
                ("backtest", "backtest_periods"),
                selectors.backtest_rows(scope_key=scope_key),
                strict=True,
            )
        ),
        "sort": sort,
        "sorts": list(SORTS.items()),
        "categories": [(c.value, c.label) for c in services.SETTABLE_CATEGORIES],
        "scenario_form": scenario_form,
        "scenarios": list(selectors.scenarios_for(user=user)),
        **_deal_rows(request, query, sort, request.GET.get("page") or "1", visible),
        **_outlook(query, inputs),
    }


def _render(
    request: HttpRequest, *, call_form: CallForm | None = None, status: int = 200
) -> HttpResponse:
    context: dict[str, Any] = {"section": "forecast", "freshness": {"last_run": None}}
    try:
        query = query_parse(_split_params(request.GET), user=request.user)
        context.update(query=query, **_page_context(request, query, call_form=call_form))
        context["freshness"] = {"last_run": selectors.last_forecast_run()}
    except KpiPermissionError:
        raise Http404("No such view.") from None
    except ApplicationError as exc:
        context.update(error=exc.message, options=filter_options(request))
        return render(request, "forecasting/error.html", context, status=400)
    context["options"] = filter_options(request)
    context["raw"] = request.GET
    return render(request, "forecasting/index.html", context, status=status)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return _render(request)


def _back(team: Team, period_name: str, roots: set[int]) -> str:
    params = {"period": period_name}
    if team.pk not in roots:
        params["team"] = str(team.pk)
    return f"{reverse('forecasting:index')}?{urlencode(params)}#calls"


@require_POST
def call_submit(request: HttpRequest) -> HttpResponse:
    """Submit a call; on a bad form the page is shown again with the errors (400)."""
    form = CallForm(request.POST)
    if not form.is_valid():
        return _render(request, call_form=form, status=400)
    team = Team.objects.filter(pk=form.cleaned_data["team"]).first()
    if team is None or not scope_for(request.user).sees_team(team.pk):
        raise Http404("No such team.")
    if not can_submit_forecast_call(request.user, team):
        return HttpResponse("You may not submit a forecast call for this team.", status=403)
    try:
        period = period_parse(form.cleaned_data["period"])
        services.call_submit(
            user=request.user,
            team=team,
            period=period,
            commit=form.cleaned_data["commit"],
            best_case=form.cleaned_data["best_case"],
            comment=form.cleaned_data["comment"],
        )
    except ApplicationError as exc:
        form.add_error(
            exc.extra.get("field") if exc.extra.get("field") in form.fields else None, exc.message
        )
        return _render(request, call_form=form, status=400)
    return redirect(_back(team, period.name, root_team_ids()))


def _safe_next(raw: str) -> str:
    fallback = reverse("forecasting:index")
    return raw if raw.startswith(fallback) and "//" not in raw else fallback


@require_POST
def deal_category(request: HttpRequest, pk: int) -> HttpResponse:
    """Move an open deal to another forecast category (through the CRM service)."""
    deal = get_object_or_404(Opportunity.objects.select_related("stage"), pk=pk)
    if not scope_for(request.user).sees_user(deal.owner_id):
        raise Http404("No such deal.")
    form = CategoryForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Choose a forecast category.", status=400)
    try:
        services.deal_category_set(
            user=request.user, opportunity=deal, category=form.cleaned_data["category"]
        )
    except ApplicationError as exc:
        return HttpResponse(exc.message, status=403 if "may not" in exc.message else 400)
    return redirect(_safe_next(form.cleaned_data.get("next") or ""))


@require_POST
def scenario_save(request: HttpRequest) -> HttpResponse:
    form = ScenarioForm(request.POST)
    if not form.is_valid() or not form.cleaned_data.get("name"):
        return HttpResponse("Give the scenario a name and valid inputs.", status=400)
    try:
        scenario = services.scenario_save(
            user=request.user,
            name=form.cleaned_data["name"],
            growth_pct=form.cleaned_data["growth"],
            win_rate_delta_pts=form.cleaned_data["win"],
            headcount_delta=form.cleaned_data["heads"],
            months=form.cleaned_data["months"],
        )
    except ApplicationError as exc:
        return HttpResponse(exc.message, status=400)
    params = {"scenario": scenario.pk}
    nxt = request.POST.get("next") or ""
    base = _safe_next(nxt)
    sep = "&" if "?" in base else "?"
    return redirect(f"{base.split('#')[0]}{sep}{urlencode(params)}#outlook")


@require_POST
def scenario_delete(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        services.scenario_delete(user=request.user, scenario_id=pk)
    except ApplicationError:
        raise Http404("No such scenario.") from None
    return redirect(f"{reverse('forecasting:index')}#outlook")


# --- Read-only JSON ------------------------------------------------------------------------


def _json_query(request: HttpRequest) -> DashboardQuery:
    return query_parse(_split_params(request.GET), user=request.user)


def _json(handler):
    def view(request: HttpRequest) -> JsonResponse:
        try:
            return JsonResponse(handler(request, _json_query(request)))
        except KpiPermissionError:
            return JsonResponse({"detail": "Not found."}, status=404)
        except ApplicationError as exc:
            return JsonResponse({"detail": exc.message}, status=400)

    view.__name__ = handler.__name__
    view.__doc__ = handler.__doc__
    return require_GET(view)


def _d(value: Any) -> str | None:
    return None if value is None else str(value)


@_json
def api_forecasts(request: HttpRequest, query: DashboardQuery) -> dict[str, Any]:
    """Stored forecasts of the scope and period (unfiltered), with the latest call."""
    if _has_filters(query):
        raise ApplicationError(
            "Stored forecasts are per scope; drop the region/segment/product/deal type filters."
        )
    summary = selectors.forecast_latest(scope=query.scope, period=query.period)
    if summary is None:
        return {"period": query.period.name, "scope": query.scope.label, "methods": []}
    return {
        "period": summary.period_name,
        "scope": summary.scope_label,
        "computed_at": summary.computed_at.isoformat() if summary.computed_at else None,
        "currency": settings.BASE_CURRENCY,
        "methods": [
            {
                "method": m.method,
                "label": m.label,
                "expected": _d(m.expected),
                "won_to_date": _d(m.won_to_date),
                "p10": _d(m.p10),
                "p50": _d(m.p50),
                "p90": _d(m.p90),
                "open_deals": m.open_deals,
            }
            for m in summary.methods
        ],
        "call": {
            "commit": _d(summary.call_commit),
            "best_case": _d(summary.call_best_case),
            "submitted_at": summary.call_submitted_at.isoformat()
            if summary.call_submitted_at
            else None,
        },
    }


@_json
def api_calls(request: HttpRequest, query: DashboardQuery) -> dict[str, Any]:
    """Every call for the scope's team and period, newest first."""
    team = _call_team(query, root_team_ids())
    calls: list[ForecastCall] = []
    if team is not None:
        calls = list(selectors.call_history(user=request.user, team=team, period=query.period))
    return {
        "period": query.period.name,
        "team": team.name if team else None,
        "currency": settings.BASE_CURRENCY,
        "calls": [
            {
                "submitted_at": c.submitted_at.isoformat(),
                "submitted_by": str(c.submitted_by),
                "week": c.week,
                "commit": _d(c.commit),
                "best_case": _d(c.best_case),
                "rollup_commit": _d(c.rollup_commit),
                "rollup_best_case": _d(c.rollup_best_case),
                "comment": c.comment,
            }
            for c in calls
        ],
    }


@_json
def api_accuracy(request: HttpRequest, query: DashboardQuery) -> dict[str, Any]:
    """Accuracy of every method and call for the scope, over its scored closed periods."""
    key = key_for(query.scope)
    return {
        "scope": query.scope.label,
        "periods": selectors.accuracy_periods(scope_key=key),
        "sources": [
            {
                "source": r.source,
                "label": r.label,
                "scored": r.scored,
                "mape": _d(r.mape),
                "bias": _d(r.bias),
                "by_week": {str(w): _d(v) for w, v in r.by_week.items()},
            }
            for r in selectors.accuracy_rows(scope_key=key)
        ],
    }
