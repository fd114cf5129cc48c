"""Exports never let a cell become a formula, and keep numbers and dates typed."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from apps.core.exports import download_response, neutralise, rows_to_csv, rows_to_xlsx

DANGEROUS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\t=1", "\r=1", '=HYPERLINK("http://x")']


@pytest.mark.parametrize("text", DANGEROUS)
def test_text_that_looks_like_a_formula_is_prefixed(text):
    assert neutralise(text) == "'" + text


def test_plain_values_pass_through_and_numbers_stay_numbers():
    assert neutralise("Acme") == "Acme"
    assert neutralise(Decimal("-12.50")) == Decimal("-12.50")
    assert neutralise(-3) == -3
    assert neutralise(dt.date(2025, 1, 31)) == dt.date(2025, 1, 31)
    assert neutralise(None) == ""
    assert neutralise(True) == "true"


def test_csv_is_utf8_with_bom_and_safe():
    body = rows_to_csv(["name", "amount"], [["=cmd|' /C calc'!A0", Decimal("-5.00")], ["Zoë", 7]])
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows == [["name", "amount"], ["'=cmd|' /C calc'!A0", "-5.00"], ["Zoë", "7"]]


def test_xlsx_cells_are_data_not_formulas():
    body = rows_to_xlsx(
        ["name", "amount", "closed"],
        [["=1+1", Decimal("12.50"), dt.date(2025, 3, 31)], ["@SUM(1)", -4, None]],
    )
    sheet = load_workbook(io.BytesIO(body)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[1][0] == "'=1+1"
    assert sheet.cell(row=2, column=1).data_type == "s"
    assert values[1][1] == 12.5
    assert values[1][2] == dt.datetime(2025, 3, 31)
    assert values[2][0] == "'@SUM(1)"
    assert values[2][1] == -4


def test_download_response_names_the_file_and_rejects_unknown_formats():
    response = download_response(filename="deals", file_format="csv", headers=["a"], rows=[[1]])
    assert response["Content-Disposition"] == 'attachment; filename="deals.csv"'
    assert response["Content-Type"].startswith("text/csv")
    with pytest.raises(ValueError, match="unknown export format"):
        download_response(filename="x", file_format="pdf", headers=[], rows=[])
