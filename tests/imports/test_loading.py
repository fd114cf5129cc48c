"""The fast loading machinery of large imports: remembered cell conversions, the Postgres
COPY path with its set-based reference check, and the per-row foreign-key triggers it may
skip. Whatever the path, the rows written and the errors reported are the same."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection
from django.test import override_settings

from apps.crm.models import Account, Opportunity, OpportunityHistory
from apps.imports import validation, writers
from apps.imports.services import rows_import
from tests.imports.conftest import table_state
from tests.imports.test_opportunity_history import run_scenario, snapshot

pytestmark = pytest.mark.django_db


def deal(n: int, **changes: str) -> dict[str, str]:
    row = {
        "external_id": f"LD-{n}",
        "name": f"Loading deal {n}",
        "account": "ACC-1",
        "owner": "ada@example.com",
        "amount": "100.00",
        "stage": "Prospecting",
        "created_date": "2025-01-01",
        "close_date": "2025-02-01",
    }
    return {**row, **changes}


# --- remembered conversions -----------------------------------------------------------
def test_a_repeated_bad_cell_is_reported_on_every_line(crm):
    # given the same bad date and the same unknown owner on three rows
    rows = [deal(n, close_date="2025-13-01", owner="nobody@example.com") for n in range(3)]
    # when they are imported
    report = rows_import(kind="opportunities", rows=rows, user=crm.admin)
    # then each line has its own error for the date (the owner of a row with a bad cell is
    # never looked up, exactly as before)
    assert not report.ok
    assert [(e.line, e.field, e.message) for e in report.errors] == [
        (n, "close_date", "'2025-13-01' is not a date in the format YYYY-MM-DD.") for n in (1, 2, 3)
    ]


def test_a_repeated_unknown_reference_is_reported_on_every_line(crm):
    rows = [deal(n, owner="nobody@example.com") for n in range(3)]
    report = rows_import(kind="opportunities", rows=rows, user=crm.admin)
    message = (
        "unknown person 'nobody@example.com': no record has this e-mail "
        '(or allow "owners" in create_missing).'
    )
    assert [(e.line, e.field, e.message) for e in report.errors] == [
        (n, "owner", message) for n in (1, 2, 3)
    ]


def test_numbers_equal_as_python_values_are_not_confused(crm):
    # given JSON values that are equal in Python (1 == 1.0 == True) but mean different things
    rows = [
        deal(1, amount=1),
        deal(2, amount=1.5),
        deal(3, amount=True),
        deal(4, amount="1"),
    ]
    report = rows_import(kind="opportunities", rows=rows, user=crm.admin)
    # then the boolean is refused and the numbers are read as themselves
    assert [(e.line, e.message) for e in report.errors] == [(3, "True is not a number.")]
    assert report.rows == 4


def test_conversions_stay_right_past_the_memory_bound(crm, monkeypatch):
    # given a bound of 2 remembered texts per column
    monkeypatch.setattr(validation, "MEMO_MAX_VALUES", 2)
    amounts = ["10.00", "20.50", "30", "10.00", "-5", "-5"]
    rows = [deal(n, amount=a) for n, a in enumerate(amounts)]
    # when a column has more distinct texts than that
    report = rows_import(kind="opportunities", rows=rows, user=crm.admin)
    # then every cell is still converted and checked
    assert [(e.line, e.message) for e in report.errors] == [
        (5, "negative amount -5: must be zero or more."),
        (6, "negative amount -5: must be zero or more."),
    ]
    good = rows_import(kind="opportunities", rows=rows[:4], user=crm.admin)
    assert good.ok and good.created == 4, good.errors
    stored = dict(Opportunity.objects.values_list("external_id", "amount"))
    assert stored == {
        "LD-0": Decimal("10.00"),
        "LD-1": Decimal("20.50"),
        "LD-2": Decimal("30.00"),
        "LD-3": Decimal("10.00"),
    }


# --- the Postgres COPY path ----------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize("skip_triggers", [True, False])
def test_copy_path_gives_the_same_rows_with_or_without_row_triggers(crm, skip_triggers):
    # given the scenario imported through the services, one deal at a time
    expected = run_scenario(crm, "services")
    Opportunity.objects.all().delete()
    # when it runs through COPY, with the per-row foreign-key triggers skipped or not
    with override_settings(IMPORTS_SKIP_ROW_FK_TRIGGERS=skip_triggers):
        actual = run_scenario(crm, "copy")
    # then deals, history rows and counts are identical
    assert actual == expected


@pytest.mark.postgres
@pytest.mark.parametrize("scan_factor", [10**9, 0])
def test_a_large_import_reads_stored_deals_by_scan_or_by_key_alike(crm, monkeypatch, scan_factor):
    # given the scenario imported through the services, one deal at a time
    expected = run_scenario(crm, "services")
    Opportunity.objects.all().delete()
    # when every version counts as large (the deal table locked, stored deals read in
    # bulk: by one scan, or with factor 0 by external id) and the path is chosen alone
    monkeypatch.setattr(writers, "SERVICE_PATH_MAX_ROWS", 10)
    monkeypatch.setattr(writers, "EXISTING_SCAN_FACTOR", scan_factor)
    actual = run_scenario(crm, None)
    # then deals, history rows and counts are identical
    assert actual == expected


@pytest.mark.postgres
def test_copy_path_restores_the_trigger_mode(crm):
    # when a COPY import skipped the row triggers
    report = rows_import(
        kind="opportunities", rows=[deal(1)], user=crm.admin, opportunity_path="copy"
    )
    assert report.ok
    # then the session checks foreign keys again afterwards
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated "
            "AND conrelid IN (%s::regclass, %s::regclass)",
            [Opportunity._meta.db_table, OpportunityHistory._meta.db_table],
        )
        assert cursor.fetchone()[0] == 0


@pytest.mark.postgres
def test_copy_path_keeps_awkward_text_intact(crm):
    # given names that CSV and COPY treat specially
    names = ['He said "yes", twice', "line one\n\\.\nline three", "back\\slash\ttab", ",", ""]
    rows = [deal(n, name=name or "x", source=name) for n, name in enumerate(names)]
    # when they go through COPY and through the services
    expected_report = rows_import(
        kind="opportunities", rows=rows, user=crm.admin, opportunity_path="services"
    )
    expected = snapshot()
    Opportunity.objects.all().delete()
    report = rows_import(kind="opportunities", rows=rows, user=crm.admin, opportunity_path="copy")
    # then the stored text is the same
    assert expected_report.ok and report.ok
    assert snapshot() == expected
    assert Opportunity.objects.get(external_id="LD-1").name == "line one\n\\.\nline three"
    assert Opportunity.objects.get(external_id="LD-4").source == ""


@pytest.mark.postgres
def test_a_reference_deleted_during_the_import_writes_nothing(crm, monkeypatch):
    # given an account that disappears between validation and loading
    check = writers._references_locked_and_checked
    victim = Account.objects.create(external_id="ACC-GONE", name="Gone Ltd")

    def delete_then_check(cursor, ctx, changes):
        cursor.execute("DELETE FROM crm_account WHERE id = %s", [victim.pk])
        return check(cursor, ctx, changes)

    monkeypatch.setattr(writers, "_references_locked_and_checked", delete_then_check)
    before = table_state()
    # when deals referring to it are loaded
    report = rows_import(
        kind="opportunities",
        rows=[deal(1), deal(2, account="ACC-GONE")],
        user=crm.admin,
        opportunity_path="copy",
    )
    # then the import is refused, saying why, and nothing is written (the delete included)
    assert not report.ok
    assert [(e.line, e.message) for e in report.errors] == [
        (
            0,
            f"the database refused the import: account_id {victim.pk} of an imported deal "
            "is not in crm_account (deleted while the import ran?)",
        )
    ]
    assert table_state() == before


@pytest.mark.postgres
def test_a_trigger_of_our_own_keeps_the_row_triggers_on(crm):
    with connection.cursor() as cursor:
        assert writers.replica_loading_allowed(cursor)
        # given a trigger that is not a foreign key's (replica mode would skip it too)
        cursor.execute(
            "CREATE FUNCTION test_noop() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_noop BEFORE INSERT ON crm_opportunity "
            "FOR EACH ROW EXECUTE FUNCTION test_noop()"
        )
        # then the load keeps PostgreSQL's own row triggers on
        assert not writers.replica_loading_allowed(cursor)
    with override_settings(IMPORTS_SKIP_ROW_FK_TRIGGERS=False), connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_noop ON crm_opportunity")
        assert not writers.replica_loading_allowed(cursor)


def test_column_shortcuts_give_the_per_cell_values():
    # given columns that take the shortcuts (plain text that fits, plainly written amounts)
    from apps.imports.mapping import identity_mapping

    mapping = identity_mapping("opportunities").replace(
        defaults={
            "account": "ACC-1",
            "owner": "ada@example.com",
            "stage": "Won",
            "created_date": "2025-01-01",
            "close_date": "2025-02-01",
        }
    )
    amounts = ["0012.5", "12", "7.05", "0", "1234567890123456.10"]
    rows = [(n + 2, [f"  OPP-{n} ", f"Deal\t{n}", amount]) for n, amount in enumerate(amounts)]
    # when they are read
    read = validation.read_records(["external_id", "name", "amount"], rows, mapping)
    # then each value is what the per-cell conversion gives
    spec = mapping.spec.fields
    assert read.errors == []
    assert read.records[1]["close_date"] == dt.date(2025, 2, 1)
    for record, (_, cells) in zip(read.records, rows, strict=True):
        assert record["external_id"] == cells[0].strip()
        assert record["name"] == cells[1]
        assert record["amount"] == validation.convert_decimal(cells[2], spec["amount"], mapping)
    assert [r["amount"] for r in read.records] == [
        Decimal("12.50"),
        Decimal("12.00"),
        Decimal("7.05"),
        Decimal("0.00"),
        Decimal("1234567890123456.10"),
    ]
    assert str(read.records[0]["amount"]) == "12.50"


# --- the index-rebuild path -----------------------------------------------------------
def index_definitions() -> list[tuple[str, str, bool]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid), indisvalid "
            "FROM pg_index WHERE indrelid IN (%s::regclass, %s::regclass) ORDER BY 1",
            [Opportunity._meta.db_table, OpportunityHistory._meta.db_table],
        )
        return cursor.fetchall()


def spy_on_index_drops(monkeypatch) -> list[tuple[str, list[str]]]:
    """Record what each call of the rebuild decision dropped, by table."""
    calls: list[tuple[str, list[str]]] = []
    real = writers._secondary_indexes_dropped

    def spy(cursor, table, *, rows_written):
        dropped = real(cursor, table, rows_written=rows_written)
        calls.append((table, dropped))
        return dropped

    monkeypatch.setattr(writers, "_secondary_indexes_dropped", spy)
    return calls


@pytest.mark.postgres
@pytest.mark.parametrize("skip_triggers", [True, False])
def test_index_rebuild_path_gives_the_same_rows_history_and_indexes(
    crm, monkeypatch, skip_triggers
):
    # given the scenario imported through the services, one deal at a time
    expected = run_scenario(crm, "services")
    Opportunity.objects.all().delete()
    indexes = index_definitions()
    # when it runs through COPY with the indexes dropped and rebuilt on every load (with
    # the row foreign-key triggers skipped, or queued: they then run before the rebuild)
    monkeypatch.setattr(writers, "INDEX_REBUILD_FACTOR", 0)
    calls = spy_on_index_drops(monkeypatch)
    with override_settings(IMPORTS_SKIP_ROW_FK_TRIGGERS=skip_triggers):
        actual = run_scenario(crm, "copy")
    # then the rebuild path ran on both tables (the plain indexes: 6 + 5, never a unique
    # one), and deals, history rows, counts and indexes are identical
    dropped = {table: len(definitions) for table, definitions in calls if definitions}
    assert dropped == {"crm_opportunity": 6, "crm_opportunityhistory": 5}
    assert all("UNIQUE" not in d for _, definitions in calls for d in definitions)
    assert actual == expected
    assert index_definitions() == indexes


@pytest.mark.postgres
def test_a_small_load_into_a_large_table_keeps_its_indexes(crm, monkeypatch):
    # given the default factor: rows written must be at least the rows stored
    calls = spy_on_index_drops(monkeypatch)
    rows_import(
        kind="opportunities",
        rows=[deal(n) for n in range(30)],
        user=crm.admin,
        opportunity_path="copy",
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_opportunity")
    calls.clear()
    # when 3 deals are loaded into the 30 stored
    report = rows_import(
        kind="opportunities",
        rows=[deal(n) for n in range(30, 33)],
        user=crm.admin,
        opportunity_path="copy",
    )
    # then the deal table keeps its indexes (the 3 history rows are fewer than the 30 too)
    assert report.ok
    assert calls == [("crm_opportunity", []), ("crm_opportunityhistory", [])]


@pytest.mark.postgres
def test_a_failure_after_the_indexes_were_dropped_restores_them_and_writes_nothing(
    crm, monkeypatch
):
    # given a load that fails once the indexes of both tables are gone
    monkeypatch.setattr(writers, "INDEX_REBUILD_FACTOR", 0)
    real = writers._secondary_indexes_dropped

    def drop_then_fail(cursor, table, *, rows_written):
        dropped = real(cursor, table, rows_written=rows_written)
        assert dropped
        if table == OpportunityHistory._meta.db_table:
            raise IntegrityError("simulated failure after the indexes were dropped")
        return dropped

    monkeypatch.setattr(writers, "_secondary_indexes_dropped", drop_then_fail)
    indexes = index_definitions()
    before = table_state()
    # when deals are imported
    report = rows_import(
        kind="opportunities", rows=[deal(1), deal(2)], user=crm.admin, opportunity_path="copy"
    )
    # then the import is refused, nothing is written and every index is back, valid
    assert not report.ok
    assert [(e.line, e.message) for e in report.errors] == [
        (0, "the database refused the import: simulated failure after the indexes were dropped")
    ]
    assert table_state() == before
    assert index_definitions() == indexes


@pytest.mark.postgres
def test_a_reader_holding_the_table_keeps_the_indexes(crm, monkeypatch):
    # given another session reading the deal table in an open transaction
    import psycopg2

    monkeypatch.setattr(writers, "INDEX_REBUILD_FACTOR", 0)
    monkeypatch.setattr(writers, "INDEX_REBUILD_LOCK_TIMEOUT", "100ms")
    calls = spy_on_index_drops(monkeypatch)
    reader = psycopg2.connect(**connection.get_connection_params())
    try:
        with reader.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM crm_opportunity")
        indexes = index_definitions()
        # when a load would rebuild the indexes
        report = rows_import(
            kind="opportunities", rows=[deal(1), deal(2)], user=crm.admin, opportunity_path="copy"
        )
    finally:
        reader.rollback()
        reader.close()
    # then it gives up the exclusive lock it cannot get in time, keeps the deal table's
    # indexes (the history table, free, is still rebuilt) and loads the same rows
    assert report.ok, report.errors
    assert [(table, bool(dropped)) for table, dropped in calls] == [
        ("crm_opportunity", False),
        ("crm_opportunityhistory", True),
    ]
    assert Opportunity.objects.count() == 2 and OpportunityHistory.objects.count() == 2
    assert index_definitions() == indexes
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"


@pytest.mark.postgres
@override_settings(IMPORTS_REBUILD_INDEXES=False)
def test_the_index_rebuild_can_be_turned_off(crm, monkeypatch):
    monkeypatch.setattr(writers, "INDEX_REBUILD_FACTOR", 0)
    calls = spy_on_index_drops(monkeypatch)
    report = rows_import(
        kind="opportunities", rows=[deal(1)], user=crm.admin, opportunity_path="copy"
    )
    assert report.ok
    assert [dropped for _, dropped in calls] == [[], []]


def test_the_garbage_collector_is_paused_during_an_import_and_back_after(crm, monkeypatch):
    import gc

    # given a planner that notes whether the cyclic collector runs
    seen = []
    real = writers.PLANNERS["opportunities"]

    def noting(records, ctx):
        seen.append(gc.isenabled())
        return real(records, ctx)

    monkeypatch.setitem(writers.PLANNERS, "opportunities", noting)
    assert gc.isenabled()
    # when an import runs, then one that fails
    assert rows_import(kind="opportunities", rows=[deal(1)], user=crm.admin).ok
    bad = rows_import(kind="opportunities", rows=[deal(2, amount="x")], user=crm.admin)
    # then the collector was paused while planning, and is back on afterwards
    assert not bad.ok
    assert seen == [False, False]
    assert gc.isenabled()
