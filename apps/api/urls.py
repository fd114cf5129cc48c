"""API routes, included under /api/ by the project urls: the /api/v1/ resources, the
OpenAPI schema (/api/schema/) and its Swagger UI page (/api/docs/). ReDoc is left out on
purpose: its bundle fetches a logo from the vendor's CDN.

The resources and the schema answer anonymous callers themselves (JSON 401/403) rather
than with the login redirect, because API clients authenticate per request with a token,
which the login middleware does not see (DRF marks its views exempt from it). The
documentation page is for people in a browser and redirects to the login page.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from drf_spectacular.renderers import OpenApiYamlRenderer
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularSwaggerSplitView,
)
from rest_framework.renderers import JSONRenderer
from rest_framework.routers import DefaultRouter

from apps.api import views

app_name = "api"


class ApiRouter(DefaultRouter):
    include_format_suffixes = False


router = ApiRouter()
router.register("teams", views.TeamViewSet, basename="team")
router.register("users", views.UserViewSet, basename="user")
router.register("accounts", views.AccountViewSet, basename="account")
router.register("products", views.ProductViewSet, basename="product")
router.register("stages", views.StageViewSet, basename="stage")
router.register("opportunities", views.OpportunityViewSet, basename="opportunity")
router.register("quotas", views.QuotaViewSet, basename="quota")
router.register("reviews", views.ReviewViewSet, basename="review")
router.register("subscriptions", views.SubscriptionViewSet, basename="subscription")
router.register("nps-responses", views.NpsResponseViewSet, basename="nps-response")
router.register("import-jobs", views.ImportJobViewSet, basename="import-job")


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 document: JSON by default (so errors are JSON too), ?format=yaml."""

    renderer_classes = [JSONRenderer, OpenApiYamlRenderer]


class SwaggerView(SpectacularSwaggerSplitView):
    """Swagger UI from our static files; its start-up script is a separate request
    (?script), so the page has no inline script."""

    url_name = "api:schema"
    template_name = "api/swagger_ui.html"


urlpatterns = [
    path("v1/", include(router.urls)),
    # [\s\S], not ".": an encoded newline in the path must reach it too.
    re_path(r"^v1/(?P<unknown>[\s\S]+)$", views.UnknownEndpointView.as_view()),
    path("schema/", SchemaView.as_view(), name="schema"),
    # DRF exempts its views from the login middleware; these pages are for people in a
    # browser, so they send a visitor who is not signed in to the login page explicitly.
    path("docs/", login_required(SwaggerView.as_view()), name="docs"),
    path("token/", views.token_page, name="token"),
]
