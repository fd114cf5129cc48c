"""CSV and XLSX downloads, shared by every list page, API list and report.

Spreadsheet safety: a text cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab or
carriage return, which some spreadsheet programs strip before evaluating) would be run as a
formula when the file is opened. Every exported text value is neutralised by prefixing a
single quote, so it shows as the data it is. Numbers (int, Decimal, float) and dates are
written as typed values and are never altered, so a negative amount stays a number.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from django.http import HttpResponse

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def neutralise(value: Any) -> Any:
    """Make one cell value safe for a spreadsheet; non-text values pass through."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal | dt.date | dt.datetime):
        return value
    text = str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def _csv_value(value: Any) -> str:
    safe = neutralise(value)
    if isinstance(safe, dt.datetime):
        return safe.isoformat()
    if isinstance(safe, dt.date):
        return safe.isoformat()
    return str(safe)


def rows_to_csv(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 CSV (with a BOM so spreadsheet programs detect the encoding)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([_csv_value(h) for h in headers])
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def rows_to_xlsx(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, sheet: str = "Data"
) -> bytes:
    """An XLSX workbook with one sheet; text cells are stored as strings, never formulas."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(title=sheet[:31] or "Data")
    worksheet.append([neutralise(h) for h in headers])
    for row in rows:
        cells = []
        for value in row:
            safe = neutralise(value)
            if isinstance(safe, dt.datetime) and safe.tzinfo is not None:
                # Excel has no time zones: write the UTC wall time, named in the header.
                safe = safe.astimezone(dt.UTC).replace(tzinfo=None)
            cells.append(safe)
        worksheet.append(cells)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def download_response(
    *,
    filename: str,
    file_format: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    sheet: str = "Data",
) -> HttpResponse:
    """An attachment response in ``csv`` or ``xlsx``; ``filename`` has no extension."""
    if file_format == "csv":
        body, content_type = rows_to_csv(headers, rows), CSV_CONTENT_TYPE
    elif file_format == "xlsx":
        body, content_type = rows_to_xlsx(headers, rows, sheet=sheet), XLSX_CONTENT_TYPE
    else:
        raise ValueError(f"unknown export format {file_format!r}; use csv or xlsx")
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}.{file_format}"'
    return response
