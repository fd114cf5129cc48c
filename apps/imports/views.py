"""The import wizard: upload, map columns, map values, preview (every error), commit.

Thin views: parse the form, check permission (apps.org.policy.can_import), call a selector
or a service, render. Large files are committed by a Celery task; the job page polls
``progress`` (static/js/imports.js).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from types import SimpleNamespace
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from apps.core.errors import ApplicationError
from apps.core.exports import download_response
from apps.imports.forms import ColumnsForm, SaveMappingForm, UploadForm, ValuesForm
from apps.imports.mapping import MappingError
from apps.imports.models import ImportJob, SavedMapping
from apps.imports.parsers import FileProblem
from apps.imports.schema import KINDS
from apps.imports.selectors import (
    import_jobs_recent,
    preview_fields,
    preview_rows,
    saved_mappings,
    value_fields,
)
from apps.imports.services import (
    import_job_commit,
    import_job_create,
    import_job_preview,
    import_job_preview_request,
    import_job_preview_stored,
    import_job_progress,
    import_job_set_mapping,
    job_mapping,
    saved_mapping_save,
    task_row_threshold,
)
from apps.org.policy import can_import

#: How many errors the preview page lists (all of them are in the CSV download).
SHOWN_ERRORS = 500
STEPS = ("Upload", "Columns", "Values", "Preview", "Import")


def importer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_import(request.user):
            raise PermissionDenied("Only RevOps admins and executives may import data.")
        return view(request, *args, **kwargs)

    return wrapper


def _draft(pk: int) -> ImportJob:
    return get_object_or_404(ImportJob, pk=pk)


def _context(job: ImportJob | None, step: int, **extra: Any) -> dict[str, Any]:
    return {"job": job, "steps": STEPS, "step": step, "kinds": KINDS, **extra}


def _not_draft(request: HttpRequest, job: ImportJob) -> HttpResponse | None:
    if job.status != ImportJob.Status.DRAFT:
        messages.info(request, "This import has been started; here is where it stands.")
        return redirect("imports:job", pk=job.pk)
    return None


@importer_required
@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = import_job_create(
                kind=form.cleaned_data["kind"],
                file_name=upload.name,
                data=upload.read(),
                user=request.user,
                mapping=form.cleaned_data.get("mapping"),
            )
        except ApplicationError as exc:
            form.add_error("file", exc.message)
        else:
            return redirect("imports:columns", pk=job.pk)
    context = _context(None, 0, form=form, jobs=import_jobs_recent(), mappings=saved_mappings())
    return render(request, "imports/index.html", context, status=400 if form.errors else 200)


@importer_required
@require_http_methods(["GET", "POST"])
def columns(request: HttpRequest, pk: int) -> HttpResponse:
    job = _draft(pk)
    if (moved := _not_draft(request, job)) is not None:
        return moved
    mapping = job_mapping(job)
    form = ColumnsForm(request.POST or None, kind=job.kind, headers=job.headers, mapping=mapping)
    if request.method == "POST" and form.is_valid():
        try:
            import_job_set_mapping(job=job, mapping=form.cleaned_data["mapping"], user=request.user)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("imports:values", pk=job.pk)
    return render(
        request,
        "imports/columns.html",
        _context(job, 1, form=form),
        status=400 if form.errors else 200,
    )


@importer_required
@require_http_methods(["GET", "POST"])
def values(request: HttpRequest, pk: int) -> HttpResponse:
    job = _draft(pk)
    if (moved := _not_draft(request, job)) is not None:
        return moved
    mapping = job_mapping(job)
    try:
        fields = value_fields(job, mapping)
    except FileProblem as exc:
        messages.error(request, exc.message)
        return redirect("imports:columns", pk=job.pk)
    form = ValuesForm(request.POST or None, fields=fields, mapping=mapping)
    if request.method == "POST" and form.is_valid():
        try:
            import_job_set_mapping(job=job, mapping=form.cleaned_data["mapping"], user=request.user)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("imports:preview", pk=job.pk)
    return render(request, "imports/values.html", _context(job, 2, form=form))


@importer_required
@require_http_methods(["GET", "POST"])
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    job = _draft(pk)
    if (moved := _not_draft(request, job)) is not None:
        return moved
    save_form = SaveMappingForm(request.POST if "save_mapping" in request.POST else None)
    if request.method == "POST" and "commit" in request.POST:
        try:
            job = import_job_commit(job=job, user=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return redirect("imports:job", pk=job.pk)
    if request.method == "POST" and save_form.is_valid():
        try:
            saved = saved_mapping_save(
                name=save_form.cleaned_data["name"], mapping=job_mapping(job), owner=request.user
            )
        except (ApplicationError, MappingError) as exc:
            save_form.add_error("name", getattr(exc, "message", str(exc)))
        else:
            messages.success(request, f"Mapping saved as “{saved.name}”.")
            return redirect("imports:preview", pk=job.pk)
    mapping = job_mapping(job)
    large = job.row_count > task_row_threshold()
    if large:
        # Too large to check in a request: a task dry-runs it and the page waits for it.
        stored = import_job_preview_stored(job)
        if stored is None:
            import_job_preview_request(job=job, user=request.user)
            return render(
                request,
                "imports/preview_pending.html",
                _context(job, 3, progress=import_job_progress(job)),
            )
        report: Any = SimpleNamespace(**stored)
        errors = [SimpleNamespace(**e) for e in stored["errors"][:SHOWN_ERRORS]]
        error_count = stored["error_count"]
    else:
        report = import_job_preview(job=job, user=request.user)
        errors, error_count = report.errors[:SHOWN_ERRORS], len(report.errors)
    context = _context(
        job,
        3,
        report=report,
        errors=errors,
        error_count=error_count,
        more_errors=max(error_count - len(errors), 0),
        rows=preview_rows(job, mapping),
        field_names=preview_fields(job, mapping),
        save_form=save_form,
        runs_as_task=large,
    )
    return render(request, "imports/preview.html", context)


@importer_required
@require_GET
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ImportJob.objects.defer("file_data"), pk=pk)
    context = _context(job, 4, progress=import_job_progress(job), errors=job.errors[:SHOWN_ERRORS])
    return render(request, "imports/job.html", context)


@importer_required
@require_GET
def job_progress(request: HttpRequest, pk: int) -> JsonResponse:
    job = get_object_or_404(ImportJob.objects.defer("file_data", "errors"), pk=pk)
    return JsonResponse(import_job_progress(job))


@importer_required
@require_GET
def job_errors_csv(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ImportJob.objects.defer("file_data"), pk=pk)
    if job.status == ImportJob.Status.DRAFT and job.row_count > task_row_threshold():
        stored = import_job_preview_stored(job)
        errors = stored["errors"] if stored else []
    elif job.status == ImportJob.Status.DRAFT:
        errors = [e.as_dict() for e in import_job_preview(job=job, user=request.user).errors]
    else:
        errors = job.errors
    return download_response(
        filename=f"import-{job.pk}-errors",
        file_format="csv",
        headers=["line", "field", "message"],
        rows=([e["line"], e["field"] or "", e["message"]] for e in errors),
    )


def _json_download(document: dict[str, Any], filename: str) -> HttpResponse:
    import json

    response = HttpResponse(
        json.dumps(document, indent=2, ensure_ascii=False), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.json"'
    return response


@importer_required
@require_GET
def job_mapping_download(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ImportJob.objects.defer("file_data"), pk=pk)
    return _json_download(job_mapping(job).as_dict(), f"import-{job.pk}-mapping")


@importer_required
@require_GET
def mapping_download(request: HttpRequest, pk: int) -> HttpResponse:
    saved = get_object_or_404(SavedMapping, pk=pk)
    safe_name = "".join(c if c.isalnum() or c in "-_" else "-" for c in saved.name)[:60]
    return _json_download(saved.document, f"mapping-{saved.kind}-{safe_name}")
