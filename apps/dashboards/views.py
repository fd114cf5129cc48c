"""Dashboard pages: parse the filter state, call selectors, hand figures to templates.

Every page shares one frame (filter bar kept in the URL, data freshness, empty state).
A scope the viewer may not see is a 404, so an edited URL never reveals data; bad input
is a 400 that shows the reason in the page and changes nothing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import get_script_prefix, reverse
from django.utils import dateformat, timezone
from django.utils.html import conditional_escape
from django.utils.http import urlencode
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET

from apps.core.cache import redis_unavailable
from apps.core.errors import ApplicationError
from apps.core.exports import download_response
from apps.crm.models import DealType, ForecastCategory, Segment, Stage
from apps.dashboards import charts, formatting
from apps.dashboards.query import COMPARISONS, DashboardQuery, query_parse
from apps.dashboards.selectors import (
    SORTS,
    WATERFALL_STEPS,
    FrameState,
    NpsSplit,
    PipelineStepDeals,
    account_mrr,
    accounts_by_movement,
    aging_deals,
    attainment_band,
    attainment_bands,
    cohort_members,
    cohort_retention,
    drill_metric,
    drilldown_deals,
    drilldown_totals,
    frame_state,
    mrr_movements,
    nps_by_segment,
    nps_response_totals,
    nps_responses,
    pipeline_by_month_and_category,
    pipeline_by_stage,
    pipeline_changes,
    pipeline_step_deals,
    rep_attainment,
    rep_scorecards,
    slipped_moves,
)
from apps.kpis import calc
from apps.kpis.models import ClosedDealRollup, PipelineRollup
from apps.kpis.registry import kpi_get
from apps.kpis.selectors import (
    KpiFilters,
    KpiPermissionError,
    KpiResult,
    kpi_batch,
    kpi_value,
    period_parse,
    scope_resolve,
)
from apps.kpis.services import add_months
from apps.org.models import Role, Team, User
from apps.quotas import fiscal

PAGE_SIZE = 50


def _records_url(query: DashboardQuery, **overrides: object) -> str:
    return f"{reverse('dashboards:records')}?{query.querystring(**overrides)}"


def filter_options(request: HttpRequest, *, state: FrameState | None = None) -> dict[str, Any]:
    """Choices for the filter bar as (value, label) pairs, limited to what the viewer may
    see: teams indented under their parent team, active reps by name. From ``state`` (the
    frame's one query, :func:`frame_state`), which is read here when not given."""
    state = state or frame_state(user=request.user)
    children: dict[int | None, list[tuple[int, int | None, str]]] = defaultdict(list)
    visible = {pk for pk, _, _ in state.teams}
    for team in state.teams:  # by name, so siblings stay in name order
        children[team[1] if team[1] in visible else None].append(team)
    ordered: list[tuple[int, str]] = []

    def walk(parent_id: int | None, depth: int) -> None:
        for pk, _, name in children[parent_id]:
            ordered.append((pk, "\u2003" * min(depth, 20) + name))
            walk(pk, depth + 1)

    walk(None, 0)
    return {
        "teams": ordered,
        "reps": [(pk, f"{first} {last}") for pk, _, first, last in state.reps],
        "regions": list(state.regions),
        "products": list(state.products),
        "segments": Segment.choices,
        "deal_types": DealType.choices,
        "comparisons": list(COMPARISONS.items()),
        "periods": _period_suggestions(),
        "everything": state.everything,
    }


def _period_suggestions() -> list[str]:
    """Quick picks for the period field: this and last fiscal year, their quarters and
    the months of this year."""
    start_month = settings.FISCAL_YEAR_START_MONTH
    today = timezone.localdate()
    this_year = fiscal.period_containing(today, "year", start_month).fiscal_year
    names: list[str] = []
    for year in (this_year, this_year - 1):
        periods = fiscal.periods_of_year(year, start_month)
        names += [p.name for p in periods if p.kind in ("year", "quarter")]
    names += [p.name for p in fiscal.periods_of_year(this_year, start_month) if p.kind == "month"]
    return names


def freshness_text(finished_at: datetime | None) -> str:
    """The data freshness line: "Data as of 10:32, 4 minutes ago" (local time)."""
    if finished_at is None:
        return "No data refresh has run yet"
    at = dateformat.format(timezone.localtime(finished_at), "H:i")
    return f"Data as of {at}, {timesince(finished_at)} ago"


#: The parts of a dashboard page that belong to one request, filled in after rendering:
#: the CSRF token (a new mask each time), the data freshness ("4 minutes ago") and the
#: notices (messages, which are consumed when shown, and the stale-data notice).
SLOTS = ("csrf", "freshness", "notices")

#: A rendered page cut at its slots: the text between them and the slot of each gap,
#: ``(parts, slots)`` with ``len(parts) == len(slots) + 1``. Plain tuples of strings, so
#: a cached page never depends on a class that could change between deployments.
RenderedPage = tuple[tuple[str, ...], tuple[str, ...]]


def _render_page(request: HttpRequest, template: str, context: dict[str, Any]) -> RenderedPage:
    """Render ``template`` with a random marker in place of each slot, and cut it there.

    The marker holds 128 random bits and only letters and digits, so no text of a page
    (a team name, a deal name) can forge one, and HTML escaping leaves it intact."""
    nonce = secrets.token_hex(16)
    marks = {name: f"slot{nonce}{name}" for name in SLOTS}
    html = render_to_string(
        template,
        {
            **context,
            "csrf_token": marks["csrf"],
            "freshness_text": marks["freshness"],
            "notices_slot": marks["notices"],
        },
        request,
    )
    pieces = re.split(f"slot{nonce}({'|'.join(SLOTS)})", html)
    return tuple(pieces[0::2]), tuple(pieces[1::2])


def _is_rendered_page(found: object) -> bool:
    if not (isinstance(found, tuple) and len(found) == 2):
        return False
    parts, slots = found
    return (
        isinstance(parts, tuple)
        and isinstance(slots, tuple)
        and len(parts) == len(slots) + 1
        and all(isinstance(p, str) for p in parts)
        and all(s in SLOTS for s in slots)
    )


def _notices(request: HttpRequest) -> str:
    """The notices of this request (usually none: nothing is rendered then)."""
    stale = redis_unavailable()
    pending = messages.get_messages(request)
    if not stale and not len(pending):  # len() reads them without consuming them
        return ""
    return render_to_string("notices.html", {"stale_notice": stale, "messages": pending})


def _respond(request: HttpRequest, page: RenderedPage, state: FrameState) -> HttpResponse:
    """The page with this request's slots filled in."""
    parts, slots = page
    values = {
        "csrf": get_token(request),
        "freshness": str(conditional_escape(freshness_text(state.last_run_at))),
        "notices": _notices(request),
    }
    html = [parts[0]]
    for slot, part in zip(slots, parts[1:], strict=True):
        html += [values[slot], part]
    return HttpResponse("".join(html))


def _refused(
    request: HttpRequest, section: str, error: str, *, state: FrameState | None = None
) -> HttpResponse:
    """Bad input: a 400 that shows the reason in the frame and changes nothing."""
    state = state or frame_state(user=request.user)
    context = {
        "section": section,
        "error": error,
        "freshness_text": freshness_text(state.last_run_at),
        "options": filter_options(request, state=state),
    }
    return render(request, "dashboards/error.html", context, status=400)


def _frame(
    request: HttpRequest,
    template: str,
    section: str,
    build: Callable[[DashboardQuery], dict[str, Any]],
    *,
    body: str | None = None,
    cached: bool = False,
) -> HttpResponse:
    """Render a dashboard page inside the shared frame; ``build`` returns the page's own
    context for the parsed filter state.

    With ``body`` (the page's fragment template) the page's own part is rendered apart
    from the frame, from that context alone. With ``cached`` the whole rendered page is
    kept under :func:`page_cache_key`, cut at the parts of one request (:data:`SLOTS`),
    so a hit renders no template at all: it fills the slots in and answers. Its cost is
    one query for the frame (:func:`frame_state`), the viewer's scope check (before any
    cache lookup; the visibility policy's own queries for a manager) and one cache
    read."""
    state = frame_state(user=request.user)
    try:
        query = query_parse(request.GET, user=request.user, teams=state.org_teams)
    except KpiPermissionError:
        # Out of scope: the same answer as a scope that does not exist.
        raise Http404("No such view.") from None
    except ApplicationError as exc:
        return _refused(request, section, exc.message, state=state)
    key = None
    if cached and body is not None:
        key = page_cache_key(page=body, request=request, query=query, state=state)
        found = cache.get(key)
        if _is_rendered_page(found):
            return _respond(request, found, state)
    try:
        built = _built(query, build, body)
    except KpiPermissionError:
        raise Http404("No such view.") from None
    except ApplicationError as exc:
        return _refused(request, section, exc.message, state=state)
    context = {
        "section": section,
        "query": query,
        **built,
        "options": filter_options(request, state=state),
        "raw": request.GET,
    }
    page = _render_page(request, template, context)
    if key is not None:
        cache.set(key, page, PAGE_CACHE_SECONDS)
    return _respond(request, page, state)


#: How long a built dashboard page is kept at most; a finished rollup run (a new data
#: version) replaces it sooner.
PAGE_CACHE_SECONDS = 10 * 60

#: The few values of a page's own context that the frame reads too (the title and the
#: page's hidden filter fields); everything else is used by the body fragment only.
FRAME_VALUES = ("since", "today", "step", "step_label", "band")


def page_cache_key(
    *, page: str, request: HttpRequest, query: DashboardQuery, state: FrameState
) -> str:
    """Everything a rendered page depends on but the slots: the page (its fragment
    template and path); the viewer and what the frame shows of them (name, role and
    flags: the user menu and the navigation); the scope they resolved to (a manager's
    team subtree changes with the org chart, not with the data) and its label; the
    choices of their filter bar (:attr:`FrameState.org_version`); the day (relative
    periods and ages); the data version (the last finished rollup run); every URL
    parameter; and the deployment (base currency, fiscal calendar, static file names)."""
    user = request.user
    owners = query.scope.owner_ids
    raw = "|".join(
        [
            page,
            get_script_prefix(),
            request.path,
            str(user.pk),
            user.get_username(),
            user.get_full_name(),
            str(getattr(user, "role", "")),
            f"{user.is_active}{user.is_staff}{user.is_superuser}",
            "all" if owners is None else ",".join(map(str, sorted(owners))),
            query.scope.label,
            state.org_version,
            timezone.localdate().isoformat(),
            state.data_version,
            urlencode(sorted(request.GET.lists()), doseq=True),
            settings.BASE_CURRENCY,
            str(settings.FISCAL_YEAR_START_MONTH),
            settings.TIME_ZONE,
            static("css/app.css"),
            static("js/charts.js"),
            static(charts.TEMPLATE_SCRIPT),
            static("vendor/plotly/plotly.min.js"),
        ]
    )
    return "dashboards:page:" + hashlib.sha256(raw.encode()).hexdigest()


def _built(
    query: DashboardQuery,
    build: Callable[[DashboardQuery], dict[str, Any]],
    body: str | None,
) -> dict[str, Any]:
    """The page's own context, or with ``body`` its rendered fragment (``body``) and the
    :data:`FRAME_VALUES` it has. The fragment is rendered without the request, so it
    cannot hold anything of one request (CSRF token, messages, freshness)."""
    with kpi_batch():  # the page's KPIs share their rollup reads
        context = build(query)
    if body is None:
        return context
    page = {k: context[k] for k in FRAME_VALUES if k in context}
    page["body"] = render_to_string(body, {**context, "query": query})
    return page


def _page_or_csv(
    request: HttpRequest,
    template: str,
    section: str,
    build: Callable[[DashboardQuery], dict[str, Any]],
    csv: Callable[[HttpRequest], HttpResponse],
    *,
    body: str | None = None,
    cached: bool = False,
) -> HttpResponse:
    """A drill-down list: ``?format=csv`` downloads it (an out-of-scope request is a 404,
    any other refused parameter falls through to the page, which shows the reason with a
    400), any other format is a 400, no format renders the page."""
    file_format = request.GET.get("format") or ""
    if file_format == "csv":
        try:
            return csv(request)
        except KpiPermissionError:
            raise Http404("No such view.") from None
        except ApplicationError:
            pass
    elif file_format:
        return _bad_format(request)
    return _frame(request, template, section, build, body=body, cached=cached)


# --- Overview --------------------------------------------------------------------------

TILES: tuple[tuple[str, str | None], ...] = (
    ("bookings", "bookings"),
    ("pipeline_coverage", "open_pipeline"),
    ("win_rate", "closed_deals"),
    ("avg_deal_size", "won_deals"),
    ("sales_cycle_mean", "won_deals"),
    ("new_logos", "new_logos"),
    ("nrr", None),
    ("grr", None),
    ("nps", None),
    ("clv", None),
)


@dataclass
class Tile:
    name: str
    label: str
    unit: str
    definition: str
    value: str
    change: str = formatting.EM_DASH
    tone: str = "flat"
    spark: dict[str, Any] | None = None
    url: str | None = None
    note: str = ""
    extra: list[tuple[str, str]] = field(default_factory=list)

    @property
    def spark_id(self) -> str:
        return f"spark-{self.name}"


def _tile(query: DashboardQuery, result: KpiResult, drill: str | None) -> Tile:
    kpi = result.kpi
    currency = settings.BASE_CURRENCY
    before = result.previous if query.compare == "previous" else result.year_ago
    change, tone = formatting.change(result.value, before, kpi.unit, kpi.direction)
    values = [v for _, v in result.series]
    trend_tone = "neutral"
    if len(values) >= 2 and values[-1] is not None and values[-2] is not None:
        _, trend_tone = formatting.change(values[-1], values[-2], kpi.unit, kpi.direction)
        trend_tone = {"flat": "neutral"}.get(trend_tone, trend_tone)
    return Tile(
        name=kpi.name,
        label=kpi.label,
        unit=kpi.unit,
        definition=kpi.definition,
        value=formatting.kpi_display(result.value, kpi.unit, currency),
        change=change,
        tone=tone,
        spark=charts.figure_json(charts.sparkline(values, tone=trend_tone)),
        url=_records_url(query, metric=drill) if drill else None,
    )


def _overview(user) -> Callable[[DashboardQuery], dict[str, Any]]:
    def build(query: DashboardQuery) -> dict[str, Any]:
        tiles: list[Tile] = []
        scope_args = {"scope": query.scope}
        for name, drill in TILES:
            kpi = kpi_get(name)
            if kpi.family == "customers":
                if query.scope.kind != "company":
                    tiles.append(
                        Tile(
                            name,
                            kpi.label,
                            kpi.unit,
                            kpi.definition,
                            formatting.EM_DASH,
                            note="Company-wide only",
                        )
                    )
                    continue
                filters = query.customer_filters
            else:
                filters = query.filters
            unsupported = _unsupported_filters(kpi, filters)
            if unsupported:
                tiles.append(
                    Tile(
                        name,
                        kpi.label,
                        kpi.unit,
                        kpi.definition,
                        formatting.EM_DASH,
                        note=f"Not available filtered by {unsupported}",
                    )
                )
                continue
            result = kpi_value(
                name=name, period=query.period, user=user, filters=filters, **scope_args
            )
            tile = _tile(query, result, drill)
            if kpi.family == "customers" and (query.filters.product or query.filters.deal_type):
                tile.note = "Region and segment filters only"
            tiles.append(tile)
            if name == "bookings" and not _unsupported_filters(kpi_get("quota"), filters):
                attainment = kpi_value(
                    name="attainment", period=query.period, user=user, **scope_args
                )
                quota = kpi_value(name="quota", period=query.period, user=user, **scope_args)
                tile.extra = [
                    ("Quota", formatting.money(quota.value, settings.BASE_CURRENCY)),
                    ("Attainment", formatting.percent(attainment.value)),
                ]
        return {
            "tiles": tiles,
            "has_data": ClosedDealRollup.objects.exists() or PipelineRollup.objects.exists(),
            "bookings_chart": _bookings_chart(query, user),
            "attainment_chart": _attainment_chart(query, user),
            "compare_label": COMPARISONS[query.compare],
        }

    return build


def _unsupported_filters(kpi, filters) -> str:
    """The active filters ``kpi`` cannot be sliced by, as text ('' when all are fine): a
    figure ignoring a filter must not be shown under it."""
    names = [k for k, v in filters.as_dict().items() if v is not None and k not in kpi.filters]
    return ", ".join(n.replace("_", " ") for n in names)


def _month_range(query: DashboardQuery):
    return period_parse(f"{query.period.start.isoformat()}..{query.period.end.isoformat()}")


def _bookings_chart(query: DashboardQuery, user) -> dict[str, Any]:
    months = _month_range(query)
    scope_args = {"scope": query.scope}
    bookings = kpi_value(
        name="bookings", period=months, user=user, filters=query.filters, **scope_args
    )
    quota_by_name: dict[str, object] = {}
    if not _unsupported_filters(kpi_get("quota"), query.filters):
        quota = kpi_value(name="quota", period=months, user=user, **scope_args)
        quota_by_name = dict(quota.series)
    points = []
    for name, value in bookings.series:
        month = period_parse(name)
        points.append(
            charts.MonthPoint(
                label=month.start.strftime("%b %Y"),
                bookings=value,
                quota=quota_by_name.get(name),
                url=_records_url(query, metric="bookings", period=name),
            )
        )
    symbol = formatting.SYMBOLS.get(settings.BASE_CURRENCY, "")
    fig = charts.bookings_against_quota(
        points, title=f"Bookings by month against quota · {query.scope.label}", money=symbol
    )
    return charts.figure_json(fig)


def _attainment_rows(query: DashboardQuery) -> list[tuple[str, dict[str, int]]]:
    """What the attainment chart compares: the teams directly below the scope, or the reps
    of a team without sub-teams, or the rep alone."""
    scope = query.scope
    if scope.kind == "rep":
        return [(scope.label, {"rep_id": scope.rep_id})]
    if scope.kind == "company":
        children = Team.objects.filter(parent__parent__isnull=True, parent__isnull=False)
    else:
        children = Team.objects.filter(parent_id=scope.team_id)
    rows = [(t.name, {"team_id": t.pk}) for t in children.order_by("name")]
    if rows or scope.kind == "company":
        return rows
    reps = User.objects.filter(team_id=scope.team_id, role=Role.REP, is_active=True)
    return [
        (u.get_full_name() or u.username, {"rep_id": u.pk})
        for u in reps.order_by("first_name", "last_name")
    ]


def _attainment_chart(query: DashboardQuery, user) -> dict[str, Any] | None:
    if _unsupported_filters(kpi_get("attainment"), query.filters):
        return None
    bars = []
    for label, scope_args in _attainment_rows(query):
        result = kpi_value(name="attainment", period=query.period, user=user, **scope_args)
        bars.append(
            charts.AttainmentBar(
                label=label,
                attainment=result.value,
                url=_records_url(
                    query,
                    metric="bookings",
                    team=scope_args.get("team_id"),
                    rep=scope_args.get("rep_id"),
                ),
            )
        )
    if not any(b.attainment is not None for b in bars):
        return None
    fig = charts.attainment_bars(bars, title=f"Quota attainment · {query.period.name}")
    return charts.figure_json(fig)


@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    return _frame(
        request,
        "dashboards/overview.html",
        "overview",
        _overview(request.user),
        body="dashboards/overview_body.html",
        cached=True,
    )


# --- Drill-down list -------------------------------------------------------------------

COLUMNS = (
    ("name", "Deal"),
    ("account", "Account"),
    ("owner", "Owner"),
    ("stage", "Stage"),
    (None, "Forecast category"),
    ("created", "Created"),
    ("close", "Close date"),
    (None, "Amount"),
    ("amount", "Amount (base)"),
)


def _int_or_none(raw: str | None, name: str) -> int | None:
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApplicationError(f"{name} must be a numeric id, got {raw!r}.") from None


@require_GET
def records(request: HttpRequest) -> HttpResponse:
    """The deals behind a figure: paginated, sortable, exportable; the total row adds up to
    the figure that was clicked."""

    def build(query: DashboardQuery) -> dict[str, Any]:
        metric = drill_metric(request.GET.get("metric") or "bookings")
        category = request.GET.get("category") or None
        stage_id = _int_or_none(request.GET.get("stage"), "stage")
        sort = request.GET.get("sort") or "-amount"
        if sort.lstrip("-") not in SORTS:
            raise ApplicationError(
                f"sort must be one of {', '.join(sorted(SORTS))} (prefix - for descending)."
            )
        field_name = SORTS[sort.lstrip("-")]
        order = [f"-{field_name}" if sort.startswith("-") else field_name, "id"]
        deals = drilldown_deals(
            user=request.user,
            metric=metric.key,
            period=query.period,
            scope=query.scope,
            filters=query.filters,
            stage_id=stage_id,
            forecast_category=category,
        ).order_by(*order)
        totals = drilldown_totals(deals)
        page = Paginator(deals, PAGE_SIZE).get_page(request.GET.get("page"))
        extra = {"metric": metric.key, "category": category, "stage": stage_id}
        headers = []
        for key, label in COLUMNS:
            if key is None:
                headers.append({"label": label})
                continue
            next_sort = key if sort != key else f"-{key}"
            headers.append(
                {
                    "label": label,
                    "url": "?" + query.querystring(**extra, sort=next_sort),
                    "active": sort.lstrip("-") == key,
                    "descending": sort.startswith("-"),
                }
            )
        stage_name = (
            Stage.objects.filter(pk=stage_id).values_list("name", flat=True).first()
            if stage_id
            else None
        )
        return {
            "metric": metric,
            "deals": deals,
            "page": page,
            "totals": totals,
            "headers": headers,
            "category_label": ForecastCategory(category).label if category else None,
            "stage_name": stage_name,
            "page_query": query.querystring(**extra, sort=sort),
            "csv_url": "?" + query.querystring(**extra, sort=sort, format="csv"),
            "base_currency": settings.BASE_CURRENCY,
        }

    return _page_or_csv(request, "dashboards/records.html", "records", build, _records_csv)


def _bad_format(request: HttpRequest) -> HttpResponse:
    return _refused(request, "", "format must be csv.")


def _records_csv(request: HttpRequest) -> HttpResponse:
    query = query_parse(request.GET, user=request.user)
    sort = request.GET.get("sort") or "-amount"
    field_name = SORTS[sort.lstrip("-")]
    deals = drilldown_deals(
        user=request.user,
        metric=request.GET.get("metric") or "bookings",
        period=query.period,
        scope=query.scope,
        filters=query.filters,
        stage_id=_int_or_none(request.GET.get("stage"), "stage"),
        forecast_category=request.GET.get("category") or None,
    ).order_by(f"-{field_name}" if sort.startswith("-") else field_name, "id")
    base = settings.BASE_CURRENCY
    rows = (
        (
            d.external_id,
            d.name,
            d.account.name,
            d.owner.get_full_name() or d.owner.username,
            d.stage.name,
            d.get_forecast_category_display(),
            d.get_deal_type_display(),
            d.created_date,
            d.close_date,
            d.amount,
            d.currency,
            Decimal(str(d.base_amount)).quantize(Decimal("0.01")),
        )
        for d in deals.iterator(chunk_size=2000)
    )
    return download_response(
        filename=f"{request.GET.get('metric') or 'bookings'}-{query.period.name}".replace(
            "..", "_"
        ),
        file_format="csv",
        headers=[
            "External id",
            "Deal",
            "Account",
            "Owner",
            "Stage",
            "Forecast category",
            "Deal type",
            "Created",
            "Close date",
            "Amount",
            "Currency",
            f"Amount ({base})",
        ],
        rows=rows,
    )


# --- Pipeline --------------------------------------------------------------------------

CATEGORY_ORDER = (
    ForecastCategory.COMMIT,
    ForecastCategory.BEST_CASE,
    ForecastCategory.PIPELINE,
    ForecastCategory.OMITTED,
)


def _since(raw: str | None) -> datetime:
    """The comparison moment of the pipeline waterfall: the start of the given day, by
    default 30 days ago (in the configured time zone)."""
    today = timezone.localdate()
    if raw:
        try:
            day = date.fromisoformat(raw.strip())
        except ValueError:
            raise ApplicationError(f"since must be a date YYYY-MM-DD, got {raw!r}.") from None
        if day > today:
            raise ApplicationError("since must not be in the future.")
    else:
        day = today - timedelta(days=30)
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def _pipeline(request: HttpRequest) -> Callable[[DashboardQuery], dict[str, Any]]:
    user = request.user

    def build(query: DashboardQuery) -> dict[str, Any]:
        since = _since(request.GET.get("since"))
        symbol = formatting.SYMBOLS.get(settings.BASE_CURRENCY, "")
        scope_args = {"scope": query.scope}
        stages = pipeline_by_stage(period=query.period, scope=query.scope, filters=query.filters)
        funnel = []
        for s in stages:
            conversion = kpi_value(
                name="stage_conversion",
                period=query.period,
                user=user,
                filters=query.filters,
                stage_id=s.stage_id,
                **scope_args,
            ).value
            funnel.append(
                charts.FunnelStage(
                    s.name,
                    s.deals,
                    s.amount,
                    conversion,
                    _records_url(query, metric="open_pipeline", stage=s.stage_id),
                )
            )
        by_category = pipeline_by_month_and_category(
            period=query.period, scope=query.scope, filters=query.filters
        )
        months = _month_range(query)
        series = {}
        for category in CATEGORY_ORDER:
            found = by_category.get(category, {})
            series[category] = [
                charts.StackSegment(
                    m.strftime("%b %Y"),
                    found[m].amount if m in found else None,
                    _records_url(
                        query,
                        metric="open_pipeline",
                        category=category,
                        period=period_parse(f"{m}..{add_months(m, 1) - timedelta(days=1)}").name,
                    ),
                )
                for m in months.months
            ]
        changes = pipeline_changes(
            user=user, period=query.period, scope=query.scope, filters=query.filters, since=since
        )
        step_labels = dict(WATERFALL_STEPS)
        since_text = since.date().isoformat()
        step_urls = {
            key: f"{reverse('dashboards:changes')}?" + query.querystring(since=since_text, step=key)
            for key in changes.steps
        }
        waterfall = charts.pipeline_waterfall(
            start=changes.start,
            steps=[(step_labels[k], v) for k, v in changes.steps.items()],
            step_urls=[step_urls[k] for k in changes.steps],
            end=changes.end,
            start_label=f"On {since:%d %b}",
            end_label="Now",
            title=f"What changed since {since:%d %b %Y} · pipeline closing in {query.period.name}",
            money=symbol,
        )
        return {
            "since": since.date(),
            "funnel_chart": charts.figure_json(
                charts.pipeline_funnel(
                    funnel,
                    title=f"Open pipeline by stage · closing in {query.period.name}",
                    money=symbol,
                )
            )
            if any(s.deals for s in stages)
            else None,
            "funnel": funnel,
            "category_chart": charts.figure_json(
                charts.pipeline_by_close_month(
                    series,
                    labels=dict(ForecastCategory.choices),
                    title="Open pipeline by close month and forecast category",
                    money=symbol,
                )
            )
            if by_category
            else None,
            "waterfall_chart": charts.figure_json(waterfall)
            if changes.start or changes.end or any(changes.deals.values())
            else None,
            "changes": changes,
            "change_rows": [
                (step_labels[k], changes.deals[k], v, step_urls[k])
                for k, v in changes.steps.items()
            ],
            "aging": aging_deals(
                user=user, period=query.period, scope=query.scope, filters=query.filters
            ),
            "slipped": list(
                slipped_moves(
                    user=user, period=query.period, scope=query.scope, filters=query.filters
                ).select_related("deal", "deal__owner", "deal__account")
            ),
            "today": timezone.localdate(),
            "pipeline_url": _records_url(query, metric="open_pipeline"),
        }

    return build


@require_GET
def pipeline(request: HttpRequest) -> HttpResponse:
    return _frame(
        request,
        "dashboards/pipeline.html",
        "pipeline",
        _pipeline(request),
        body="dashboards/pipeline_body.html",
        cached=True,
    )


# --- Pipeline changes drill-down -------------------------------------------------------


def _step_rows(request: HttpRequest, query: DashboardQuery) -> tuple[str, str, PipelineStepDeals]:
    """The requested step, the sort key and the deals behind the step, in that order."""
    step = request.GET.get("step") or ""
    sort = request.GET.get("sort") or "change"
    rows = pipeline_step_deals(
        user=request.user,
        period=query.period,
        scope=query.scope,
        filters=query.filters,
        since=_since(request.GET.get("since")),
        step=step,
        sort=sort,
    )
    return step, sort, rows


@require_GET
def changes(request: HttpRequest) -> HttpResponse:
    """The deals behind one step of the pipeline waterfall (new, pulled in, amount up or
    down, won, lost, slipped out): each deal's open amount then and now and its part in
    the step; the total of that column is the step clicked."""

    def build(query: DashboardQuery) -> dict[str, Any]:
        step, sort, rows = _step_rows(request, query)
        since = _since(request.GET.get("since")).date().isoformat()
        extra = {"since": since, "step": step}
        headers = []
        for key, label in (
            ("name", "Deal"),
            ("account", "Account"),
            ("owner", "Owner"),
            (None, "Stage now"),
            ("close", "Close date now"),
            (None, f"Open in period on {since}"),
            (None, "Open in period now"),
            ("change", "Change"),
        ):
            headers.append(
                {
                    "label": label,
                    "url": "?" + query.querystring(**extra, sort=key if sort != key else f"-{key}")
                    if key
                    else None,
                    "active": sort.lstrip("-") == key,
                    "descending": sort.startswith("-"),
                    "num": key in (None, "change") and label != "Stage now",
                }
            )
        return {
            "step": step,
            "step_label": dict(WATERFALL_STEPS)[step],
            "since": since,
            "total": rows.total,
            "count": len(rows),
            "page": Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page")),
            "headers": headers,
            "pipeline_url": f"{reverse('dashboards:pipeline')}?{query.querystring(since=since)}",
            "page_query": query.querystring(**extra, sort=sort),
            "csv_url": "?" + query.querystring(**extra, sort=sort, format="csv"),
        }

    # Cached like the pipeline page it drills into: its rows come from the same rebuild
    # of the deal history, which takes seconds at a million deals.
    return _page_or_csv(
        request,
        "dashboards/changes.html",
        "pipeline",
        build,
        _changes_csv,
        body="dashboards/changes_body.html",
        cached=True,
    )


def _changes_csv(request: HttpRequest) -> HttpResponse:
    query = query_parse(request.GET, user=request.user)
    step, _, rows = _step_rows(request, query)
    base = settings.BASE_CURRENCY
    return download_response(
        filename=f"pipeline-{step}-{query.period.name}".replace("..", "_"),
        file_format="csv",
        headers=[
            "External id",
            "Deal",
            "Account",
            "Owner",
            "Stage now",
            "Close date now",
            f"Open in period then ({base})",
            f"Open in period now ({base})",
            f"Change ({base})",
        ],
        rows=(
            (
                r.deal.external_id,
                r.deal.name,
                r.deal.account.name,
                r.deal.owner.get_full_name() or r.deal.owner.username,
                r.deal.stage.name,
                r.deal.close_date,
                r.before,
                r.after,
                r.change,
            )
            for r in rows
        ),
    )


# --- Quotas and attainment -------------------------------------------------------------


def _attainment(request: HttpRequest) -> Callable[[DashboardQuery], dict[str, Any]]:
    user = request.user

    def build(query: DashboardQuery) -> dict[str, Any]:
        symbol = formatting.SYMBOLS.get(settings.BASE_CURRENCY, "")
        # Quotas exist per team and rep only, so deal filters cannot apply to attainment.
        ignored = _unsupported_filters(kpi_get("attainment"), query.filters)
        plain = replace(query, filters=KpiFilters())
        scope_args = {"scope": query.scope}
        reps = rep_attainment(user=user, period=query.period, scope=query.scope)
        rep_bars = [
            charts.AttainmentBar(
                r.name,
                r.attainment,
                _records_url(plain, metric="bookings", team=None, rep=r.rep_id),
            )
            for r in reps
        ]
        bookings = kpi_value(name="bookings", period=query.period, user=user, **scope_args)
        quota = kpi_value(name="quota", period=query.period, user=user, **scope_args)
        quota_by_name = dict(quota.series)
        history = [
            charts.MonthPoint(
                name,
                value,
                quota_by_name.get(name),
                _records_url(plain, metric="bookings", period=name),
            )
            for name, value in bookings.series
        ]
        bands = attainment_bands(reps)
        band = request.GET.get("band") or None
        if band is not None and band not in dict(bands):
            known = ", ".join(label for label, _ in bands)
            raise ApplicationError(f"band must be one of {known}; got {band!r}.")
        page_url = reverse("dashboards:attainment")
        band_urls = [
            f"{page_url}?{query.querystring(band=label)}#leaderboard" for label, _ in bands
        ]
        shown = [r for r in reps if band is None or attainment_band(r) == band]
        return {
            "band": band,
            "all_reps_url": f"{page_url}?{query.querystring()}#leaderboard",
            "ignored_filters": ignored,
            # Below a team without sub-teams the team chart would repeat the rep chart.
            "team_chart": _attainment_chart(plain, user)
            if any("team_id" in args for _, args in _attainment_rows(plain))
            else None,
            "rep_chart": charts.figure_json(
                charts.attainment_bars(rep_bars, title=f"Attainment by rep · {query.period.name}")
            )
            if any(r.attainment is not None for r in reps)
            else None,
            "history_chart": charts.figure_json(
                charts.quota_vs_bookings(
                    history, title=f"Quota and bookings · {query.scope.label}", money=symbol
                )
            ),
            "band_chart": charts.figure_json(
                charts.band_histogram(bands, title="Reps by attainment band", urls=band_urls)
            )
            if reps
            else None,
            "leaderboard": [
                (r, _records_url(plain, metric="bookings", team=None, rep=r.rep_id)) for r in shown
            ],
        }

    return build


@require_GET
def attainment(request: HttpRequest) -> HttpResponse:
    return _frame(
        request,
        "dashboards/attainment.html",
        "quotas",
        _attainment(request),
        body="dashboards/attainment_body.html",
        cached=True,
    )


# --- Team performance ------------------------------------------------------------------


def _team(request: HttpRequest) -> Callable[[DashboardQuery], dict[str, Any]]:
    user = request.user

    def build(query: DashboardQuery) -> dict[str, Any]:
        symbol = formatting.SYMBOLS.get(settings.BASE_CURRENCY, "")
        cards = rep_scorecards(
            user=user,
            period=query.period,
            compare=query.compare_period,
            scope=query.scope,
            filters=query.filters,
        )
        bars = []
        quota_ok = not _unsupported_filters(kpi_get("attainment"), query.filters)
        for label, scope_args in _attainment_rows(query):
            if "team_id" not in scope_args:
                continue
            # One scope per team for its three figures (resolved once, checked once).
            args = {
                "user": user,
                "period": query.period,
                "scope": scope_resolve(user=user, **scope_args),
            }
            booked = kpi_value(name="bookings", filters=query.filters, **args).value
            win = kpi_value(name="win_rate", filters=query.filters, **args).value
            note = f"win rate {formatting.percent(win)}"
            if quota_ok:
                reached = kpi_value(name="attainment", **args).value
                note = f"{formatting.percent(reached)} of quota · {note}"
            bars.append(
                charts.LabelledBar(
                    label,
                    booked,
                    note,
                    _records_url(query, metric="bookings", team=scope_args["team_id"], rep=None),
                )
            )
        rows = []
        for card in cards:
            trend, tone = formatting.change(card.bookings, card.previous_bookings, "money", "up")
            rows.append(
                {
                    "card": card,
                    "trend": trend,
                    "tone": tone,
                    "bookings_url": _records_url(
                        query, metric="bookings", team=None, rep=card.rep_id
                    ),
                    "pipeline_url": _records_url(
                        query, metric="open_pipeline", team=None, rep=card.rep_id
                    ),
                    "reviews_url": reverse("reviews:rep", args=[card.rep_id]),
                }
            )
        return {
            "rows": rows,
            "compare_label": COMPARISONS[query.compare],
            "team_chart": charts.figure_json(
                charts.team_comparison(
                    bars, title=f"Bookings by team · {query.period.name}", money=symbol
                )
            )
            if bars
            else None,
        }

    return build


@require_GET
def team(request: HttpRequest) -> HttpResponse:
    return _frame(
        request,
        "dashboards/team.html",
        "team",
        _team(request),
        body="dashboards/team_body.html",
        cached=True,
    )


# --- Customers -------------------------------------------------------------------------


# Bar names of the MRR movement chart and the ``movement`` of the accounts behind each.
MOVEMENT_LABELS = (
    ("New", "new"),
    ("Expansion", "expansion"),
    ("Contraction", "contraction"),
    ("Churn", "churn"),
)


def _customers(request: HttpRequest) -> Callable[[DashboardQuery], dict[str, Any]]:
    user = request.user

    def build(query: DashboardQuery) -> dict[str, Any]:
        if query.scope.kind != "company":
            # Retention, CLV and NPS are kept per account, not per sales team or rep.
            return {"company_only": True}
        symbol = formatting.SYMBOLS.get(settings.BASE_CURRENCY, "")
        filters = query.customer_filters
        last_month = date(query.period.end.year, query.period.end.month, 1)
        trailing = period_parse(f"{add_months(last_month, -11)}..{query.period.end}")
        mrr = kpi_value(name="mrr", period=trailing, user=user, filters=filters)
        moves = mrr_movements(period=trailing, filters=filters)
        labels = [m.month.strftime("%b %Y") for m in moves]
        results = {
            name: kpi_value(name=name, period=query.period, user=user, filters=filters)
            for name in ("mrr", "arr", "nrr", "grr", "logo_churn", "clv", "nps")
        }
        tiles = [_tile(query, result, None) for result in results.values()]
        accounts_url = f"{reverse('dashboards:accounts')}?{query.querystring()}"
        for tile in tiles:
            tile.url = accounts_url
            if tile.name == "nps":
                tile.url = f"{reverse('dashboards:responses')}?{query.querystring()}"
        trend_labels = [name for name, _ in results["nrr"].series]
        segments = [(v, label) for v, label in Segment.choices]
        if filters.segment is not None:
            segments = [(v, label) for v, label in segments if v == filters.segment]
        clv = [
            (
                label,
                kpi_value(
                    name="clv",
                    period=query.period,
                    user=user,
                    filters=KpiFilters(region=filters.region, segment=value),
                ).value,
            )
            for value, label in segments
        ]
        split = nps_by_segment(period=query.period, filters=filters)
        total = NpsSplit(
            "All segments",
            sum(s.promoters for s in split),
            sum(s.passives for s in split),
            sum(s.detractors for s in split),
        )
        groups = [total, *split] if split else []
        cohorts = cohort_retention(period=query.period, filters=filters)
        return {
            "company_only": False,
            "tiles": tiles,
            "compare_label": COMPARISONS[query.compare],
            "ignored_filters": _unsupported_filters(kpi_get("mrr"), query.filters),
            "mrr_chart": charts.figure_json(
                charts.mrr_movements(
                    labels,
                    {
                        "New": [m.new for m in moves],
                        "Expansion": [m.expansion for m in moves],
                        "Contraction": [m.contraction for m in moves],
                        "Churn": [m.churn for m in moves],
                    },
                    [v for _, v in mrr.series],
                    title="MRR movements and closing MRR, last 12 months",
                    money=symbol,
                    urls={
                        label: [
                            f"{reverse('dashboards:accounts')}?"
                            + query.querystring(
                                period=m.month.strftime("%Y-%m"), movement=key, sort="change"
                            )
                            for m in moves
                        ]
                        for label, key in MOVEMENT_LABELS
                    },
                )
            ),
            "retention_chart": charts.figure_json(
                charts.percent_lines(
                    trend_labels,
                    {
                        "NRR": [v for _, v in results["nrr"].series],
                        "GRR": [v for _, v in results["grr"].series],
                        "Logo churn": [v for _, v in results["logo_churn"].series],
                    },
                    title="Net and gross revenue retention, logo churn",
                )
            ),
            "cohort_chart": charts.figure_json(
                charts.cohort_heatmap(
                    [m.strftime("%b %Y") for m in cohorts.months],
                    [cohorts.sizes[m] for m in cohorts.months],
                    [cohorts.rows[m] for m in cohorts.months],
                    title="Logo retention by cohort (first paying month)",
                    urls=[
                        [
                            _cohort_url(query, m, k) if value is not None else None
                            for k, value in enumerate(cohorts.rows[m])
                        ]
                        for m in cohorts.months
                    ],
                )
            )
            if any(cohorts.sizes.values())
            else None,
            "clv_chart": charts.figure_json(
                charts.simple_bars(
                    [label for label, _ in clv],
                    [value for _, value in clv],
                    title=f"Customer lifetime value by segment · {query.period.name}",
                    money=symbol,
                    text=[formatting.money(v, settings.BASE_CURRENCY) for _, v in clv],
                )
            ),
            "nps_chart": charts.figure_json(
                charts.percent_lines(
                    [name for name, _ in results["nps"].series],
                    {"NPS": [v for _, v in results["nps"].series]},
                    title="NPS trend (-100 to 100)",
                    scale=1,
                    suffix="",
                )
            ),
            "nps_split_chart": charts.figure_json(
                charts.nps_split(
                    [f"{g.label} (NPS {formatting.score(g.score)})" for g in groups],
                    [g.promoters for g in groups],
                    [g.passives for g in groups],
                    [g.detractors for g in groups],
                    title=f"Promoters and detractors by segment · {query.period.name}",
                )
            )
            if groups
            else None,
        }

    return build


@require_GET
def customers(request: HttpRequest) -> HttpResponse:
    return _frame(
        request,
        "dashboards/customers.html",
        "customers",
        _customers(request),
        body="dashboards/customers_body.html",
        cached=True,
    )


# --- Cohort drill-down -----------------------------------------------------------------


def _cohort_url(query: DashboardQuery, cohort: date, months_later: int) -> str:
    month = add_months(cohort, months_later)
    params = query.querystring(cohort=cohort.strftime("%Y-%m"), month=month.strftime("%Y-%m"))
    return f"{reverse('dashboards:cohort')}?{params}"


def _month_param(request: HttpRequest, name: str) -> date:
    raw = (request.GET.get(name) or "").strip()
    try:
        return date.fromisoformat(f"{raw}-01")
    except ValueError:
        raise ApplicationError(f"{name} must be a month YYYY-MM, got {raw!r}.") from None


COHORT_SORTS: dict[str, Callable[[Any], Any]] = {
    "name": lambda r: r.name.lower(),
    "mrr": lambda r: r.mrr,
}


def _cohort_rows(request: HttpRequest, query: DashboardQuery) -> tuple[date, date, str, list]:
    """The cohort month, the month looked at, the sort key and the cohort's accounts."""
    if query.scope.kind != "company":
        raise ApplicationError("Customer figures are company-wide; choose the whole company.")
    cohort, month = _month_param(request, "cohort"), _month_param(request, "month")
    if month < cohort:
        raise ApplicationError("month must not be before the cohort's month.")
    if month > timezone.localdate():
        raise ApplicationError("month must not be in the future.")
    sort = request.GET.get("sort") or "name"
    if sort.lstrip("-") not in COHORT_SORTS:
        raise ApplicationError(
            f"sort must be one of {', '.join(sorted(COHORT_SORTS))} (prefix - for descending)."
        )
    rows = cohort_members(cohort=cohort, month=month, filters=query.customer_filters)
    rows.sort(key=COHORT_SORTS[sort.lstrip("-")], reverse=sort.startswith("-"))
    # Paying accounts first whatever the order within each group (a stable sort).
    rows.sort(key=lambda r: not r.paying)
    return cohort, month, sort, rows


@require_GET
def cohort(request: HttpRequest) -> HttpResponse:
    """The accounts of one cohort (first month with MRR) and which still pay on the first
    day of a later month; the paying share is the heatmap cell clicked."""

    def build(query: DashboardQuery) -> dict[str, Any]:
        if query.scope.kind != "company":
            return {"company_only": True}
        cohort_month, month, sort, rows = _cohort_rows(request, query)
        paying = sum(1 for r in rows if r.paying)
        extra = {"cohort": cohort_month.strftime("%Y-%m"), "month": month.strftime("%Y-%m")}
        headers = [
            {
                "label": label,
                "url": "?" + query.querystring(**extra, sort=key if sort != key else f"-{key}"),
                "active": sort.lstrip("-") == key,
                "descending": sort.startswith("-"),
                "num": key == "mrr",
            }
            for key, label in (("name", "Account"), ("mrr", f"MRR on {month:%d %b %Y}"))
        ]
        return {
            "company_only": False,
            "cohort_month": cohort_month,
            "month": month,
            "months_later": (month.year - cohort_month.year) * 12
            + month.month
            - cohort_month.month,
            "size": len(rows),
            "paying": paying,
            "share": calc.ratio(paying, len(rows)),
            "mrr_total": sum((r.mrr for r in rows), Decimal("0.00")),
            "headers": headers,
            "page": Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page")),
            "page_query": query.querystring(**extra, sort=sort),
            "csv_url": "?" + query.querystring(**extra, sort=sort, format="csv"),
            "customers_url": f"{reverse('dashboards:customers')}?{query.querystring()}",
        }

    return _page_or_csv(request, "dashboards/cohort.html", "customers", build, _cohort_csv)


def _cohort_csv(request: HttpRequest) -> HttpResponse:
    query = query_parse(request.GET, user=request.user)
    cohort_month, month, _, rows = _cohort_rows(request, query)
    base = settings.BASE_CURRENCY
    return download_response(
        filename=f"cohort-{cohort_month:%Y-%m}-at-{month:%Y-%m}",
        file_format="csv",
        headers=["Account", "Segment", f"Paying on {month.isoformat()}", f"MRR ({base})"],
        rows=((r.name, r.segment, "yes" if r.paying else "no", r.mrr) for r in rows),
    )


# --- Customer accounts drill-down ------------------------------------------------------

ACCOUNT_SORTS = {
    "closing": lambda r: r.closing,
    "opening": lambda r: r.opening,
    "change": lambda r: r.closing - r.opening,
    "name": lambda r: r.name.lower(),
}


@require_GET
def accounts(request: HttpRequest) -> HttpResponse:
    """The accounts behind the MRR, ARR and retention figures: opening and closing MRR for
    the period; the closing total is the MRR tile, closing / opening over the accounts
    paying at the start is NRR."""

    def build(query: DashboardQuery) -> dict[str, Any]:
        if query.scope.kind != "company":
            return {"company_only": True}
        sort = request.GET.get("sort") or "-closing"
        if sort.lstrip("-") not in ACCOUNT_SORTS:
            raise ApplicationError(
                f"sort must be one of {', '.join(sorted(ACCOUNT_SORTS))} (prefix - for descending)."
            )
        movement = request.GET.get("movement") or None
        rows = _account_rows(query, movement)
        rows.sort(key=ACCOUNT_SORTS[sort.lstrip("-")], reverse=sort.startswith("-"))
        kept = [r for r in rows if r.opening > 0]
        totals = {
            "accounts": len(rows),
            "opening": sum((r.opening for r in rows), Decimal("0.00")),
            "closing": sum((r.closing for r in rows), Decimal("0.00")),
            "change": sum((r.change for r in rows), Decimal("0.00")),
            "nrr": calc.net_revenue_retention(
                calc.RetentionTotals(
                    opening=sum((r.opening for r in kept), Decimal("0.00")),
                    retained=sum((min(r.opening, r.closing) for r in kept), Decimal("0.00")),
                    closing=sum((r.closing for r in kept), Decimal("0.00")),
                    accounts=len(kept),
                    churned=sum(1 for r in kept if r.closing <= 0),
                )
            ),
        }
        headers = []
        for key, label in (
            ("name", "Account"),
            ("opening", "Opening MRR"),
            ("closing", "Closing MRR"),
            ("change", "Change"),
        ):
            headers.append(
                {
                    "label": label,
                    "url": "?"
                    + query.querystring(sort=key if sort != key else f"-{key}", movement=movement),
                    "active": sort.lstrip("-") == key,
                    "descending": sort.startswith("-"),
                    "num": key != "name",
                }
            )
        return {
            "company_only": False,
            "page": Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page")),
            "totals": totals,
            "headers": headers,
            "movement": movement,
            "all_url": "?" + query.querystring(sort=sort),
            "page_query": query.querystring(sort=sort, movement=movement),
            "csv_url": "?" + query.querystring(sort=sort, movement=movement, format="csv"),
        }

    return _page_or_csv(request, "dashboards/accounts.html", "customers", build, _accounts_csv)


def _account_rows(query: DashboardQuery, movement: str | None) -> list:
    """The accounts of the period, or (``movement``) only those behind one MRR movement
    bar of a single month."""
    rows = account_mrr(period=query.period, filters=query.customer_filters)
    if movement is None:
        return rows
    return accounts_by_movement(rows, period=query.period, movement=movement)


def _accounts_csv(request: HttpRequest) -> HttpResponse:
    query = query_parse(request.GET, user=request.user)
    if query.scope.kind != "company":
        raise ApplicationError("Customer figures are company-wide; choose the whole company.")
    rows = _account_rows(query, request.GET.get("movement") or None)
    base = settings.BASE_CURRENCY
    return download_response(
        filename=f"accounts-mrr-{query.period.name}".replace("..", "_"),
        file_format="csv",
        headers=["Account", "Segment", f"Opening MRR ({base})", f"Closing MRR ({base})"],
        rows=((r.name, r.segment, r.opening, r.closing) for r in rows),
    )


# --- NPS responses drill-down ----------------------------------------------------------


@require_GET
def responses(request: HttpRequest) -> HttpResponse:
    """The survey answers behind the NPS figures; the NPS of the list is the tile's."""

    def build(query: DashboardQuery) -> dict[str, Any]:
        if query.scope.kind != "company":
            return {"company_only": True}
        group = request.GET.get("group") or None
        answers = nps_responses(
            period=query.period, filters=query.customer_filters, group=group
        ).order_by("-responded_on", "-id")
        totals = nps_response_totals(answers)
        return {
            "company_only": False,
            "totals": totals,
            "group": group,
            "groups": [
                (key, "?" + query.querystring(group=key))
                for key in ("promoters", "passives", "detractors")
            ],
            "all_url": "?" + query.querystring(),
            "page": Paginator(answers, PAGE_SIZE).get_page(request.GET.get("page")),
            "page_query": query.querystring(group=group),
        }

    return _frame(request, "dashboards/responses.html", "customers", build)
