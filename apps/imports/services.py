"""Imports: the one entry point for CLI, wizard, Celery task and API.

:func:`rows_import` (rows already read, e.g. from the API) and :func:`file_import` (a CSV or
XLSX file) both validate every row first, collecting every error with its line, and write
only when there is none, in one transaction: one bad row means nothing is written.
Records are upserted by external id or natural key, so importing the same file twice
creates nothing new. Deal changes write opportunity history like apps.crm.services does.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.audit.services import Action, audit_record
from apps.core.errors import ApplicationError
from apps.core.services import job_run_record
from apps.imports.mapping import ImportMapping, MappingError, identity_mapping, suggest_columns
from apps.imports.models import ImportJob, SavedMapping
from apps.imports.parsers import FileProblem, ParsedFile, detect_type, parse_file
from apps.imports.schema import KINDS
from apps.imports.sqlload import new_deals_load
from apps.imports.validation import RowError, read_records
from apps.imports.writers import PLANNERS, Context
from apps.org.policy import can_import

#: Uploads larger than this are refused (bytes); settings.IMPORT_MAX_UPLOAD_BYTES overrides.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
#: Files with more data rows than this are committed by a Celery task, not in the request;
#: settings.IMPORT_TASK_ROW_THRESHOLD overrides.
TASK_ROW_THRESHOLD = 5000
#: How many errors an ImportJob keeps for the wizard (error_count has the full number).
MAX_STORED_ERRORS = 5000
SOURCES = ("import", "api")
#: A queued job not running after this long (seconds) is queued again by the recovery
#: sweep (its message was lost, e.g. Redis restarted without persistence);
#: settings.IMPORTS_RECOVER_AFTER_SECONDS overrides.
RECOVER_AFTER_SECONDS = 15 * 60
#: Names the per-job Postgres advisory locks (the job id is the lock's second key).
JOB_LOCK_CLASS = 7_231_004

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ImportReport:
    """What an import did, or would do (``dry_run``), or why it wrote nothing (``ok``
    false: ``errors`` lists every bad row, and the counts say what the file would do)."""

    ok: bool
    created: int
    updated: int
    unchanged: int
    errors: list[RowError] = field(default_factory=list)
    kind: str = ""
    rows: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "kind": self.kind,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": [e.as_dict() for e in self.errors],
        }


def max_upload_bytes() -> int:
    return int(getattr(settings, "IMPORT_MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES))


def task_row_threshold() -> int:
    return int(getattr(settings, "IMPORT_TASK_ROW_THRESHOLD", TASK_ROW_THRESHOLD))


def _check_call(kind: str, user: Any, source: str) -> None:
    if kind not in KINDS:
        raise ApplicationError(f"Unknown import kind {kind!r}.", extra={"known": list(KINDS)})
    if source not in SOURCES:
        raise ApplicationError(f"Unknown import source {source!r}; use import or api.")
    if not can_import(user):
        raise ApplicationError(
            "Only RevOps admins and executives may import data.", extra={"code": "forbidden"}
        )


def _failed(
    kind: str, errors: list[RowError], *, rows: int = 0, dry_run: bool = False
) -> ImportReport:
    return ImportReport(
        ok=False,
        created=0,
        updated=0,
        unchanged=0,
        errors=errors,
        kind=kind,
        rows=rows,
        dry_run=dry_run,
    )


def _run(
    *,
    kind: str,
    headers: list[str],
    rows: Iterable[tuple[int, Any]],
    mapping: ImportMapping,
    user: Any,
    source: str,
    dry_run: bool,
    empty_line: int,
    progress: Progress | None = None,
    total: int = 0,
    opportunity_path: str | None = None,
) -> ImportReport:
    """Validate everything, then write everything or nothing (one transaction)."""

    def tick(done: int) -> None:
        if progress is not None:
            progress("reading", done, total)

    with transaction.atomic():
        try:
            read = read_records(headers, rows, mapping, progress=tick)
        except FileProblem as exc:
            return _failed(kind, [RowError(exc.line, None, exc.message)], dry_run=dry_run)
        if read.rows_seen == 0 and not read.errors:
            read.errors.append(RowError(empty_line, None, "no data rows: there is only a header."))
        if read.rows_seen == 0:
            return _failed(kind, read.errors, rows=read.rows_seen, dry_run=dry_run)
        if progress is not None:
            progress("checking", read.rows_seen, read.rows_seen)
        ctx = Context(
            mapping=mapping,
            user=user,
            source=source,
            now=timezone.now(),
            present=read.present,
            dry_run=dry_run,
            opportunity_path=opportunity_path,
        )
        plan = PLANNERS[kind](read.records, ctx)
        errors = sorted([*read.errors, *ctx.errors], key=lambda e: (e.line, e.field or ""))
        counts: dict[str, Any] = {
            "created": plan.created,
            "updated": plan.updated,
            "unchanged": plan.unchanged,
        }
        if errors:
            return ImportReport(
                ok=False, errors=errors, kind=kind, rows=read.rows_seen, dry_run=dry_run, **counts
            )
        if dry_run:
            return ImportReport(ok=True, kind=kind, rows=read.rows_seen, dry_run=True, **counts)
        if progress is not None:
            progress("writing", read.rows_seen, read.rows_seen)
        try:
            with transaction.atomic():
                plan.write()
        except IntegrityError as exc:
            # A conflict validation cannot see (e.g. two stages swapping their order, or a
            # concurrent writer): report it rather than fail, and write nothing.
            transaction.set_rollback(True)
            message = f"the database refused the import: {str(exc).strip().splitlines()[0]}"
            return _failed(kind, [RowError(0, None, message)], rows=read.rows_seen)
        if ctx.errors:
            # A service refused a row at write time (e.g. a locked quota plan): undo it all.
            transaction.set_rollback(True)
            errors = sorted(ctx.errors, key=lambda e: (e.line, e.field or ""))
            return ImportReport(ok=False, errors=errors, kind=kind, rows=read.rows_seen, **counts)
        _audit_import(kind=kind, source=source, user=user, rows=read.rows_seen, counts=counts)
    return ImportReport(ok=True, kind=kind, rows=read.rows_seen, **counts)


def _audit_import(*, kind: str, source: str, user: Any, rows: int, counts: dict[str, Any]) -> None:
    audit_record(
        action=Action.IMPORT,
        summary=f"Imported {rows} {kind} row(s) "
        f"{'through the API' if source == 'api' else 'from a file'}: "
        f"{counts['created']} created, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged",
        actor=user if getattr(user, "is_authenticated", False) else None,
        detail={"kind": kind, "source": source, **counts},
    )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an import runs.

    An import holds a few million small dicts and values at once (one record and one
    planned change per row). Each time enough of them have been allocated the collector
    walks every live container again: over a third of the Python time of reading and
    checking (11.0 s -> 6.3 s for 200,000 deals, measured back to back with the bench
    file of bench/imports_copy.py). The import's own objects form no
    cycles (they are freed by reference counting), so pausing loses nothing; whatever
    else made garbage cycles meanwhile is collected once the collector is back on. It is
    turned back on once ``_run`` has returned and its millions of objects are freed:
    otherwise the first collection would walk them all. Nested or concurrent imports
    leave it as the outermost one found it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def rows_import(
    *,
    kind: str,
    rows: Iterable[Mapping[str, Any]],
    user: Any,
    mapping: ImportMapping | None = None,
    source: str = "import",
    dry_run: bool = False,
    first_line: int = 1,
    opportunity_path: str | None = None,
) -> ImportReport:
    """Import ``rows`` (field name -> value; strings from a file or JSON values) of one kind.

    Error lines are positions in ``rows`` counted from ``first_line`` (1: the first row).
    Raises :class:`ApplicationError` only for a bad call (unknown kind, no permission);
    bad data goes into the report, and then nothing is written.
    """
    _check_call(kind, user, source)
    mapping = mapping or identity_mapping(kind)
    if mapping.kind != kind:
        raise ApplicationError(f"The mapping is for {mapping.kind}, not {kind}.")
    materialised = list(rows)
    headers: list[str] = []
    seen: set[str] = set()
    for row in materialised:
        if not isinstance(row, Mapping):
            continue
        for key in row:
            if key not in seen:
                seen.add(key)
                headers.append(str(key))
    numbered: list[tuple[int, Any]] = []
    errors: list[RowError] = []
    for line, row in enumerate(materialised, start=first_line):
        if not isinstance(row, Mapping):
            errors.append(RowError(line, None, "each row must be an object of field -> value."))
            continue
        numbered.append((line, [row.get(h) for h in headers]))
    if errors:
        return _failed(kind, errors, rows=len(materialised), dry_run=dry_run)
    if not headers:
        return _failed(kind, [RowError(first_line, None, "no rows to import.")], dry_run=dry_run)
    with _cyclic_gc_paused():
        return _run(
            kind=kind,
            headers=headers,
            rows=numbered,
            mapping=mapping,
            user=user,
            source=source,
            dry_run=dry_run,
            empty_line=first_line,
            opportunity_path=opportunity_path,
        )


def file_import(
    *,
    kind: str,
    data: bytes,
    filename: str,
    user: Any,
    mapping: ImportMapping | None = None,
    source: str = "import",
    dry_run: bool = False,
    progress: Progress | None = None,
    opportunity_path: str | None = None,
) -> ImportReport:
    """Import a whole CSV or XLSX file; lines in errors are file lines (header = 1).

    A large CSV file of new deals on PostgreSQL is first offered to the set-based load
    (apps.imports.sqlload), which writes the same rows; whatever it cannot vouch for (a
    bad or unusual cell, stored deals to update) it leaves untouched for the row-by-row
    import below, which reports every bad row."""
    _check_call(kind, user, source)
    mapping = mapping or identity_mapping(kind)
    if mapping.kind != kind:
        raise ApplicationError(f"The mapping is for {mapping.kind}, not {kind}.")
    if kind == "opportunities" and not dry_run and opportunity_path is None:
        with _cyclic_gc_paused(), transaction.atomic():
            loaded = new_deals_load(
                data=data,
                filename=filename,
                mapping=mapping,
                user=user,
                source=source,
                progress=progress,
            )
            if loaded is not None:
                counts = {"created": loaded.rows, "updated": 0, "unchanged": 0}
                _audit_import(kind=kind, source=source, user=user, rows=loaded.rows, counts=counts)
                return ImportReport(
                    ok=True,
                    created=loaded.rows,
                    updated=0,
                    unchanged=0,
                    kind=kind,
                    rows=loaded.rows,
                )
    try:
        parsed = parse_file(data, filename=filename, encoding=mapping.encoding, sheet=mapping.sheet)
    except FileProblem as exc:
        return _failed(kind, [RowError(exc.line, None, exc.message)], dry_run=dry_run)
    with _cyclic_gc_paused():
        return _run(
            kind=kind,
            headers=parsed.headers,
            rows=parsed.rows,
            mapping=mapping,
            user=user,
            source=source,
            dry_run=dry_run,
            empty_line=2,
            progress=progress,
            total=parsed.estimated_rows,
            opportunity_path=opportunity_path,
        )


# --- wizard jobs --------------------------------------------------------------------------
def _parse_job_file(job: ImportJob, mapping: ImportMapping) -> ParsedFile:
    return parse_file(
        bytes(job.file_data), filename=job.file_name, encoding=mapping.encoding, sheet=mapping.sheet
    )


def job_mapping(job: ImportJob) -> ImportMapping:
    from apps.imports.mapping import mapping_from_dict

    if not job.mapping:
        return identity_mapping(job.kind)
    return mapping_from_dict(job.mapping, kind=job.kind)


@transaction.atomic
def import_job_create(
    *, kind: str, file_name: str, data: bytes, user: Any, mapping: ImportMapping | None = None
) -> ImportJob:
    """Store an upload as a draft job, with its header and suggested column mapping.
    A file too large, of the wrong type, unreadable or empty is refused (nothing saved)."""
    _check_call(kind, user, "import")
    limit = max_upload_bytes()
    if len(data) > limit:
        raise ApplicationError(
            f"The file is {len(data) / 1_048_576:.1f} MB; the limit is {limit / 1_048_576:.0f} MB."
        )
    if mapping is not None and mapping.kind != kind:
        raise ApplicationError(f"The mapping is for {mapping.kind}, not {kind}.")
    try:
        file_type = detect_type(data, file_name)
        parsed = parse_file(
            data,
            filename=file_name,
            encoding=mapping.encoding if mapping else "utf-8",
            sheet=mapping.sheet if mapping else "",
        )
        rows = sum(1 for _ in parsed.rows)
    except FileProblem as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise ApplicationError(f"{file_name}: {exc.message}{where}") from None
    if mapping is None:
        mapping = identity_mapping(kind).replace(columns=suggest_columns(kind, parsed.headers))
    return ImportJob.objects.create(
        kind=kind,
        file_name=file_name[:255],
        file_type=file_type,
        file_size=len(data),
        file_data=data,
        uploaded_by=user,
        mapping=mapping.as_dict(),
        headers=parsed.headers,
        row_count=rows,
    )


def import_job_set_mapping(*, job: ImportJob, mapping: ImportMapping, user: Any) -> ImportJob:
    """Replace a draft job's mapping (after checking that its file reads with it)."""
    _check_call(job.kind, user, "import")
    if job.status != ImportJob.Status.DRAFT:
        raise ApplicationError("This import has already been started; upload the file again.")
    if mapping.kind != job.kind:
        raise ApplicationError(f"The mapping is for {mapping.kind}, not {job.kind}.")
    try:
        parsed = _parse_job_file(job, mapping)
        rows = sum(1 for _ in parsed.rows)
    except FileProblem as exc:
        raise ApplicationError(exc.message) from None
    ImportJob.objects.filter(pk=job.pk).update(
        mapping=mapping.as_dict(), headers=parsed.headers, row_count=rows
    )
    job.refresh_from_db()
    return job


def import_job_preview(*, job: ImportJob, user: Any) -> ImportReport:
    """A dry run of the job's file with its current mapping (writes nothing)."""
    mapping = job_mapping(job)
    return file_import(
        kind=job.kind,
        data=bytes(job.file_data),
        filename=job.file_name,
        user=user,
        mapping=mapping,
        dry_run=True,
    )


def import_job_preview_stored(job: ImportJob) -> dict[str, Any] | None:
    """The stored dry run of a large job, if it was made with the job's current mapping."""
    if job.preview_report and job.preview_mapping == job_mapping(job).as_dict():
        return job.preview_report
    return None


def _checking_key(job_id: int) -> str:
    return f"imports:checking:{job_id}"


def import_job_preview_request(*, job: ImportJob, user: Any) -> bool:
    """Queue the dry run of a large draft job (once per mapping; the page polls
    ``progress`` until ``preview_ready``). Returns True when a run was queued."""
    from apps.imports.tasks import import_job_check_task

    _check_call(job.kind, user, "import")
    # One queued check at a time per job; the guard expires so a lost task is retried.
    if not cache.add(_checking_key(job.pk), "1", timeout=600):
        return False
    options: dict[str, Any] = {}
    queue = getattr(settings, "IMPORTS_TASK_QUEUE", None)
    if queue:
        options["queue"] = queue
    transaction.on_commit(lambda: import_job_check_task.apply_async((job.pk,), **options))
    return True


def import_job_check(*, job_id: int) -> ImportJob:
    """Dry-run a draft job's file with its current mapping and store the report (the
    Celery path of the preview step, for files too large to check in a request)."""
    job = ImportJob.objects.select_related("uploaded_by").get(pk=job_id)
    if job.status != ImportJob.Status.DRAFT or import_job_preview_stored(job) is not None:
        cache.delete(_checking_key(job.pk))
        return job
    mapping = job_mapping(job)
    key = progress_key(job.pk)

    def progress(phase: str, done: int, total: int) -> None:
        percent = min(95, int(95 * done / max(total, 1))) if phase == "reading" else 97
        cache.set(key, {"percent": percent, "phase": f"checking ({phase})"}, timeout=3600)

    try:
        report = file_import(
            kind=job.kind,
            data=bytes(job.file_data),
            filename=job.file_name,
            user=job.uploaded_by,
            mapping=mapping,
            dry_run=True,
            progress=progress,
        )
    finally:
        cache.delete(key)
        cache.delete(_checking_key(job.pk))
    stored = {
        **report.as_dict(),
        "errors": [e.as_dict() for e in report.errors[:MAX_STORED_ERRORS]],
        "error_count": len(report.errors),
    }
    ImportJob.objects.filter(pk=job.pk).update(
        preview_report=stored, preview_mapping=mapping.as_dict()
    )
    job.refresh_from_db()
    return job


def import_job_commit(*, job: ImportJob, user: Any) -> ImportJob:
    """Commit a draft job: in this request for small files, or queued for the Celery task
    (the page then polls its progress) above the row threshold."""
    _check_call(job.kind, user, "import")
    with transaction.atomic():
        claimed = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.DRAFT).update(
            status=ImportJob.Status.QUEUED, progress=0, queued_at=timezone.now()
        )
        if not claimed:
            raise ApplicationError("This import has already been started.")
        if job.row_count > task_row_threshold():
            # robust: the job is committed as queued; if the broker is away the recovery
            # sweep queues it again, so the request does not fail.
            transaction.on_commit(lambda: _enqueue(job.pk), robust=True)
            job.refresh_from_db()
            return job
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def _enqueue(job_id: int) -> None:
    from apps.imports.tasks import import_job_run_task

    options: dict[str, Any] = {}
    queue = getattr(settings, "IMPORTS_TASK_QUEUE", None)
    if queue:
        options["queue"] = queue
    import_job_run_task.apply_async((job_id,), **options)


@contextmanager
def _job_claimed(job_id: int) -> Iterator[bool]:
    """Whether this process holds job ``job_id`` for running, for the ``with`` block.

    On Postgres a session advisory lock per job: a redelivered or re-queued task finds the
    job held by the run in progress and leaves it alone, and the lock goes with the
    connection if the worker dies. SQLite (the embedded default, one process) needs none.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [JOB_LOCK_CLASS, job_id])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [JOB_LOCK_CLASS, job_id])


def import_jobs_recover(*, now: datetime | None = None) -> list[int]:
    """Queue again the committed jobs that no worker is running and that have waited
    longer than ``IMPORTS_RECOVER_AFTER_SECONDS`` since they were queued: their task was
    lost (a broker without persistence restarted, or the message expired). Returns their
    ids. Safe to run at any time: a job being run holds its lock and is skipped, and a
    duplicate message finds the job finished or held and does nothing."""
    now = now or timezone.now()
    wait = timedelta(
        seconds=getattr(settings, "IMPORTS_RECOVER_AFTER_SECONDS", RECOVER_AFTER_SECONDS)
    )
    waiting = ImportJob.objects.filter(
        status__in=[ImportJob.Status.QUEUED, ImportJob.Status.VALIDATING],
        queued_at__lt=now - wait,
    ).values_list("pk", flat=True)
    recovered = []
    for job_id in waiting:
        with _job_claimed(job_id) as free:
            if not free:
                continue  # a worker is running it right now
            ImportJob.objects.filter(pk=job_id).update(
                status=ImportJob.Status.QUEUED, queued_at=now
            )
        recovered.append(job_id)
        transaction.on_commit(functools.partial(_enqueue, job_id))
    return recovered


def progress_key(job_id: int) -> str:
    return f"imports:progress:{job_id}"


def import_job_progress(job: ImportJob) -> dict[str, Any]:
    """The job's progress for the page: live figures from the cache while it runs (the
    import's own transaction hides its row until the end), else the stored row."""
    live = cache.get(progress_key(job.pk)) if not job.is_finished else None
    percent = job.progress if live is None else live["percent"]
    return {
        "id": job.pk,
        "status": job.status,
        "finished": job.is_finished,
        "percent": 100 if job.is_finished else percent,
        "phase": live["phase"] if live else job.get_status_display(),
        "rows": job.row_count,
        "created": job.created,
        "updated": job.updated,
        "unchanged": job.unchanged,
        "error_count": job.error_count,
        "preview_ready": job.status == ImportJob.Status.DRAFT
        and import_job_preview_stored(job) is not None,
    }


def import_job_run(*, job_id: int, opportunity_path: str | None = None) -> ImportJob:
    """Run a queued job (the Celery task's one call). Safe to run twice, even at once: a
    committed or failed job is left alone, a job another process is running is left to
    it, and a run cut short left nothing behind (one transaction)."""
    with _job_claimed(job_id) as held:
        job = ImportJob.objects.select_related("uploaded_by").get(pk=job_id)
        if not held or job.is_finished:
            return job
        return _job_run(job, opportunity_path)


def _job_run(job: ImportJob, opportunity_path: str | None) -> ImportJob:
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.VALIDATING)
    key = progress_key(job.pk)
    last = {"percent": -1}

    def progress(phase: str, done: int, total: int) -> None:
        # Reading is most of the work; checking and writing share the last fifth.
        if phase == "reading":
            percent = min(79, int(79 * done / max(total, 1)))
        else:
            percent = {"checking": 80, "writing": 90}.get(phase, 99)
        if percent != last["percent"]:
            last["percent"] = percent
            cache.set(key, {"percent": percent, "phase": phase}, timeout=3600)

    with job_run_record(kind="imports.file_import") as run:
        try:
            mapping = job_mapping(job)
            report = file_import(
                kind=job.kind,
                data=bytes(job.file_data),
                filename=job.file_name,
                user=job.uploaded_by,
                mapping=mapping,
                progress=progress,
                opportunity_path=opportunity_path,
            )
        except (ApplicationError, MappingError) as exc:
            message = getattr(exc, "message", str(exc))
            report = _failed(job.kind, [RowError(0, None, message)])
        run.rows = report.created + report.updated
        run.detail = {
            "job": job.pk,
            "kind": job.kind,
            "ok": report.ok,
            "errors": len(report.errors),
        }
    _store_report(job, report)
    cache.delete(key)
    job.refresh_from_db()
    return job


def _store_report(job: ImportJob, report: ImportReport) -> None:
    values: dict[str, Any] = {
        "status": ImportJob.Status.COMMITTED if report.ok else ImportJob.Status.FAILED,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "error_count": len(report.errors),
        "errors": [e.as_dict() for e in report.errors[:MAX_STORED_ERRORS]],
        "progress": 100,
        "finished_at": timezone.now(),
    }
    if report.ok:
        values["file_data"] = b""  # the data now lives in the tables; keep no copy
    ImportJob.objects.filter(pk=job.pk).update(**values)


@transaction.atomic
def saved_mapping_save(*, name: str, mapping: ImportMapping, owner: Any) -> SavedMapping:
    """Save (or replace) a named mapping for its kind."""
    name = name.strip()
    if not name:
        raise ApplicationError("Give the mapping a name.")
    if len(name) > 120:
        raise ApplicationError("A mapping name has at most 120 characters.")
    if not can_import(owner):
        raise ApplicationError("Only RevOps admins and executives may save import mappings.")
    saved, _ = SavedMapping.objects.update_or_create(
        kind=mapping.kind, name=name, defaults={"document": mapping.as_dict(), "owner": owner}
    )
    return saved


__all__ = [
    "ImportReport",
    "RowError",
    "file_import",
    "import_job_commit",
    "import_job_create",
    "import_job_run",
    "rows_import",
    "saved_mapping_save",
]
