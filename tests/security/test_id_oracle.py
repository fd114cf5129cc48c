"""Issue #9: object ids in URLs reveal nothing across scopes. For a manager and a rep of
team Alpha, an id of team Bravo's record must answer exactly like an id that does not
exist: same status, same redirect, same body once the id itself is blanked out, and the
record unchanged. Otherwise a user could learn which ids exist by trying them.

Ids of different models collide (deal 7 and team 7 are unrelated), so the id routes are
declared in a per-route map saying which model each id names. The map is checked against
the URL conf (walked at test time, as in test_no_leaks.py): a new route that takes an id in
its path, a new id filter of an API list, or a new page that reads ``?team=`` or ``?rep=``
fails here until it is declared. Each declared id is also requested in scope, which must
find the record, so a wrong map fails too.

Filters follow what each surface already decides: a dashboard, forecast or KPI scope
(``?team=``, ``?rep=``) outside the viewer's scope is a 404 (403 on the KPI API) whether or
not it exists; an API list filter is a plain match, so it answers an empty list for both.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Max, Model
from django.test import Client
from django.urls import get_resolver, resolve, reverse
from django.utils import timezone
from django_filters import ModelChoiceFilter, ModelMultipleChoiceFilter

from apps.api.filters import IdFilter
from apps.crm.models import Account, Opportunity, Product, Stage
from apps.customers.models import NpsResponse, Subscription
from apps.dashboards.query import ALLOWED as DASHBOARD_PARAMS
from apps.digests.models import Delivery as DigestDelivery
from apps.digests.models import DigestAlert, DigestSubscription
from apps.forecasting.models import Scenario
from apps.forecasting.views import OWN_PARAMS as FORECAST_PARAMS
from apps.imports.models import ImportJob, SavedMapping
from apps.kpis.api import ALLOWED_PARAMS as KPI_API_PARAMS
from apps.org.models import Region, Team, User
from apps.performance.models import Competency, PerformanceReview
from apps.quotas import fiscal
from apps.quotas.models import Quota
from apps.quotas.services import fiscal_periods_ensure
from tests.factories import (
    AccountFactory,
    CompetencyFactory,
    ExecutiveFactory,
    FiscalPeriodFactory,
    ManagerFactory,
    NpsResponseFactory,
    OpportunityFactory,
    PerformanceReviewFactory,
    ProductFactory,
    QuotaFactory,
    QuotaPlanFactory,
    RegionFactory,
    RepFactory,
    RevOpsAdminFactory,
    StageFactory,
    SubscriptionFactory,
    TeamFactory,
)
from tests.foundation.test_login_required import Route, walk

pytestmark = pytest.mark.django_db

# --- The map ----------------------------------------------------------------------------
#: Which model each kind of id names.
KIND_MODELS: dict[str, type[Model]] = {
    "team": Team,
    "user": User,
    "deal": Opportunity,
    "quota": Quota,
    "review": PerformanceReview,
    "digest": DigestSubscription,
    "alert": DigestAlert,
    "delivery": DigestDelivery,
    "scenario": Scenario,
    "import_job": ImportJob,
    "saved_mapping": SavedMapping,
    "account": Account,
    "product": Product,
    "stage": Stage,
    "region": Region,
    "subscription": Subscription,
    "nps": NpsResponse,
    "uploader": User,  # the person who uploaded an import (only importers see imports)
    "competency": Competency,
}
#: Reference and customer records everyone signed in reads: no id of theirs is out of
#: anyone's scope, so there is nothing to hide; only "the id finds its record" is checked.
GLOBAL_KINDS = frozenset({"account", "product", "stage", "region", "subscription", "nps"})

#: Path parameters that are not record ids, and what they are instead.
NON_ID_PATH_PARAMS = {
    "period": "a fiscal period name (2025-Q1)",
    "file_format": "csv or xlsx",
    "token": "a signed unsubscribe token (its signature is the credential)",
    "name": "a KPI slug",
    "unknown": "the API's catch-all for unknown endpoints",
}
#: Sample values of the non-id path parameters (``period`` comes from the world's plan).
NON_ID_SAMPLES = {"file_format": "csv", "name": "bookings"}

#: Routes with an id in the path: route name -> {parameter: kind}.
PATH_IDS: dict[str, dict[str, str]] = {
    # digests: a subscription belongs to its owner and recipient
    **{
        f"digests:{name}": {"pk": "digest"}
        for name in ("edit", "delete", "preview", "preview_mail", "test", "alert_add")
    },
    "digests:alert_delete": {"pk": "alert"},
    "digests:resend": {"pk": "delivery"},
    # forecast
    "forecasting:deal_category": {"pk": "deal"},
    "forecasting:scenario_delete": {"pk": "scenario"},
    # import wizard (importers only)
    **{
        f"imports:{name}": {"pk": "import_job"}
        for name in ("columns", "values", "preview", "job", "progress", "errors-csv", "job-mapping")
    },
    "imports:mapping-download": {"pk": "saved_mapping"},
    # performance reviews
    "reviews:detail": {"pk": "review"},
    "reviews:acknowledge": {"pk": "review"},
    "reviews:amend": {"pk": "review"},
    "reviews:rep": {"user_id": "user"},
    "reviews:competencies": {"team_id": "team"},
    # quota plans
    **{
        f"quotas:{name}": {"team_id": "team"}
        for name in (
            "plan",
            "submit",
            "approve",
            "return",
            "lock",
            "copy",
            "spread",
            "upload",
            "template",
            "export",
        )
    },
    # the REST API
    "api:team-detail": {"pk": "team"},
    "api:user-detail": {"pk": "user"},
    "api:opportunity-detail": {"pk": "deal"},
    "api:opportunity-history": {"pk": "deal"},
    "api:quota-detail": {"pk": "quota"},
    "api:review-detail": {"pk": "review"},
    "api:review-submit": {"pk": "review"},
    "api:review-acknowledge": {"pk": "review"},
    "api:import-job-detail": {"pk": "import_job"},
    "api:account-detail": {"pk": "account"},
    "api:product-detail": {"pk": "product"},
    "api:stage-detail": {"pk": "stage"},
    "api:subscription-detail": {"pk": "subscription"},
    "api:nps-response-detail": {"pk": "nps"},
}

#: The dashboards' scope parameters (apps.dashboards.query), shared by the forecast pages
#: and the KPI API.
SCOPE_IDS = {"team": "team", "rep": "user", "region": "region", "product": "product"}
#: Every other parameter those surfaces read, none an id; a new parameter must be sorted
#: into one of the two (the ``stage`` of a drill-down is a stage id, readable by all).
SCOPE_NON_IDS = frozenset(
    {"period", "compare", "segment", "deal_type", "page", "sort", "format", "metric"}
    | {"category", "since", "group", "band", "movement", "step", "cohort", "month"}
    | {"growth", "win", "heads", "months"}
)
SCOPE_EXTRA_IDS = {"stage": "stage", "scenario": "scenario"}

#: Routes with ids in the query string: route name -> {parameter: kind}.
QUERY_IDS: dict[str, dict[str, str]] = {
    **{
        f"dashboards:{name}": SCOPE_IDS
        for name in (
            "overview",
            "pipeline",
            "attainment",
            "team",
            "customers",
            "records",
            "changes",
            "accounts",
            "cohort",
            "responses",
        )
    },
    "forecasting:index": {**SCOPE_IDS, "scenario": "scenario"},
    # stored forecasts are per scope: region and product filters are refused there (400)
    "forecasting:api_forecasts": {"team": "team", "rep": "user"},
    "forecasting:api_calls": SCOPE_IDS,
    "forecasting:api_accuracy": SCOPE_IDS,
    "kpis:kpi-detail": SCOPE_IDS,
    # API list filters (apps/api/filters.py)
    "api:team-list": {"parent": "team", "region": "region", "manager": "user", "within": "team"},
    "api:user-list": {"team": "team", "within": "team"},
    "api:opportunity-list": {
        "owner": "user",
        "team": "team",
        "account": "account",
        "product": "product",
        "stage": "stage",
        "region": "region",
    },
    "api:quota-list": {"rep": "user", "team": "team"},
    "api:review-list": {"rep": "user", "reviewer": "user"},
    "api:account-list": {"region": "region"},
    "api:subscription-list": {"account": "account", "product": "product"},
    "api:nps-response-list": {"account": "account"},
    "api:import-job-list": {"uploaded_by": "uploader"},
}
#: Query strings a route needs besides the id (the page's required parameters).
QUERY_EXTRA: dict[str, str] = {"dashboards:changes": "step=new&"}


# --- The world: teams Alpha and Bravo, one record of every kind each --------------------------
@dataclass
class World:
    viewers: dict[str, User]  # manager, rep (team Alpha) and admin (RevOps)
    #: kind -> role -> ids of records that role may see (no entry: that role sees none)
    in_scope: dict[str, dict[str, list[int]]]
    #: kind -> role -> ids of existing records outside that role's scope (none: global kind)
    out_of_scope: dict[str, dict[str, list[int]]]
    #: role -> (kind, id) of out-of-scope records that the role's visible records name (a
    #: rep's own team and reviewer, the company above a manager's team): not secret, and
    #: a list filter on them matches visible records, as it should
    named: dict[str, set[tuple[str, int]]]
    plan_period: str
    month: str  # the current fiscal month's name, which has quotas
    quarter: str  # the current fiscal quarter's name, open for forecast calls

    def missing(self, kind: str) -> int:
        """An id no record of ``kind`` has: the largest one + 1000."""
        model = KIND_MODELS[kind]
        return (model.objects.aggregate(top=Max("pk"))["top"] or 0) + 1000


def _distinct_ids() -> None:
    """Start each table's ids at its own high number (1,100,001, 1,200,001, ...): a blanked
    id then never matches an unrelated number on the page ("h1", "page 2 of 3"), and no two
    kinds share an id, so an id read as the wrong model shows up as a missing record."""
    models = sorted({m for m in KIND_MODELS.values()}, key=lambda m: m._meta.db_table)
    with connection.cursor() as cursor:
        for n, model in enumerate(models, 1):
            table, start = model._meta.db_table, 1_000_000 + 100_000 * n
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, start]
                )
            elif connection.vendor == "sqlite":
                cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [table])
                cursor.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, start]
                )


def _team(name: str, parent: Team | None = None):
    team = TeamFactory(name=name, **({"parent": parent} if parent else {}))
    manager = ManagerFactory(team=team)
    rep = RepFactory(team=team)
    return team, manager, rep


def _digest(owner: User, team: Team) -> tuple[int, int, int]:
    sub = DigestSubscription.objects.create(
        owner=owner, recipient=owner, team=team, frequency="weekly", weekday=0
    )
    alert = DigestAlert.objects.create(subscription=sub, kpi="bookings", threshold=Decimal("1"))
    delivery = DigestDelivery.objects.create(
        subscription=sub,
        kind=DigestDelivery.Kind.TEST,
        period_key=f"test:{sub.pk}",
        scheduled_for=timezone.now(),
        to_email=owner.email,
    )
    return sub.pk, alert.pk, delivery.pk


@pytest.fixture
def world() -> World:
    _distinct_ids()
    today = timezone.localdate()
    fiscal_periods_ensure(first_year=today.year - 1, last_year=today.year + 1)
    fiscal_periods_ensure(first_year=2025, last_year=2025)
    alpha, alpha_manager, alpha_rep = _team("Alpha")
    # A team below Alpha (its manager runs it; Alpha's manager sees it), so that filters on
    # a parent team, a team's own quota or a reviewer have something in scope to find.
    east = TeamFactory(name="Alpha East", parent=alpha, manager=alpha_manager)
    bravo, bravo_manager, bravo_rep = _team("Bravo")
    admin = RevOpsAdminFactory()
    won = StageFactory(won=True)
    month = FiscalPeriodFactory(day=today.replace(day=1))
    QuotaFactory(rep=None, team=east, period=month)
    ids: dict[str, dict[str, int]] = {}
    for side, team, manager, rep in (
        ("alpha", alpha, alpha_manager, alpha_rep),
        ("bravo", bravo, bravo_manager, bravo_rep),
    ):
        deal = OpportunityFactory(
            owner=rep, stage=won, created_date=today - dt.timedelta(days=20), close_date=today
        )
        quota = QuotaFactory(rep=rep, period=month)
        review = PerformanceReviewFactory(rep=rep, reviewer=manager, submitted=True)
        plan = QuotaPlanFactory(team=team)
        competency = CompetencyFactory(team=team)
        digest, alert, delivery = _digest(manager, team)
        scenario = Scenario.objects.create(owner=manager, name=f"{side} outlook")
        ids[side] = {
            "team": team.pk,
            "user": rep.pk,
            "deal": deal.pk,
            "quota": quota.pk,
            "review": review.pk,
            "digest": digest,
            "alert": alert,
            "delivery": delivery,
            "scenario": scenario.pk,
            "competency": competency.pk,
        }
    rep_scenario = Scenario.objects.create(owner=alpha_rep, name="rep outlook")
    # What is in Alpha but outside the rep's scope: a teammate and their records, the
    # manager, the rep's own review while it is a draft.
    teammate = RepFactory(team=alpha)
    teammate_deal = OpportunityFactory(owner=teammate, stage=won, close_date=today)
    teammate_quota = QuotaFactory(rep=teammate, period=month)
    draft = PerformanceReviewFactory(rep=alpha_rep, reviewer=alpha_manager)
    executive = ExecutiveFactory()
    job = ImportJob.objects.create(
        kind="accounts", file_name="accounts.csv", status="committed", uploaded_by=admin
    )
    mapping = SavedMapping.objects.create(name="CRM", kind="accounts", document={})
    account = AccountFactory()
    globals_ = {
        "account": account.pk,
        "product": ProductFactory().pk,
        "stage": won.pk,
        "region": RegionFactory().pk,
        "subscription": SubscriptionFactory(account=account).pk,
        "nps": NpsResponseFactory(account=account).pk,
    }
    alpha_ids, bravo_ids = ids["alpha"], ids["bravo"]
    in_scope: dict[str, dict[str, list[int]]] = {
        kind: {"manager": [pk], "rep": [pk]} for kind, pk in alpha_ids.items()
    }
    # A rep sees no team and only their own person, digests and scenarios.
    in_scope["team"] = {"manager": [alpha.pk, east.pk]}
    in_scope["user"]["manager"] = [alpha_rep.pk, alpha_manager.pk]
    for kind in ("digest", "alert", "delivery", "competency"):
        del in_scope[kind]["rep"]
    in_scope["scenario"]["rep"] = [rep_scenario.pk]
    # Only importers see imports: a manager and a rep are refused every one of them.
    in_scope["import_job"] = {"admin": [job.pk]}
    in_scope["saved_mapping"] = {"admin": [mapping.pk]}
    in_scope["uploader"] = {"admin": [admin.pk]}
    for kind, pk in globals_.items():
        in_scope[kind] = {"manager": [pk], "rep": [pk]}
    out_of_scope: dict[str, dict[str, list[int]]] = {
        kind: {"manager": [pk], "rep": [pk]} for kind, pk in bravo_ids.items()
    }
    rep_also = {
        "team": [alpha.pk, east.pk],
        "user": [alpha_manager.pk, teammate.pk],
        "deal": [teammate_deal.pk],
        "quota": [teammate_quota.pk],
        "review": [draft.pk],
        "digest": [alpha_ids["digest"]],
        "alert": [alpha_ids["alert"]],
        "delivery": [alpha_ids["delivery"]],
        "scenario": [alpha_ids["scenario"]],
        "competency": [alpha_ids["competency"]],
    }
    for kind, pks in rep_also.items():
        out_of_scope[kind]["rep"] += pks
    # The company above both teams, the managers' peer and an executive.
    out_of_scope["team"]["manager"].append(alpha.parent_id)
    out_of_scope["user"]["manager"] += [bravo_manager.pk, executive.pk]
    out_of_scope["user"]["rep"] += [bravo_manager.pk, executive.pk]
    for kind, pk in {
        "import_job": job.pk,
        "saved_mapping": mapping.pk,
        "uploader": admin.pk,
    }.items():
        out_of_scope[kind] = {"manager": [pk], "rep": [pk]}
    for kind in globals_:
        out_of_scope[kind] = {}
    return World(
        viewers={"manager": alpha_manager, "rep": alpha_rep, "admin": admin},
        in_scope=in_scope,
        out_of_scope=out_of_scope,
        named={
            "manager": {("team", alpha.parent_id)},
            "rep": {("team", alpha.pk), ("user", alpha_manager.pk)},
        },
        plan_period=plan.period.name,
        month=month.name,
        quarter=fiscal.period_containing(today, "quarter", settings.FISCAL_YEAR_START_MONTH).name,
    )


# --- Requests and their comparison ----------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    status: int
    location: str
    body: str

    def __str__(self) -> str:
        return f"{self.status} {self.location} {self.body[:300]!r}"


#: Per-request noise: CSRF tokens (masked afresh on every render) and similar secrets.
_TOKENS = re.compile(r"\b[A-Za-z0-9]{32,}\b")


def _blank(text: str, ident: int | None) -> str:
    if ident is not None:
        text = re.sub(rf"(?<!\d){ident}(?!\d)", "<id>", text)
    return _TOKENS.sub("<token>", text)


def _ask(
    viewer: User, method: str, url: str, ident: int | None, data: dict | None = None
) -> Answer:
    """``method`` on ``url`` as ``viewer`` (with the form or, to the API, JSON ``data``),
    from a fresh session (no messages carried over), with ``ident`` blanked out."""
    client = Client()
    client.force_login(viewer)
    call: Callable = getattr(client, method.lower())
    if method in ("POST", "PUT", "PATCH") and url.startswith("/api/"):
        response = call(url, data=json.dumps(data or {}), content_type="application/json")
    elif data is not None:
        response = call(url, data=data)
    else:
        response = call(url)
    body = b"".join(response) if response.streaming else response.content
    return Answer(
        status=response.status_code,
        location=_blank(response.get("Location", ""), ident),
        body=_blank(body.decode(errors="replace"), ident),
    )


def _methods(route_name: str) -> tuple[str, ...]:
    if route_name.startswith(("api:", "kpis:")):
        return ("GET", "POST", "PUT", "PATCH", "DELETE")
    return ("GET", "POST")


def _snapshot(world: World) -> dict[str, list[dict]]:
    """Every record outside a scope, as stored, to show that no request changed one."""
    return {
        kind: [
            # signing in (as a viewer who is also someone else's out-of-scope person) is not
            # a change made through the id under test
            {k: v for k, v in row.items() if k != "last_login"}
            for row in KIND_MODELS[kind]
            .objects.filter(pk__in={pk for pks in by_role.values() for pk in pks})
            .order_by("pk")
            .values()
        ]
        for kind, by_role in world.out_of_scope.items()
    }


def _path_url(world: World, route_name: str, values: dict[str, int]) -> str:
    kwargs: dict[str, object] = dict(values)
    route = next(r for r in _routes() if r.name == route_name)
    for param in _path_params(route):
        if param in NON_ID_PATH_PARAMS:
            kwargs[param] = world.plan_period if param == "period" else NON_ID_SAMPLES[param]
    return reverse(route_name, kwargs=kwargs)


@cache
def _routes() -> list[Route]:
    return [r for r in walk(get_resolver()) if not r.regex.startswith(("admin", "static"))]


def _path_params(route: Route) -> list[str]:
    return re.findall(r"\(\?P<(\w+)>", route.regex)


# --- The map matches the URL conf -----------------------------------------------------------
def test_every_route_with_an_id_in_its_path_is_in_the_map():
    found: dict[str, set[str]] = {}
    unnamed = []
    for route in _routes():
        ids = {p for p in _path_params(route) if p not in NON_ID_PATH_PARAMS}
        if not ids:
            continue
        if route.name is None:
            unnamed.append(route.route)
            continue
        found[route.name] = ids
    assert unnamed == [], "name these routes, then declare them in PATH_IDS"
    declared = {name: set(params) for name, params in PATH_IDS.items()}
    assert {n: p for n, p in found.items() if declared.get(n) != p} == {}, (
        "declare which model each id names in PATH_IDS"
    )
    assert sorted(set(declared) - set(found)) == [], "PATH_IDS names routes that are gone"


def test_every_id_filter_of_the_api_lists_is_in_the_map():
    found: dict[str, set[str]] = {}
    for route in _routes():
        if not (route.name or "").startswith("api:") or not route.name.endswith("-list"):
            continue
        view_class = getattr(resolve(reverse(route.name)).func, "cls", None)
        filterset = getattr(view_class, "filterset_class", None)
        if filterset is None:
            continue
        ids = {
            name
            for name, field in filterset.base_filters.items()
            if isinstance(field, IdFilter | ModelChoiceFilter | ModelMultipleChoiceFilter)
        }
        if ids:
            found[route.name] = ids
    declared = {n: set(p) for n, p in QUERY_IDS.items() if n.startswith("api:")}
    assert found == declared


def test_every_scope_parameter_is_sorted_into_ids_and_non_ids():
    params = set(DASHBOARD_PARAMS) | set(FORECAST_PARAMS) | set(KPI_API_PARAMS)
    ids = set(SCOPE_IDS) | set(SCOPE_EXTRA_IDS)
    assert params - ids - SCOPE_NON_IDS == set(), "a new parameter: is it an id?"
    assert ids & SCOPE_NON_IDS == set()


def test_every_page_that_reads_a_scope_id_is_in_the_map(world):
    """A route without path ids that answers ``?team=<missing>`` or ``?rep=<missing>``
    differently from no parameter at all reads that id, so it must be declared."""
    manager = world.viewers["manager"]
    readers: dict[str, set[str]] = {}
    for route in _routes():
        params = _path_params(route)
        if (
            route.name is None
            or route.name in ("logout", "login")
            or set(params) - set(NON_ID_SAMPLES)
        ):
            continue  # routes with ids in the path are covered by PATH_IDS
        if route.name.startswith("api:"):
            continue  # API lists: their filtersets are checked above
        url = reverse(route.name, kwargs={p: NON_ID_SAMPLES[p] for p in params})
        plain = _ask(manager, "GET", url, None)
        for param, kind in (("team", "team"), ("rep", "user")):
            missing = world.missing(kind)
            if _ask(manager, "GET", f"{url}?{param}={missing}", missing) != plain:
                readers.setdefault(route.name, set()).add(param)
    declared = {
        name: {p for p in params if p in ("team", "rep")}
        for name, params in QUERY_IDS.items()
        if not name.startswith("api:")
    }
    assert readers == {n: p for n, p in declared.items() if p}


# --- Out of scope answers like missing; in scope finds the record -----------------------------
def _path_cases() -> list[tuple[str, str, str]]:
    return [
        (name, param, kind) for name, params in PATH_IDS.items() for param, kind in params.items()
    ]


@pytest.mark.parametrize(("route_name", "param", "kind"), _path_cases())
def test_an_id_in_the_path_outside_the_scope_answers_like_a_missing_one(
    world, route_name, param, kind
):
    before = _snapshot(world)
    missing = world.missing(kind)
    differences = []
    for role, outside in world.out_of_scope[kind].items():
        viewer = world.viewers[role]
        for method in _methods(route_name):
            none = _ask(viewer, method, _path_url(world, route_name, {param: missing}), missing)
            for pk in outside:
                theirs = _ask(viewer, method, _path_url(world, route_name, {param: pk}), pk)
                if theirs != none:
                    differences.append(f"{role} {method} {pk}: outside {theirs} / missing {none}")
    assert not differences, "\n".join(differences)
    assert _snapshot(world) == before, "a request changed a record outside the scope"
    _assert_in_scope_finds(world, kind, lambda pk: _path_url(world, route_name, {param: pk}))


def _assert_in_scope_finds(world: World, kind: str, url_for: Callable[[int], str]) -> None:
    """The declared model is right: every in-scope id answers a GET with 2xx/3xx (a
    POST-only route: a POST), and one of them, for one of the roles, answers differently
    from a missing id (for records everyone reads a filter may match nothing either way)."""
    missing = world.missing(kind)
    found = []
    for role, pks in world.in_scope[kind].items():
        viewer = world.viewers[role]
        get_missing = _ask(viewer, "GET", url_for(missing), missing)
        method = "POST" if get_missing.status == 405 else "GET"
        none = get_missing if method == "GET" else _ask(viewer, "POST", url_for(missing), missing)
        for pk in pks:
            mine = _ask(viewer, method, url_for(pk), pk)
            if method == "GET":
                assert mine.status < 400, f"{role} GET {url_for(pk)}: {mine}"
            found.append(mine != none)
    assert found, f"nobody in the world sees a {kind}"
    assert kind in GLOBAL_KINDS or any(found), (
        f"{url_for(missing)}: no in-scope {kind} answers differently from a missing one"
    )


def _query_cases() -> list[tuple[str, str, str]]:
    return [
        (name, param, kind) for name, params in QUERY_IDS.items() for param, kind in params.items()
    ]


def _query_url(world: World, route_name: str, param: str, pk: int) -> str:
    kwargs = {"name": NON_ID_SAMPLES["name"]} if route_name == "kpis:kpi-detail" else {}
    extra = QUERY_EXTRA.get(route_name, "")
    return f"{reverse(route_name, kwargs=kwargs)}?{extra}{param}={pk}"


@pytest.mark.parametrize(("route_name", "param", "kind"), _query_cases())
def test_an_id_in_the_query_outside_the_scope_answers_like_a_missing_one(
    world, route_name, param, kind
):
    missing = world.missing(kind)
    differences = []
    for role, outside in world.out_of_scope[kind].items():
        viewer = world.viewers[role]
        none = _ask(viewer, "GET", _query_url(world, route_name, param, missing), missing)
        for pk in outside:
            if (kind, pk) in world.named[role] and route_name.startswith("api:"):
                continue  # a list filter on an id the viewer already sees named
            theirs = _ask(viewer, "GET", _query_url(world, route_name, param, pk), pk)
            if theirs != none:
                differences.append(f"{role} {pk}: outside {theirs} / missing {none}")
    assert not differences, "\n".join(differences)
    _assert_in_scope_finds(world, kind, lambda pk: _query_url(world, route_name, param, pk))


# --- Ids in a form or a JSON body ----------------------------------------------------------
@dataclass(frozen=True)
class BodyId:
    """An id sent in a request body: ``request(world, id)`` gives (method, url, data)."""

    kind: str
    request: Callable[[World, int], tuple[str, str, dict]]


def _alpha(world: World, kind: str) -> int:
    return world.in_scope[kind]["manager"][0]


#: Ids read from forms and JSON bodies (no URL conf lists them, so this list is by hand).
BODY_IDS: dict[str, BodyId] = {
    "reviews:start rep": BodyId(
        "user",
        lambda w, pk: ("POST", reverse("reviews:start"), {"rep": pk, "period": w.plan_period}),
    ),
    "reviews:competencies toggle": BodyId(
        "competency",
        lambda w, pk: (
            "POST",
            reverse("reviews:competencies", kwargs={"team_id": _alpha(w, "team")}),
            {"toggle": pk},
        ),
    ),
    "forecasting:call_submit team": BodyId(
        "team",
        lambda w, pk: (
            "POST",
            reverse("forecasting:call_submit"),
            {"team": pk, "period": w.quarter, "commit": "1.00", "best_case": "2.00"},
        ),
    ),
    "digests:new team": BodyId(
        "team",
        lambda w, pk: (
            "POST",
            reverse("digests:new"),
            {"team": pk, "frequency": "weekly", "weekday": "0", "hour": "7", "time_zone": "UTC"},
        ),
    ),
    "api quota create rep": BodyId(
        "user",
        lambda w, pk: (
            "POST",
            reverse("api:quota-list"),
            {"period": w.month, "rep": pk, "amount": "1.00"},
        ),
    ),
    "api quota create team": BodyId(
        "team",
        lambda w, pk: (
            "POST",
            reverse("api:quota-list"),
            {"period": w.month, "team": pk, "amount": "1.00"},
        ),
    ),
    "api review create rep": BodyId(
        "user",
        lambda w, pk: ("POST", reverse("api:review-list"), {"rep": pk, "period": "FY2024"}),
    ),
    "api deal owner": BodyId(
        "user",
        lambda w, pk: (
            "PATCH",
            reverse("api:opportunity-detail", kwargs={"pk": _alpha(w, "deal")}),
            {"owner": pk},
        ),
    ),
    "api review rating competency": BodyId(
        "competency",
        lambda w, pk: (
            "PATCH",
            reverse("api:review-detail", kwargs={"pk": _alpha(w, "review")}),
            {"ratings": [{"competency": pk, "score": 3}], "reason": "Agreed in the follow-up."},
        ),
    ),
}


@pytest.mark.parametrize("case", list(BODY_IDS))
def test_an_id_in_a_body_outside_the_scope_answers_like_a_missing_one(world, case):
    body_id = BODY_IDS[case]
    before = _snapshot(world)
    missing = world.missing(body_id.kind)
    assert world.out_of_scope[body_id.kind], "a body id of a record everyone sees"
    differences = []
    for role, outside in world.out_of_scope[body_id.kind].items():
        method, url, data = body_id.request(world, missing)
        none = _ask(world.viewers[role], method, url, missing, data)
        for pk in outside:
            method, url, data = body_id.request(world, pk)
            theirs = _ask(world.viewers[role], method, url, pk, data)
            if theirs != none:
                differences.append(f"{role} {pk}: outside {theirs} / missing {none}")
    assert not differences, "\n".join(differences)
    assert _snapshot(world) == before, "a request changed a record outside the scope"
    # The id is really read: the manager's own record answers differently from a missing one.
    manager = world.viewers["manager"]
    method, url, data = body_id.request(world, missing)
    none = _ask(manager, method, url, missing, data)
    mine = []
    for pk in world.in_scope[body_id.kind]["manager"]:
        method, url, data = body_id.request(world, pk)
        mine.append(_ask(manager, method, url, pk, data))
    assert any(answer != none for answer in mine), f"{case}: {none}"


# --- Malformed ids ---------------------------------------------------------------------------
#: Text that is no id: a word, a digit int() refuses, beyond 64 bits, negative, a fraction.
MALFORMED = ("abc", "\u00b2", "9" * 30, "-1", "1.5")


def _malformed_cases() -> list:
    cases = [(f"{name} ?{param}=", name) for name, params in QUERY_IDS.items() for param in params]
    cases += [(case, case) for case in BODY_IDS]
    return [pytest.param(case, name) for case, name in cases]


@pytest.mark.parametrize(("case", "route_name"), _malformed_cases())
def test_a_malformed_id_is_refused_with_a_reason_never_a_server_error(world, case, route_name):
    """Bad input is refused (a 400 naming the parameter) or matches nothing, never a 500."""
    client = Client(raise_request_exception=False)
    client.force_login(world.viewers["manager"])
    failures = []
    for raw in MALFORMED:
        if len(raw) > 19 and connection.vendor == "sqlite":
            # SQLite cannot bind an integer beyond 64 bits at all; PostgreSQL (production and
            # CI) compares it and finds nothing.
            continue
        if case in BODY_IDS:
            method, url, data = BODY_IDS[case].request(world, raw)  # type: ignore[arg-type]
        else:
            param = case.split("?", 1)[1].rstrip("=")
            method, url, data = "GET", _query_url(world, route_name, param, raw), None  # type: ignore[arg-type]
        call = getattr(client, method.lower())
        if url.startswith("/api/") and method != "GET":
            response = call(url, data=json.dumps(data), content_type="application/json")
        else:
            response = call(url, data=data) if data is not None else call(url)
        if response.status_code >= 500:
            failures.append(f"{raw!r}: {response.status_code}")
    assert failures == []
