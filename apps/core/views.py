from __future__ import annotations

import sys

from django.contrib.auth.decorators import login_not_required
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from apps.core.selectors import health_report, last_successful_run
from apps.org.selectors import user_profile
from apps.org.services import sessions_end_everywhere


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "core/home.html",
        {"profile": user_profile(user=request.user), "last_run": last_successful_run()},
    )


@require_POST
def logout_everywhere(request: HttpRequest) -> HttpResponse:
    sessions_end_everywhere(user=request.user, request=request)
    return redirect("login")


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and readiness: database, cache/broker and the last background run."""
    report = health_report()
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)


#: Seconds a client is asked to wait before retrying after a database outage.
RETRY_AFTER_SECONDS = 15


def server_error(request: HttpRequest) -> HttpResponse:
    """The project's 500 handler. A database outage (Postgres restarting or unreachable)
    is not a bug: it answers 503 "try again shortly", and the next request reconnects by
    itself (``conn_health_checks``). Rendered without the request context: the usual
    layout reads the user and the navigation, which may need the very database that
    failed."""
    error = sys.exc_info()[1]
    match = getattr(request, "resolver_match", None)
    if match is not None and match.url_name == "healthz":
        # The session lookup failed before the probe ran: the probe still reports.
        report = health_report()
        return JsonResponse(report.as_dict(), status=200 if report.ok else 503)
    if isinstance(error, (OperationalError, InterfaceError)):
        status = 503
        message = "The database is unavailable. Nothing was changed; try again shortly."
    else:
        status = 500
        message = "Something went wrong on our side. It has been logged; try again later."
    response: HttpResponse
    if request.path.startswith("/api/"):
        code = "unavailable" if status == 503 else "server_error"
        response = JsonResponse({"message": message, "code": code}, status=status)
    else:
        title = "Temporarily unavailable" if status == 503 else "Server error"
        body = render_to_string("error.html", {"title": title, "message": message})
        response = HttpResponse(body, status=status)
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
