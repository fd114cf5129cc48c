"""Every API list downloads as CSV or XLSX with the same filters, scope and ordering;
text that a spreadsheet would run as a formula is neutralised; errors stay JSON."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from apps.api import views
from tests.api.helpers import assert_error_shape, client_for
from tests.factories import AccountFactory, OpportunityFactory

pytestmark = pytest.mark.django_db

LISTS = [
    "teams",
    "users",
    "accounts",
    "products",
    "stages",
    "opportunities",
    "quotas",
    "reviews",
    "subscriptions",
    "nps-responses",
    "import-jobs",
]


def read_csv(response) -> list[dict[str, str]]:
    text = response.content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_every_list_downloads(org, name, fmt):
    response = client_for(org.executive).get(f"/api/v1/{name}/", {"format": fmt})
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Disposition"].startswith(f'attachment; filename="{name}-')
    assert response["Content-Disposition"].endswith(f'.{fmt}"')
    if fmt == "csv":
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        header = response.content.decode("utf-8-sig").splitlines()[0]
        assert header.startswith("id,")
    else:
        sheet = load_workbook(io.BytesIO(response.content)).active
        assert next(sheet.iter_rows(values_only=True))[0] == "id"


def test_the_download_has_the_filters_scope_and_order_of_the_list(org):
    # given deals of the rep, the peer and someone outside the manager's scope
    early = OpportunityFactory(
        owner=org.rep, stage=org.open_stage, amount=Decimal("100.00"), close_date=date(2025, 2, 1)
    )
    late = OpportunityFactory(
        owner=org.peer, stage=org.open_stage, amount=Decimal("900.00"), close_date=date(2025, 6, 1)
    )
    OpportunityFactory(owner=org.outsider, stage=org.open_stage)
    OpportunityFactory(owner=org.rep, stage=org.won_stage, close_date=date(2025, 3, 1))
    # when the manager downloads open deals, latest close date first
    params = {"format": "csv", "outcome": "open", "ordering": "-close_date"}
    rows = read_csv(client_for(org.manager).get("/api/v1/opportunities/", params))
    # then exactly the JSON list's rows come out, unpaginated, in the same order
    json_rows = (
        client_for(org.manager)
        .get("/api/v1/opportunities/", {"outcome": "open", "ordering": "-close_date"})
        .json()["results"]
    )
    assert [int(r["id"]) for r in rows] == [r["id"] for r in json_rows] == [late.pk, early.pk]
    assert rows[0]["amount"] == "900.00" and rows[0]["close_date"] == "2025-06-01"


def test_xlsx_cells_are_typed(org):
    deal = OpportunityFactory(owner=org.rep, stage=org.open_stage, amount=Decimal("1234.50"))
    response = client_for(org.rep).get("/api/v1/opportunities/", {"format": "xlsx"})
    sheet = load_workbook(io.BytesIO(response.content)).active
    header, row = list(sheet.iter_rows(values_only=True))
    record = dict(zip(header, row, strict=True))
    assert record["id"] == deal.pk
    assert record["amount"] == pytest.approx(1234.5)  # a number, not text
    assert isinstance(record["close_date"], datetime)  # a date cell (openpyxl reads datetime)
    assert record["close_date"].date() == deal.close_date


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_formulas_in_text_are_neutralised(org, fmt):
    AccountFactory(name='=HYPERLINK("http://evil.example","x")', industry="+cmd|' /C calc'!A0")
    response = client_for(org.rep).get("/api/v1/accounts/", {"format": fmt})
    if fmt == "csv":
        (row,) = read_csv(response)
        name, industry = row["name"], row["industry"]
    else:
        sheet = load_workbook(io.BytesIO(response.content)).active
        header, values = list(sheet.iter_rows(values_only=True))
        record = dict(zip(header, values, strict=True))
        name, industry = record["name"], record["industry"]
    assert name == '\'=HYPERLINK("http://evil.example","x")'
    assert industry.startswith("'+cmd")


def test_the_history_of_a_deal_downloads_too(org):
    deal = OpportunityFactory(owner=org.rep, stage=org.open_stage)
    client_for(org.rep).patch(
        f"/api/v1/opportunities/{deal.pk}/", {"amount": "5.00"}, format="json"
    )
    response = client_for(org.rep).get(
        f"/api/v1/opportunities/{deal.pk}/history/", {"format": "csv"}
    )
    assert f'filename="opportunity-{deal.pk}-history-' in response["Content-Disposition"]
    assert [r["changed_fields"] for r in read_csv(response)] == ["created", "amount"]


def test_a_download_over_the_limit_is_refused_with_a_reason(org, monkeypatch):
    monkeypatch.setattr(views, "EXPORT_MAX_ROWS", 2)
    for _ in range(3):
        OpportunityFactory(owner=org.rep, stage=org.open_stage)
    response = client_for(org.rep).get("/api/v1/opportunities/", {"format": "csv"})
    body = assert_error_shape(response, 400)
    assert "at most 2 rows" in body["message"] and body["extra"] == {"limit": 2}
    # and the same list with a narrowing filter downloads
    narrowed = client_for(org.rep).get(
        "/api/v1/opportunities/", {"format": "csv", "page_size": 1, "amount_max": "0"}
    )
    assert narrowed.status_code == 200


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_errors_of_a_download_are_json(org, fmt):
    assert_error_shape(
        client_for(org.rep).get("/api/v1/opportunities/", {"format": fmt, "ordering": "x"}), 400
    )
    assert_error_shape(client_for(None).get("/api/v1/opportunities/", {"format": fmt}), 403)


def test_an_unknown_format_is_a_404(org):
    assert_error_shape(client_for(org.rep).get("/api/v1/accounts/", {"format": "pdf"}), 404)
