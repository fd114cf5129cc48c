"""KPI API routes, included under /api/v1/ by the project urls."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from apps.kpis.api import KpiDetailApi, KpiListApi

app_name = "kpis"

# The API answers anonymous callers itself (403 JSON) instead of the login redirect.
urlpatterns = [
    path("kpis/", login_not_required(KpiListApi.as_view()), name="kpi-list"),
    path("kpis/<slug:name>/", login_not_required(KpiDetailApi.as_view()), name="kpi-detail"),
]
