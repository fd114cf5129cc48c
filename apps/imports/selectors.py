"""Reads for the import wizard: a job's distinct source values and its first rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from apps.crm.models import Product, Stage
from apps.imports.mapping import ImportMapping
from apps.imports.models import ImportJob, SavedMapping
from apps.imports.parsers import RowShapeError, parse_file
from apps.imports.schema import KINDS
from apps.imports.validation import resolve_columns, to_text
from apps.org.models import Region, Team

#: At most this many distinct values per field are offered for value mapping.
MAX_DISTINCT_VALUES = 100
#: Reference targets small enough to offer as a pick list when mapping values.
PICKABLE_REFS = {
    "stage": lambda: list(Stage.objects.order_by("order").values_list("name", flat=True)),
    "product": lambda: list(Product.objects.order_by("name").values_list("name", flat=True)),
    "region": lambda: list(Region.objects.order_by("code").values_list("code", flat=True)),
    "team": lambda: list(Team.objects.order_by("name").values_list("name", flat=True)),
}


def import_jobs_recent(*, limit: int = 20) -> QuerySet[ImportJob]:
    return (
        ImportJob.objects.select_related("uploaded_by")
        .defer("file_data", "errors")
        .order_by("-created_at", "-id")[:limit]
    )


def saved_mappings(*, kind: str | None = None) -> QuerySet[SavedMapping]:
    queryset = SavedMapping.objects.select_related("owner").order_by("kind", "name")
    return queryset.filter(kind=kind) if kind else queryset


@dataclass(frozen=True)
class ValueField:
    """One mapped enum or reference field: the distinct source values and our targets
    (``targets`` empty: the value is typed, e.g. an account or a person)."""

    name: str
    label: str
    column: str
    values: list[tuple[str, int]]  # (source value, rows) in order of first appearance
    targets: list[str]
    truncated: bool


def _rows(job: ImportJob, mapping: ImportMapping):
    parsed = parse_file(
        bytes(job.file_data), filename=job.file_name, encoding=mapping.encoding, sheet=mapping.sheet
    )
    return parsed.headers, parsed.rows


def value_fields(job: ImportJob, mapping: ImportMapping) -> list[ValueField]:
    """Every distinct source value of each mapped enum/reference field, shown once."""
    spec = KINDS[job.kind]
    headers, rows = _rows(job, mapping)
    columns, _ = resolve_columns(headers, mapping)
    wanted = [n for n in spec.value_mapped if n in columns]
    seen: dict[str, dict[str, int]] = {n: {} for n in wanted}
    truncated: set[str] = set()
    for _line, cells in rows:
        if isinstance(cells, RowShapeError):
            continue
        for name in wanted:
            text = to_text(cells[columns[name]])
            if not text:
                continue
            counts = seen[name]
            if text in counts:
                counts[text] += 1
            elif len(counts) < MAX_DISTINCT_VALUES:
                counts[text] = 1
            else:
                truncated.add(name)
    result = []
    for name in wanted:
        field_spec = spec.fields[name]
        if field_spec.type == "enum":
            targets = list(field_spec.choices)
        elif field_spec.ref in PICKABLE_REFS:
            targets = PICKABLE_REFS[field_spec.ref]()
        else:
            targets = []
        result.append(
            ValueField(
                name=name,
                label=field_spec.label or name,
                column=headers[columns[name]],
                values=list(seen[name].items()),
                targets=targets,
                truncated=name in truncated,
            )
        )
    return result


def preview_fields(job: ImportJob, mapping: ImportMapping) -> list[str]:
    """The fields the file feeds (a column or a default), in the kind's order."""
    headers, _ = _rows(job, mapping)
    columns, _ = resolve_columns(headers, mapping)
    return [n for n in KINDS[job.kind].fields if n in columns or n in mapping.defaults]


def preview_rows(
    job: ImportJob, mapping: ImportMapping, *, limit: int = 20
) -> list[dict[str, Any]]:
    """The first rows as the import will read them: each fed field's cell after value
    mapping and defaults (before type conversion, which the dry run reports on)."""
    headers, rows = _rows(job, mapping)
    columns, _ = resolve_columns(headers, mapping)
    names = [n for n in KINDS[job.kind].fields if n in columns or n in mapping.defaults]
    tables = {
        name: {k.strip().lower(): v for k, v in table.items()}
        for name, table in mapping.values.items()
    }
    out: list[dict[str, Any]] = []
    for line, cells in rows:
        if len(out) >= limit:
            break
        if isinstance(cells, RowShapeError):
            out.append({"line": line, "cells": [], "problem": cells.message})
            continue
        shown = []
        for name in names:
            raw = to_text(cells[columns[name]]) if name in columns else ""
            mapped = tables.get(name, {}).get(raw.lower(), raw) if raw else raw
            shown.append(mapped or mapping.defaults.get(name, ""))
        out.append({"line": line, "cells": shown, "problem": ""})
    return out
