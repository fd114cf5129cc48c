"""XLSX files: typed cells, and formula cells taken as literal text, never evaluated."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook

from apps.core.exports import rows_to_csv, rows_to_xlsx
from apps.crm.models import Account, Opportunity
from apps.imports.services import file_import

pytestmark = pytest.mark.django_db


def workbook(rows: list[list]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


HEADER = [
    "external_id",
    "name",
    "account",
    "owner",
    "amount",
    "stage",
    "created_date",
    "close_date",
]


def test_typed_cells_are_read(crm):
    data = workbook(
        [
            HEADER,
            [
                "X-1",
                "Typed",
                "ACC-1",
                "ada@example.com",
                1500.25,
                "Prospecting",
                dt.datetime(2025, 1, 2),
                dt.date(2025, 3, 4),
            ],
            [None] * 8,  # blank rows are skipped
            [7, "Number id", "ACC-1", "ada@example.com", 10, "Won", "2025-01-01", "2025-01-31"],
        ]
    )
    report = file_import(kind="opportunities", data=data, filename="deals.xlsx", user=crm.admin)
    assert report.ok, report.errors
    deal = Opportunity.objects.get(external_id="X-1")
    assert deal.amount == Decimal("1500.25") and deal.created_date == dt.date(2025, 1, 2)
    assert Opportunity.objects.get(external_id="7").stage == crm.won


def test_formula_text_is_stored_as_data_and_exported_neutralised(crm):
    # given a workbook whose text cells hold formulas
    data = workbook(
        [
            ["external_id", "name", "industry"],
            ["F-1", '=HYPERLINK("http://evil.test","click")', "=1+1"],
            ["F-2", "@SUM(A1)", "+cmd"],
        ]
    )
    # when imported
    report = file_import(kind="accounts", data=data, filename="accounts.xlsx", user=crm.admin)
    assert report.ok, report.errors
    # then the formula text is the stored value, never a computed result
    first = Account.objects.get(external_id="F-1")
    assert (first.name, first.industry) == ('=HYPERLINK("http://evil.test","click")', "=1+1")
    assert Account.objects.get(external_id="F-2").name == "@SUM(A1)"
    # and an export of it is data again, not a formula
    rows = [[a.name, a.industry] for a in Account.objects.filter(external_id__startswith="F-")]
    csv_text = rows_to_csv(["name", "industry"], rows).decode("utf-8-sig")
    assert "'=HYPERLINK" in csv_text and "'=1+1" in csv_text and "'@SUM(A1)" in csv_text
    sheet = load_workbook(io.BytesIO(rows_to_xlsx(["name", "industry"], rows))).active
    assert sheet["A2"].data_type == "s" and sheet["A2"].value.startswith("'=")


def test_a_named_sheet(crm):
    book = Workbook()
    book.active.title = "Notes"
    sheet = book.create_sheet("Stages")
    sheet.append(["name", "order", "outcome", "probability"])
    sheet.append(["Sheet stage", 9, "open", 30])
    out = io.BytesIO()
    book.save(out)
    from apps.imports.mapping import mapping_from_dict

    report = file_import(
        kind="stages",
        data=out.getvalue(),
        filename="s.xlsx",
        user=crm.admin,
        mapping=mapping_from_dict({"kind": "stages", "sheet": "Stages"}),
    )
    assert report.ok and report.created == 1
    missing = file_import(
        kind="stages",
        data=out.getvalue(),
        filename="s.xlsx",
        user=crm.admin,
        mapping=mapping_from_dict({"kind": "stages", "sheet": "Nope"}),
    )
    assert "the workbook has no sheet 'Nope' (sheets: Notes, Stages)." in missing.errors[0].message
