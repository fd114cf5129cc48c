from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.audit.forms import AuditSearchForm
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_events
from apps.core.exports import download_response
from apps.org.policy import can_view_audit

PAGE_SIZE = 50
EXPORT_LIMIT = 100_000
EXPORT_HEADERS = ["At", "Action", "User", "Summary", "Target", "Target id", "Address", "Path"]


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """Search the audit log (executives); ``?format=csv|xlsx`` downloads the matches."""
    if not can_view_audit(request.user):
        raise PermissionDenied("Only executives may read the audit log.")
    form = AuditSearchForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    invalid = form.is_bound and not form.is_valid()
    events = AuditEvent.objects.none() if invalid else audit_events(**filters)
    file_format = request.GET.get("format")
    if file_format in ("csv", "xlsx") and not invalid:
        rows = (
            [
                e.at.isoformat(),
                e.get_action_display(),
                e.actor_username,
                e.summary,
                e.target_type,
                e.target_id,
                e.ip_address or "",
                e.path,
            ]
            for e in events[:EXPORT_LIMIT].iterator()
        )
        return download_response(
            filename="audit-log", file_format=file_format, headers=EXPORT_HEADERS, rows=rows
        )
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/index.html",
        {"form": form, "page": page, "query": query.urlencode(), "invalid": invalid},
    )
