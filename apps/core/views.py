from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.core.selectors import health_report, last_successful_run
from apps.org.selectors import user_profile


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "core/home.html",
        {"profile": user_profile(user=request.user), "last_run": last_successful_run()},
    )


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and readiness: database, cache/broker and the last background run."""
    report = health_report()
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)
