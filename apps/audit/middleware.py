"""Records every refused request (HTTP 403) in the audit log: pages, exports and the API
alike, whichever layer refused it."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.audit.services import Action, audit_record


class AuditDenialsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 403:
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                audit_record(
                    action=Action.PERMISSION_DENIED,
                    summary=f"Refused {request.method} {request.path}"[:500],
                    request=request,
                )
        return response
