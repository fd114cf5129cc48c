"""The set-based load of large CSV files of new deals (apps.imports.sqlload): it writes
exactly what the row-by-row import writes (deals, history rows, created accounts, owners
and products, queued KPI months), and every file it cannot vouch for it leaves to that
import, which reports the errors. Each test imports the same file both ways, from the
same starting data, and compares everything by natural key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings

from apps.crm.models import Account, Opportunity, OpportunityHistory, Product
from apps.imports import services, sqlload, writers
from apps.imports.mapping import identity_mapping, mapping_from_dict
from apps.kpis import services as kpi_services
from apps.kpis.models import DirtyMonth
from apps.org.models import User
from tests.imports.conftest import MALFORMED

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

HEADER = (
    "external_id,name,account,owner,product,amount,currency,stage,forecast_category,"
    "deal_type,source,created_date,close_date,lost_reason"
)
#: Every kind of cell the load converts by distinct value: references by external id,
#: by name in another case, by e-mail in capitals and by full name; empty optional cells;
#: enum spellings; lower-case currency; categories the stage overrides (won, lost).
ROWS = [
    "SQ-01,Acme expansion,ACC-1,ada@example.com,Platform,12000.50,USD,Prospecting,best_case,"
    "expansion,Inbound,2025-01-10,2025-03-31,",
    "SQ-02,Globex new logo,globex,Bob Stone,PRD-2,8000,eur,Won,commit,New,Outbound,"
    "2025-02-01,2025-02-20,",
    "SQ-03,Acme renewal,acme corp,BOB@EXAMPLE.COM,,5000,,Lost,,renewal,,2025-01-05,"
    "2025-02-28,Budget",
    "SQ-04,Négociation été,ACC-2,ada@example.com,analytics,0,USD,negotiation,Best Case,,"
    "Partner,2025-03-01,2025-06-30,",
    "SQ-05,Zero pipeline,ACC-1,Ada Lovelace,,75,GBP,Prospecting,closed,,,2025-03-01,2025-03-01,",
    "SQ-06,Omitted open deal,ACC-2,bob@example.com,Platform,19.9,USD,Negotiation,omitted,"
    "expansion,Inbound,2025-04-15,2025-07-01,",
]


def csv_bytes(rows: list[str], header: str = HEADER, end: str = "\n") -> bytes:
    return end.join([header, *rows, ""]).encode()


def natural_state() -> dict[str, Any]:
    """What an import of deals writes, by natural key (the ids of rows created in a rolled
    back attempt are not reused, so ids are compared through the records they name)."""
    deals = Opportunity.objects.order_by("external_id").values_list(
        "external_id",
        "name",
        "account__external_id",
        "owner__username",
        "product__external_id",
        "amount",
        "currency",
        "stage__name",
        "forecast_category",
        "deal_type",
        "source",
        "created_date",
        "close_date",
        "lost_reason",
    )
    history = OpportunityHistory.objects.order_by("opportunity__external_id", "id").values_list(
        "opportunity__external_id",
        "changed_fields",
        "source",
        "changed_by__username",
        "stage__name",
        "amount",
        "currency",
        "close_date",
        "owner__username",
        "forecast_category",
    )
    return {
        "deals": list(deals),
        "history": list(history),
        # In creation order: records an import creates get their ids in file order.
        "accounts": list(Account.objects.order_by("pk").values_list("external_id", "name")),
        "products": list(Product.objects.order_by("pk").values_list("external_id", "name")),
        "users": list(
            User.objects.order_by("pk").values_list(
                "username", "email", "first_name", "last_name", "role"
            )
        ),
        "dirty": sorted(DirtyMonth.objects.values_list("area", "month")),
    }


def report_of(report: services.ImportReport) -> tuple:
    return (
        report.ok,
        report.rows,
        report.created,
        report.updated,
        report.unchanged,
        [(e.line, e.field, e.message) for e in report.errors],
    )


def import_once(crm, data: bytes, mapping, filename: str, *, sql: bool, capture) -> tuple:
    taken: list[Any] = []
    real = services.new_deals_load

    def spy(**kwargs: Any) -> Any:
        taken.append(real(**kwargs))
        return taken[-1]

    with (
        override_settings(IMPORTS_SQL_LOAD=sql, IMPORTS_SQL_LOAD_MIN_ROWS=1),
        pytest.MonkeyPatch.context() as patch,
        capture(execute=True),
    ):
        patch.setattr(services, "new_deals_load", spy)
        # The row-by-row import of a large file: its deals are written by COPY too (and
        # the set-based load may take these small files).
        patch.setattr(writers, "SERVICE_PATH_MAX_ROWS", 0)
        # The months are queued (compared below); the rollup update is another test's.
        patch.setattr(kpi_services, "rollups_update_enqueue", lambda: False)
        report = services.file_import(
            kind="opportunities", data=data, filename=filename, user=crm.admin, mapping=mapping
        )
    return report_of(report), natural_state(), bool(taken and taken[0] is not None)


def both_ways(crm, capture, data: bytes, mapping=None, filename: str = "deals.csv"):
    """The row-by-row import and the set-based load of ``data`` from the same start:
    (row-by-row outcome, set-based outcome, whether the set-based load wrote it)."""
    with transaction.atomic():
        expected = import_once(crm, data, mapping, filename, sql=False, capture=capture)
        transaction.set_rollback(True)
    assert not expected[2]
    actual = import_once(crm, data, mapping, filename, sql=True, capture=capture)
    return expected[:2], actual[:2], actual[2]


def load_directly(crm) -> sqlload.Loaded | None:
    """The set-based load of the ROWS file, called directly (no fallback)."""
    return sqlload.new_deals_load(
        data=csv_bytes(ROWS),
        filename="d.csv",
        mapping=identity_mapping("opportunities"),
        user=crm.admin,
        source="import",
    )


def assert_same(actual: tuple, expected: tuple) -> None:
    assert actual[0] == expected[0]
    for key, rows in expected[1].items():
        assert actual[1][key] == rows, key


# --- good files: the set-based load writes them, and writes the same -----------------
def test_a_file_of_new_deals_is_loaded_set_based_with_the_same_result(
    crm, django_capture_on_commit_callbacks
):
    expected, actual, loaded = both_ways(crm, django_capture_on_commit_callbacks, csv_bytes(ROWS))
    assert loaded
    assert_same(actual, expected)
    report, state = actual
    assert report == (True, 6, 6, 0, 0, [])
    # spot checks of the conversions, against the fixture
    deals = {d[0]: d for d in state["deals"]}
    assert deals["SQ-02"][2:9] == ("ACC-2", "bob", "PRD-2", 8000, "EUR", "Won", "closed")
    assert deals["SQ-03"][4:11] == (
        None,
        5000,
        settings.BASE_CURRENCY,  # an empty currency: a new deal's default
        "Lost",
        "omitted",
        "renewal",
        "",
    )
    assert deals["SQ-05"][8] == "pipeline"  # "closed" asked of an open deal
    assert deals["SQ-06"][8] == "omitted"
    assert [h[:2] for h in state["history"]] == [(f"SQ-0{n}", "created") for n in range(1, 7)]
    assert ("deals", deals["SQ-01"][12].replace(day=1)) in state["dirty"]


def test_mapping_value_maps_defaults_date_format_and_created_records(
    crm, django_capture_on_commit_callbacks
):
    # given a CRM export with its own headers, stage names, day-first dates, empty
    # currencies, and accounts, owners and products the import may create
    mapping = mapping_from_dict(
        {
            "kind": "opportunities",
            "columns": {
                "external_id": "Deal ID",
                "name": "Deal",
                "account": "Customer",
                "owner": "Rep",
                "stage": "Phase",
                "close_date": "Close",
                "created_date": "Created",
            },
            "values": {"stage": {"Closed Won": "Won", "Closed Lost": "Lost"}},
            "defaults": {"currency": "EUR", "deal_type": "renewal", "source": "CRM export"},
            "date_format": "%d/%m/%Y",
            "create_missing": ["accounts", "owners", "products"],
        }
    )
    header = "Deal ID,Deal,Customer,Rep,product,amount,currency,Phase,Created,Close,Ignored"
    rows = [
        "EX-1,First,Umbrella Corp,new.rep@example.com,Widgets,100,,Closed Won,01/02/2025,"
        "15/03/2025,x",
        "EX-2,Second,UMBRELLA CORP,Nina Novak,widgets,250.5,usd,Prospecting,02/02/2025,"
        "30/04/2025,y",
        "EX-3,Third,Acme Corp,ada@example.com,,0,,Closed Lost,03/02/2025,03/02/2025,",
        "EX-4,Fourth,Hooli,nina novak,Gadgets,1,GBP,Negotiation,28/02/2025,01/03/2025,z",
    ]
    expected, actual, loaded = both_ways(
        crm, django_capture_on_commit_callbacks, csv_bytes(rows, header), mapping
    )
    assert loaded
    assert_same(actual, expected)
    state = actual[1]
    # one record per distinct key, spelt as first met, created in file order
    assert state["accounts"][-2:] == [("Umbrella Corp", "Umbrella Corp"), ("Hooli", "Hooli")]
    assert state["products"][-2:] == [("Widgets", "Widgets"), ("Gadgets", "Gadgets")]
    assert [u[1:4] for u in state["users"][-2:]] == [
        ("new.rep@example.com", "", ""),
        ("", "Nina", "Novak"),
    ]
    assert {d[0]: (d[6], d[9], d[10]) for d in state["deals"]}["EX-2"] == (
        "USD",
        "renewal",
        "CRM export",
    )


def test_records_are_created_in_file_order_across_many_pages(
    crm, django_capture_on_commit_callbacks
):
    # given 400 deals naming 150 new accounts and owners, first met in an order that is
    # neither alphabetical nor that of the raw table's page and line numbers as text
    # ("(0,10)" sorts before "(0,2)"), each spelt differently later on
    mapping = identity_mapping("opportunities").replace(create_missing=["accounts", "owners"])
    rows = []
    for n in range(400):
        k = (n * 37) % 150
        account = f"Company {k:03d}" if n < 150 else f"COMPANY {k:03d}"
        owner = f"Rep Number{k}" if n < 150 else f"rep number{k}"
        rows.append(
            f"MP-{n:04d},Deal {n},{account},{owner},,{n},USD,Prospecting,,,,2025-01-01,2025-02-01,"
        )
    expected, actual, loaded = both_ways(
        crm, django_capture_on_commit_callbacks, csv_bytes(rows), mapping
    )
    assert loaded
    assert_same(actual, expected)
    created = actual[1]["accounts"][-150:]
    assert created == [(f"Company {(n * 37) % 150:03d}",) * 2 for n in range(150)]


def test_new_deals_get_their_ids_in_file_order_even_when_lookups_spill(
    crm, django_capture_on_commit_callbacks, monkeypatch
):
    # given 3,000 deals naming 3,000 new accounts, with so little memory for the load's hash
    # tables that the account lookup is split into batches (which reorders rows), and the
    # sorting threshold reached
    monkeypatch.setattr(writers, "IMPORT_WORK_MEM", "64kB")
    monkeypatch.setattr(sqlload, "ORDER_LOOKUP_ROWS", 500)
    mapping = identity_mapping("opportunities").replace(create_missing=["accounts"])
    rows = [
        f"ID-{n:05d},Deal {n},Account {n:05d},ada@example.com,,{n},USD,Prospecting,,,,"
        "2025-01-01,2025-02-01,"
        for n in range(3000)
    ]
    _, _, loaded = import_once(
        crm,
        csv_bytes(rows),
        mapping,
        "d.csv",
        sql=True,
        capture=django_capture_on_commit_callbacks,
    )
    assert loaded
    # then deal ids, and history ids, follow the file, as in the row-by-row import
    by_id = list(Opportunity.objects.order_by("id").values_list("external_id", flat=True))
    assert by_id == [f"ID-{n:05d}" for n in range(3000)]
    history = OpportunityHistory.objects.order_by("id")
    assert list(history.values_list("opportunity__external_id", flat=True)) == by_id


def test_files_the_services_would_write_deal_by_deal_are_not_loaded_set_based(crm, settings):
    # a file of at most SERVICE_PATH_MAX_ROWS deals goes through apps.crm.services, which
    # queues per-deal follow-up work: never set-based, whatever the setting says
    settings.IMPORTS_SQL_LOAD_MIN_ROWS = 1
    assert sqlload.min_rows() == writers.SERVICE_PATH_MAX_ROWS + 1
    assert load_directly(crm) is None
    assert not Opportunity.objects.exists()


def test_a_cell_longer_than_the_csv_limit_goes_row_by_row(crm, django_capture_on_commit_callbacks):
    # given a cell longer than the csv module's field limit (lowered for the test), in a
    # column nobody maps
    import csv

    header = HEADER + ",notes"
    rows = [row + ("," + "n" * 1001 if n == 2 else ",x") for n, row in enumerate(ROWS)]
    previous = csv.field_size_limit(1000)
    try:
        expected, actual, loaded = both_ways(
            crm, django_capture_on_commit_callbacks, csv_bytes(rows, header)
        )
    finally:
        csv.field_size_limit(previous)
    # then the row-by-row import decides: the csv module refuses the file
    assert not loaded
    assert_same(actual, expected)
    assert actual[0][5] == [(4, None, "not valid CSV: field larger than field limit (1000).")]


@pytest.mark.parametrize(
    ("label", "transform"),
    [
        ("semicolons", lambda b: b.replace(b",", b";")),
        ("tabs", lambda b: b.replace(b",", b"\t")),
        ("CRLF line ends", lambda b: b.replace(b"\n", b"\r\n")),
        ("a byte-order mark", lambda b: b"\xef\xbb\xbf" + b),
        ("no final newline", lambda b: b.rstrip(b"\n")),
    ],
)
def test_csv_dialects_the_parser_reads_alike(
    crm, django_capture_on_commit_callbacks, label, transform
):
    data = transform(csv_bytes(ROWS))
    expected, actual, loaded = both_ways(crm, django_capture_on_commit_callbacks, data)
    assert loaded, label
    assert_same(actual, expected)
    assert actual[0][:3] == (True, 6, 6)


def test_absent_columns_take_their_default_or_a_new_deals_value(
    crm, django_capture_on_commit_callbacks
):
    # given no product, currency, deal type, source or lost reason column, and a default
    # currency in the mapping
    header = "external_id,name,account,owner,amount,stage,created_date,close_date"
    rows = [
        "AB-1,One,ACC-1,ada@example.com,10,Prospecting,2025-01-01,2025-02-01",
        "AB-2,Two,ACC-2,bob@example.com,20,Won,2025-01-02,2025-02-02",
    ]
    mapping = identity_mapping("opportunities").replace(defaults={"currency": "CHF"})
    expected, actual, loaded = both_ways(
        crm, django_capture_on_commit_callbacks, csv_bytes(rows, header), mapping
    )
    assert loaded
    assert_same(actual, expected)
    assert [d[4:7] for d in actual[1]["deals"]] == [(None, 10, "CHF"), (None, 20, "CHF")]


# --- anything in doubt goes row by row, with the same outcome -------------------------
def one_row(**cells: str) -> bytes:
    row = dict(
        zip(
            HEADER.split(","),
            ROWS[0].split(","),
            strict=True,
        )
    )
    row.update(cells)
    return csv_bytes([",".join(row.values()), *ROWS[1:]])


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("exponent amount", one_row(amount="1e3")),
        ("leading zero amount", one_row(amount="010")),
        ("amount with a plus sign", one_row(amount="+5")),
        ("amount with a space", one_row(amount=" 12")),
        ("three decimals", one_row(amount="12.345")),
        ("three decimals, trailing zero", one_row(amount="12.500")),
        ("negative amount", one_row(amount="-5")),
        ("NaN amount", one_row(amount="NaN")),
        ("Infinity amount", one_row(amount="Infinity")),
        ("huge amount", one_row(amount="1" * 17)),
        ("external id with a space after", one_row(external_id="SQ-01 ")),
        ("external id with a no-break space", one_row(external_id="SQ-01\u00a0")),
        ("name with an ideographic space", one_row(name="\u3000Acme")),
        ("name too long", one_row(name="x" * 201)),
        ("empty name", one_row(name="")),
        ("duplicate external id", one_row(external_id="SQ-02")),
        ("unknown stage", one_row(stage="Closed Won")),
        ("unknown owner", one_row(owner="nobody@example.com")),
        ("ambiguous owner", one_row(owner="Sam Lee")),
        ("ambiguous account", one_row(account="Initech")),
        ("bad date", one_row(close_date="2025-02-30")),
        ("close before created", one_row(close_date="2024-12-31")),
        ("bad deal type", one_row(deal_type="upsell")),
        ("a quoted cell", one_row(name='"Acme, expansion"')),
        ("a blank line", csv_bytes([ROWS[0], "", *ROWS[1:]])),
        ("a line of delimiters", csv_bytes([ROWS[0], "," * 13, *ROWS[1:]])),
        ("COPY's end-of-data mark", csv_bytes([*ROWS[:2], "\\.", *ROWS[2:]])),
        ("a short row", csv_bytes([ROWS[0], "SQ-99,Short", *ROWS[1:]])),
        ("a lone carriage return", csv_bytes(ROWS).replace(b"\n", b"\r", 1)),
        ("not UTF-8", one_row(name="Caf\xe9").replace("Café".encode(), b"Caf\xe9")),
    ],
)
def test_a_file_in_doubt_is_imported_row_by_row(
    crm, django_capture_on_commit_callbacks, label, data
):
    expected, actual, loaded = both_ways(crm, django_capture_on_commit_callbacks, data)
    assert not loaded, label
    assert_same(actual, expected)
    # and nothing of the abandoned attempt is left in the session
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'import_opportunity%%'")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"


def test_stored_deals_are_updated_row_by_row(crm, django_capture_on_commit_callbacks):
    # given the file imported once (set-based)
    _, _, loaded = import_once(
        crm, csv_bytes(ROWS), None, "d.csv", sql=True, capture=django_capture_on_commit_callbacks
    )
    assert loaded
    # when a new version changes one deal and adds one
    rows = [ROWS[0].replace("12000.50", "13000"), *ROWS[1:], ROWS[5].replace("SQ-06", "SQ-07")]
    expected, actual, loaded = both_ways(crm, django_capture_on_commit_callbacks, csv_bytes(rows))
    # then the row-by-row import upserts them, as without the set-based load
    assert not loaded
    assert_same(actual, expected)
    assert actual[0][:5] == (True, 7, 1, 1, 5)


def test_small_files_and_dry_runs_go_row_by_row(crm, settings, monkeypatch):
    # given a threshold of 7 rows (and no deal-by-deal services path below it)
    monkeypatch.setattr(writers, "SERVICE_PATH_MAX_ROWS", 0)
    settings.IMPORTS_SQL_LOAD_MIN_ROWS = 7
    # then a file of 6 rows is not loaded set-based, and with a threshold of 6 it is
    assert load_directly(crm) is None
    assert not Opportunity.objects.exists()
    settings.IMPORTS_SQL_LOAD_MIN_ROWS = 6
    assert load_directly(crm) == sqlload.Loaded(rows=6)
    Opportunity.objects.all().delete()
    # and a dry run always goes row by row (it writes nothing)
    settings.IMPORTS_SQL_LOAD_MIN_ROWS = 1
    report = services.file_import(
        kind="opportunities", data=csv_bytes(ROWS), filename="d.csv", user=crm.admin, dry_run=True
    )
    assert report.ok and report.dry_run and report.created == 6
    assert not Opportunity.objects.exists()


@pytest.mark.parametrize(
    "name",
    sorted(
        name
        for name, entry in json.loads((MALFORMED / "manifest.json").read_text()).items()
        if entry["kind"] == "opportunities"
    ),
)
def test_the_malformed_deal_files_report_the_same_with_the_set_based_load(
    crm, django_capture_on_commit_callbacks, name
):
    entry = json.loads((MALFORMED / "manifest.json").read_text())[name]
    mapping = mapping_from_dict(entry["mapping"]) if "mapping" in entry else None
    data = (MALFORMED / name).read_bytes()
    expected, actual, loaded = both_ways(
        crm, django_capture_on_commit_callbacks, data, mapping, filename=name
    )
    assert not loaded
    assert_same(actual, expected)
    assert not actual[0][0]


def test_every_space_python_strips_is_refused_at_either_end_of_a_guarded_text():
    spaces = {c for c in range(0x110000) if chr(c).isspace()}
    assert spaces <= set(range(33)) | set(sqlload.NON_ASCII_SPACES)


def test_every_deal_field_is_converted_one_way_or_the_other():
    from apps.imports.schema import KINDS

    fields = set(KINDS["opportunities"].fields)
    grouped = [name for group in sqlload.GROUPS for name in group]
    assert sorted([*grouped, *sqlload.GUARDED]) == sorted(fields)
