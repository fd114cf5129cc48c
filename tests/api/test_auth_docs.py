"""Authentication (session, token), the schema and documentation pages, and throttling."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.api.helpers import assert_error_shape, client_for
from tests.factories import OpportunityFactory

pytestmark = pytest.mark.django_db


def test_anonymous_callers_get_a_json_refusal(org):
    for path in ("/api/v1/opportunities/", "/api/v1/accounts/1/", "/api/schema/"):
        assert_error_shape(APIClient().get(path), 403)


def test_a_wrong_token_is_refused_with_a_reason(org):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    body = assert_error_shape(client.get("/api/v1/opportunities/"), 403)
    assert body["message"] == "Invalid token."


def test_drf_create_token_gives_a_working_token(org, capsys):
    # given a token made with the management command
    call_command("drf_create_token", org.rep.username)
    key = Token.objects.get(user=org.rep).key
    assert key in capsys.readouterr().out
    deal = OpportunityFactory(owner=org.rep, stage=org.open_stage)
    # when the rep calls the API with it, then they see their deal
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert [r["id"] for r in client.get("/api/v1/opportunities/").json()["results"]] == [deal.pk]


def test_an_inactive_users_token_stops_working(org):
    client = client_for(org.rep)
    org.rep.is_active = False
    org.rep.save()
    body = assert_error_shape(client.get("/api/v1/opportunities/"), 403)
    assert body["message"] == "User inactive or deleted."


def test_a_browser_session_works_and_writes_need_the_csrf_token(org):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(org.executive)
    assert client.get("/api/v1/accounts/").status_code == 200
    response = client.post("/api/v1/products/", {"external_id": "P", "name": "P"}, format="json")
    body = assert_error_shape(response, 403)
    assert "CSRF" in body["message"]


def test_the_schema_is_openapi_3_and_lists_every_resource(org):
    response = client_for(org.rep).get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    for resource in (
        "teams",
        "users",
        "accounts",
        "products",
        "stages",
        "opportunities",
        "quotas",
        "reviews",
        "subscriptions",
        "nps-responses",
        "import-jobs",
        "kpis",
    ):
        assert f"/api/v1/{resource}/" in paths, resource
    assert "/api/v1/opportunities/{id}/history/" in paths
    assert "/api/v1/kpis/{name}/" in paths
    assert "/api/v1/opportunities/bulk/" in paths
    # every operation documents the JSON error shape for its 4xx answers
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"message", "extra"}
    get_deal = schema["paths"]["/api/v1/opportunities/{id}/"]["get"]["responses"]
    assert get_deal["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert (
        client_for(org.rep)
        .get("/api/schema/", {"format": "yaml"})
        .content.startswith(b"openapi: 3")
    )


def test_the_documentation_page_needs_a_login(client):
    response = client.get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_the_documentation_page_loads_only_local_assets_and_no_inline_script(client, org, settings):
    client.force_login(org.rep)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    # nothing from another host: every src/href is a path on this site
    urls = re.findall(r'(?:src|href|spec-url)="([^"]*)"', html)
    assert urls and all(u.startswith("/") for u in urls), urls
    assert "//" not in "".join(u[1:] for u in urls)
    # every script is an external file; no inline code or style (strict CSP)
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html and "style=" not in html
    # and every referenced asset is one of our static files
    for url in urls:
        if url.startswith(settings.STATIC_URL):
            assert finders.find(url.removeprefix(settings.STATIC_URL)), url


def test_the_swagger_start_script_is_served_separately(client, org):
    client.force_login(org.rep)
    response = client.get("/api/docs/", {"script": ""})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in response.content.decode()


def test_requests_over_the_rate_are_throttled_with_retry_after(org, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "3/minute", "bulk": "1/minute"},
    }
    client = client_for(org.rep)
    assert [client.get("/api/v1/stages/").status_code for _ in range(3)] == [200] * 3
    response = client.get("/api/v1/stages/")
    body = assert_error_shape(response, 429)
    assert "throttled" in body["message"].lower()
    assert int(response["Retry-After"]) > 0
    # another user has their own allowance
    assert client_for(org.peer).get("/api/v1/stages/").status_code == 200
    # bulk loads have their own, lower limit on top
    bulk = client_for(org.revops)
    rows = [{"external_id": "A-1", "name": "Alpha"}]
    assert bulk.post("/api/v1/accounts/bulk/", rows, format="json").status_code == 200
    assert_error_shape(bulk.post("/api/v1/accounts/bulk/", rows, format="json"), 429)
    assert bulk.get("/api/v1/accounts/").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/",
        "/api/v1/accounts/",
        "/api/v1/opportunities/",
        "/api/v1/quotas/",
        "/api/v1/reviews/",
        "/api/v1/users/",
        "/api/v1/import-jobs/",
    ],
)
def test_the_browsable_api_renders_for_a_signed_in_person(client, org, path):
    OpportunityFactory(owner=org.rep, stage=org.open_stage)
    client.force_login(org.executive)
    response = client.get(path, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
