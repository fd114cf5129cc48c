"""Every route needs a login. The URL conf is walked at test time, so a route added later
is covered without touching this file."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, path, resolve, reverse
from django.utils.regex_helper import normalize

pytestmark = pytest.mark.django_db

#: Routes that must answer without a login, by URL name (namespaced).
#: A digest's one-click unsubscribe link works from the mail without a log-in: its
#: signature is the credential (docs/digests.md).
PUBLIC_ROUTE_NAMES = frozenset({"login", "healthz", "admin:login", "digests:unsubscribe"})

#: Values tried for a URL parameter, in order, until the URL matches its pattern.
SAMPLE_VALUES = ("1", "00000000-0000-0000-0000-000000000001", "sample", "2025-01-01", "a/b")


@dataclass(frozen=True)
class Route:
    regex: str
    route: str
    name: str | None
    lookup_str: str

    @property
    def label(self) -> str:
        return self.name or self.route


def _strip_anchor(regex: str) -> str:
    return regex.removeprefix("^")


def walk(
    resolver: URLResolver, prefix: str = "", route_prefix: str = "", namespace: str = ""
) -> list[Route]:
    """Every endpoint below ``resolver``, with its full regex and route, through every
    include (the route is spelled as ``ResolverMatch.route`` spells it)."""
    routes: list[Route] = []
    for entry in resolver.url_patterns:
        regex = prefix + _strip_anchor(entry.pattern.regex.pattern)
        route = route_prefix + _strip_anchor(str(entry.pattern))
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            routes.extend(walk(entry, regex, route, inner))
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name}" if entry.name else None
            routes.append(Route(regex=regex, route=route, name=name, lookup_str=entry.lookup_str))
    return routes


def _candidates_for(param: str, regex: str) -> list[str]:
    """Sample values for ``param``, starting with the alternatives the pattern lists."""
    group = re.search(rf"\(\?P<{re.escape(param)}>([^()]*)\)", regex)
    listed = (
        [alt for alt in group.group(1).split("|") if re.fullmatch(r"[\w-]+", alt)] if group else []
    )
    return [*listed, *SAMPLE_VALUES]


def sample_url(route: Route) -> str:
    """A concrete URL that the route's regex matches, or a test failure saying why not."""
    full = re.compile(route.regex)
    for template, params in normalize(route.regex):
        options = [_candidates_for(param, route.regex) for param in params]
        for values in itertools.product(*options):
            path = template % dict(zip(params, values, strict=True))
            if full.fullmatch(path):
                return "/" + path
    pytest.fail(f"cannot build a sample URL for {route.label} ({route.regex!r})")


def all_routes() -> list[Route]:
    return walk(get_resolver())


def protected_routes() -> list[Route]:
    static_prefix = settings.STATIC_URL.lstrip("/")
    return [
        route
        for route in all_routes()
        if route.name not in PUBLIC_ROUTE_NAMES and not route.regex.startswith(static_prefix)
    ]


def test_the_walk_finds_the_known_routes():
    # guards the walker: if it found nothing, the test below would pass vacuously
    names = {route.name for route in all_routes()}
    assert {"home", "healthz", "login", "logout", "admin:index"} <= names
    assert "admin:crm_opportunity_change" in names
    assert len(protected_routes()) > 50


def test_sample_urls_resolve_to_their_own_route():
    for route in protected_routes():
        url = sample_url(route)
        match = resolve(urlsplit(url).path)
        assert match.route == route.route, f"{url} resolved to {match.route}, not {route.route}"


def login_problem(client: Client, url: str) -> str | None:
    """Why an anonymous GET of ``url`` does not count as "login required", or None."""
    response = client.get(url)
    if response.status_code in (401, 403) and response.get("Content-Type", "").startswith(
        "application/json"
    ):
        # An API endpoint may refuse with a JSON 401/403 instead of a redirect: still no data.
        return None
    if response.status_code != 302:
        return f"{url} answered {response.status_code} without login"
    location = urlsplit(response["Location"]).path
    if location not in (reverse("login"), reverse("admin:login")):
        return f"{url} redirected to {location}, not a login page"
    return None


@pytest.mark.parametrize("route", protected_routes(), ids=lambda r: r.label)
def test_anonymous_get_is_sent_to_a_login_page(client, route):
    assert login_problem(client, sample_url(route)) is None


def _leaky_view(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    return HttpResponse("pipeline figures")


class LeakyUrlconf:
    """A URL conf (any object with ``urlpatterns`` will do) with a public view by mistake."""

    urlpatterns = [
        path("login/", LoginView.as_view(), name="login"),
        path("reports/<int:pk>/<slug:kind>/", login_not_required(_leaky_view), name="leak"),
        path("admin/", admin.site.urls),
    ]


@override_settings(ROOT_URLCONF=LeakyUrlconf)
def test_a_route_added_without_login_is_caught(client):
    # given a URL conf where someone added a view marked as public by mistake
    (route,) = [r for r in protected_routes() if r.name == "leak"]
    # when the same walk and check run over it, then the leak is reported
    assert sample_url(route) == "/reports/1/1/"
    assert login_problem(client, sample_url(route)) == "/reports/1/1/ answered 200 without login"


@pytest.mark.parametrize("name", sorted(PUBLIC_ROUTE_NAMES))
def test_public_routes_answer_without_login(client, name):
    route = next(r for r in all_routes() if r.name == name)
    response = client.get(sample_url(route))
    # 400: the unsubscribe link's sample token is not validly signed (and changes nothing)
    assert response.status_code in (200, 400, 503), f"{name} answered {response.status_code}"
