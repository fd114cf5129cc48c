"""Mappings: the JSON format, suggestions, value translation, defaults, formats and
which missing references may be created."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from apps.crm.models import Account, Opportunity, Product
from apps.imports.mapping import (
    MappingError,
    identity_mapping,
    mapping_from_dict,
    mapping_from_json,
    suggest_columns,
)
from apps.imports.services import rows_import
from apps.org.models import Role, User

pytestmark = pytest.mark.django_db


def test_json_round_trip():
    mapping = mapping_from_dict(
        {
            "kind": "opportunities",
            "columns": {"amount": "Value"},
            "values": {"stage": {"Closed Won": "Won"}},
            "defaults": {"currency": "EUR"},
            "date_format": "%d/%m/%Y",
            "decimal_separator": ",",
            "thousands_separator": ".",
            "encoding": "cp1252",
            "create_missing": ["accounts"],
        }
    )
    assert mapping_from_json(mapping.to_json()) == mapping
    assert mapping.as_dict()["version"] == 1


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "A mapping must be a JSON object."),
        ({"kind": "widgets"}, "Unknown import kind 'widgets'"),
        ({"kind": "stages", "colour": 1}, "Unknown mapping key(s): colour."),
        ({"kind": "stages", "columns": {"size": "S"}}, "columns names unknown field(s) for stages"),
        ({"kind": "stages", "values": {"outcome": "won"}}, "values.outcome must be an object"),
        ({"kind": "stages", "date_format": "YYYY"}, "has no strptime directive"),
        ({"kind": "stages", "decimal_separator": ";"}, "decimal_separator must be"),
        (
            {"kind": "stages", "decimal_separator": ",", "thousands_separator": ","},
            "must differ",
        ),
        ({"kind": "stages", "encoding": "klingon"}, "Unknown encoding 'klingon'"),
        ({"kind": "stages", "create_missing": ["accounts"]}, "stages cannot create accounts"),
        ({"kind": "accounts", "create_missing": "regions"}, "must be a list"),
    ],
)
def test_bad_mappings_say_what_to_fix(document, message):
    with pytest.raises(MappingError) as info:
        mapping_from_dict(document)
    assert message in str(info.value)


def test_a_mapping_for_another_kind_is_refused():
    with pytest.raises(MappingError, match=r"This mapping is for stages, not accounts\."):
        mapping_from_dict({"kind": "stages"}, kind="accounts")


def test_bad_json():
    with pytest.raises(MappingError, match="not valid JSON"):
        mapping_from_json("{")


def test_suggestions_from_headers():
    headers = [
        "Deal ID",
        "Opportunity Name",
        "Account Name",
        "Owner Email",
        "Amount",
        "CCY",
        "Sales Stage",
        "Close",
        "Created On",
        "Unrelated",
    ]
    assert suggest_columns("opportunities", headers) == {
        "external_id": "Deal ID",
        "name": "Opportunity Name",
        "account": "Account Name",
        "owner": "Owner Email",
        "amount": "Amount",
        "currency": "CCY",
        "stage": "Sales Stage",
        "created_date": "Created On",
        "close_date": "Close",
    }


ROW = {
    "Id": "M-1",
    "Title": "Mapped deal",
    "Customer": "Acme Corp",
    "Rep": "ada@example.com",
    "Item": "Platfrom",
    "Value": "1.234,56",
    "Phase": "Closed Won",
    "Opened": "31.01.2025",
    "Closes": "28.02.2025",
}
COLUMNS = {
    "external_id": "Id",
    "name": "Title",
    "account": "Customer",
    "owner": "Rep",
    "product": "Item",
    "amount": "Value",
    "stage": "Phase",
    "created_date": "Opened",
    "close_date": "Closes",
}


def test_columns_values_defaults_and_formats(crm):
    mapping = mapping_from_dict(
        {
            "kind": "opportunities",
            "columns": COLUMNS,
            "values": {"stage": {"closed won": "Won"}, "product": {"Platfrom": "Platform"}},
            "defaults": {"currency": "EUR", "deal_type": "renewal"},
            "date_format": "%d.%m.%Y",
            "decimal_separator": ",",
            "thousands_separator": ".",
        }
    )
    report = rows_import(kind="opportunities", rows=[ROW], user=crm.admin, mapping=mapping)
    assert report.ok, report.errors
    deal = Opportunity.objects.get(external_id="M-1")
    assert (deal.stage, deal.product, deal.amount) == (crm.won, crm.platform, Decimal("1234.56"))
    assert (deal.currency, deal.deal_type) == ("EUR", "renewal")
    assert (deal.created_date, deal.close_date) == (dt.date(2025, 1, 31), dt.date(2025, 2, 28))


def test_missing_references_are_created_only_when_allowed(crm):
    row = {
        **ROW,
        "Customer": "Brand New Ltd",
        "Rep": "Nina Novak",
        "Item": "Gadget",
        "Phase": "Prospecting",
        "Opened": "2025-01-01",
        "Closes": "2025-02-01",
        "Value": "10",
    }
    base = {"kind": "opportunities", "columns": COLUMNS}
    refused = rows_import(
        kind="opportunities", rows=[row], user=crm.admin, mapping=mapping_from_dict(base)
    )
    assert [e.field for e in refused.errors] == ["account", "owner", "product"]
    allowed = mapping_from_dict({**base, "create_missing": ["accounts", "owners", "products"]})
    report = rows_import(
        kind="opportunities", rows=[row, {**row, "Id": "M-2"}], user=crm.admin, mapping=allowed
    )
    assert report.ok, report.errors
    account = Account.objects.get(name="Brand New Ltd")
    assert account.external_id == "Brand New Ltd"
    nina = User.objects.get(first_name="Nina", last_name="Novak")
    assert nina.role == Role.REP and not nina.has_usable_password()
    assert Product.objects.filter(name="Gadget").count() == 1
    assert Opportunity.objects.filter(account=account, owner=nina).count() == 2
    # the second time they exist: nothing new is created
    again = rows_import(
        kind="opportunities", rows=[row, {**row, "Id": "M-2"}], user=crm.admin, mapping=allowed
    )
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert User.objects.filter(first_name="Nina").count() == 1


def test_mapping_names_a_column_the_file_lacks(crm):
    mapping = mapping_from_dict({"kind": "stages", "columns": {"order": "Position"}})
    rows = [{"name": "X", "order": 9, "outcome": "open", "probability": 5}]
    report = rows_import(kind="stages", rows=rows, user=crm.admin, mapping=mapping)
    assert [(e.line, e.field, e.message) for e in report.errors] == [
        (1, "order", "missing column 'Position' (the mapping reads order from it).")
    ]


def test_identity_mapping_for_unknown_kind():
    with pytest.raises(MappingError):
        identity_mapping("widgets")
