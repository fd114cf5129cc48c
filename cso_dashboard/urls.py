from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from apps.core import views as core_views

handler500 = "apps.core.views.server_error"

admin.site.site_header = "CSO Dashboard administration"
admin.site.site_title = "CSO Dashboard admin"

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("logout/everywhere/", core_views.logout_everywhere, name="logout_everywhere"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("apps.kpis.urls")),
    path("api/", include("apps.api.urls")),
    path("quotas/", include("apps.quotas.urls")),
    path("reviews/", include("apps.performance.urls")),
    path("imports/", include("apps.imports.urls")),
    path("dashboards/", include("apps.dashboards.urls")),
    path("forecast/", include("apps.forecasting.urls")),
    path("digests/", include("apps.digests.urls")),
    path("audit/", include("apps.audit.urls")),
]
