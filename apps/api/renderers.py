"""CSV and XLSX renderers for API lists (``?format=csv`` / ``?format=xlsx``).

The bytes come from :mod:`apps.core.exports`, the one place that neutralises spreadsheet
formulas. Money, dates and times are turned back from their JSON text into typed values
so that a spreadsheet sees numbers and dates, not text.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from rest_framework import renderers, serializers

from apps.core.exports import CSV_CONTENT_TYPE, XLSX_CONTENT_TYPE, rows_to_csv, rows_to_xlsx

EXPORT_FORMATS = frozenset({"csv", "xlsx"})


def _typed(field: serializers.Field | None, value: Any) -> Any:
    """The JSON value of ``field`` as the type a spreadsheet cell should hold."""
    if value is None or field is None:
        return value
    try:
        if isinstance(field, serializers.DecimalField):
            return Decimal(value)
        if isinstance(field, serializers.DateTimeField):
            return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if isinstance(field, serializers.DateField):
            return dt.date.fromisoformat(str(value))
    except (InvalidOperation, ValueError):
        return value
    if isinstance(value, Mapping | list):
        # Nested values (a review's ratings) stay readable in one cell.
        return json.dumps(value, default=str, ensure_ascii=False)
    return value


def table(
    data: Any, fields: Mapping[str, serializers.Field] | None
) -> tuple[list[str], list[list[Any]]]:
    """Header and rows for ``data`` (a list of serialized records, or one record)."""
    records: Sequence[Mapping[str, Any]] = [data] if isinstance(data, Mapping) else list(data)
    if fields:
        headers = [name for name, field in fields.items() if not field.write_only]
    else:
        headers = list(records[0].keys()) if records else []
    field_map = fields or {}
    rows = [
        [_typed(field_map.get(name), record.get(name)) for name in headers] for record in records
    ]
    return headers, rows


class _ExportRenderer(renderers.BaseRenderer):
    charset = None
    render_style = "binary"

    def _write(self, headers: list[str], rows: list[list[Any]]) -> bytes:
        raise NotImplementedError

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        context = renderer_context or {}
        response = context.get("response")
        fields = getattr(response, "export_fields", None)
        if data is None:
            return b""
        headers, rows = table(data, fields)
        if response is not None:
            filename = getattr(response, "export_filename", "export")
            response["Content-Disposition"] = f'attachment; filename="{filename}.{self.format}"'
        return self._write(headers, rows)


class CsvRenderer(_ExportRenderer):
    media_type = CSV_CONTENT_TYPE.split(";")[0]
    format = "csv"
    charset = "utf-8"

    def _write(self, headers: list[str], rows: list[list[Any]]) -> bytes:
        return rows_to_csv(headers, rows)


class XlsxRenderer(_ExportRenderer):
    media_type = XLSX_CONTENT_TYPE
    format = "xlsx"

    def _write(self, headers: list[str], rows: list[list[Any]]) -> bytes:
        return rows_to_xlsx(headers, rows)
