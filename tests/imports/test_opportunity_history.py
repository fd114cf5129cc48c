"""Deal imports keep the opportunity history exactly like apps.crm.services, whichever
write path runs (services one by one, portable bulk, or Postgres COPY)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from apps.crm.models import Opportunity, OpportunityHistory
from apps.imports.services import file_import, rows_import
from tests.imports.conftest import GOOD

pytestmark = pytest.mark.django_db


def import_good(crm):
    path = GOOD / "opportunities.csv"
    report = file_import(
        kind="opportunities", data=path.read_bytes(), filename=path.name, user=crm.admin
    )
    assert report.ok, report.errors


def test_changes_write_one_history_row_per_changed_deal(crm):
    # given the good file imported once
    import_good(crm)
    header, *lines = (GOOD / "opportunities.csv").read_text().splitlines()
    # when a new version moves OPP-1 to another stage with a new amount, renames OPP-2
    # (not a tracked field) and adds OPP-5
    lines[0] = lines[0].replace("12000.50", "15000").replace("Prospecting", "Negotiation")
    lines[1] = lines[1].replace("Globex new logo", "Globex first deal")
    lines.append(
        "OPP-5,New one,ACC-1,ada@example.com,,100,USD,Prospecting,,,,2025-04-01,2025-05-01,"
    )
    data = "\n".join([header, *lines]).encode()
    report = file_import(kind="opportunities", data=data, filename="v2.csv", user=crm.admin)
    # then the counts and the history say exactly that
    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged) == (1, 2, 2)
    one = Opportunity.objects.get(external_id="OPP-1")
    assert (one.stage, one.amount, one.forecast_category) == (
        crm.negotiation,
        Decimal("15000.00"),
        "best_case",
    )
    history = list(one.history.order_by("id").values_list("changed_fields", "source", "amount"))
    assert history == [
        ("created", "import", Decimal("12000.50")),
        ("stage,amount", "import", Decimal("15000.00")),
    ]
    assert Opportunity.objects.get(external_id="OPP-2").name == "Globex first deal"
    assert OpportunityHistory.objects.filter(opportunity__external_id="OPP-2").count() == 1
    assert OpportunityHistory.objects.filter(opportunity__external_id="OPP-5").count() == 1


def test_a_deal_moved_to_a_won_stage_is_closed(crm):
    import_good(crm)
    report = rows_import(
        kind="opportunities",
        rows=[
            {
                "external_id": "OPP-1",
                "name": "Acme expansion",
                "account": "ACC-1",
                "owner": "ada@example.com",
                "amount": 12000.5,
                "stage": "Won",
                "created_date": "2025-01-10",
                "close_date": "2025-03-15",
            }
        ],
        user=crm.admin,
        source="api",
    )
    assert report.ok, report.errors
    deal = Opportunity.objects.get(external_id="OPP-1")
    assert deal.forecast_category == "closed"
    last = deal.history.order_by("-id").first()
    assert last.changed_fields == "stage,close_date,forecast_category"
    assert last.source == "api" and last.changed_by == crm.admin


def scenario_rows(crm, version: int) -> list[dict]:
    """60 deals; version 2 changes tracked fields of some, untracked fields of others."""
    owners = ["ada@example.com", "Bob Stone"]
    stages = ["Prospecting", "Negotiation", "Won", "Lost"]
    rows = []
    for n in range(60):
        row = {
            "external_id": f"SCN-{n:03d}",
            # n == 5: characters that COPY's text format must escape
            "name": "Tab\there, back\\slash\nnew line" if n == 5 else f"Scenario deal {n}",
            "account": "ACC-1" if n % 3 else "Globex",
            "owner": owners[n % 2],
            "product": "Platform" if n % 4 else "",
            "amount": f"{1000 + n * 10}.25",
            "currency": "EUR" if n % 5 == 0 else "USD",
            "stage": stages[n % 4],
            "forecast_category": "commit" if n % 7 == 0 else "",
            "created_date": "2025-01-01",
            "close_date": f"2025-0{1 + n % 6}-15",
        }
        if version == 2:
            if n % 3 == 0:
                row["stage"] = stages[(n + 1) % 4]
            if n % 5 == 1:
                row["amount"] = "99.00"
            if n % 6 == 2:
                row["owner"] = owners[(n + 1) % 2]
            if n % 8 == 3:
                row["name"] = f"Renamed {n}"
            if n % 10 == 4:
                row["close_date"] = "2025-12-31"
        rows.append(row)
    if version == 2:
        rows.append({**rows[0], "external_id": "SCN-NEW", "name": "Brand new"})
    return rows


def snapshot() -> tuple[list, list]:
    deals = list(
        Opportunity.objects.order_by("external_id").values_list(
            "external_id",
            "name",
            "account_id",
            "owner_id",
            "product_id",
            "amount",
            "currency",
            "stage_id",
            "forecast_category",
            "deal_type",
            "source",
            "created_date",
            "close_date",
            "lost_reason",
        )
    )
    history = list(
        OpportunityHistory.objects.order_by("opportunity__external_id", "id").values_list(
            "opportunity__external_id",
            "changed_fields",
            "source",
            "changed_by_id",
            "stage_id",
            "amount",
            "currency",
            "close_date",
            "owner_id",
            "forecast_category",
        )
    )
    return deals, history


def run_scenario(crm, path: str) -> tuple[list, list, list[tuple[int, int, int]]]:
    counts = []
    for version in (1, 2, 2):
        report = rows_import(
            kind="opportunities",
            rows=scenario_rows(crm, version),
            user=crm.admin,
            opportunity_path=path,
        )
        assert report.ok, report.errors[:5]
        counts.append((report.created, report.updated, report.unchanged))
    return (*snapshot(), counts)


PATHS = ["bulk", pytest.param("copy", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("path", PATHS)
def test_bulk_paths_give_the_same_rows_as_the_services(crm, path):
    # given the scenario imported through the services, one deal at a time
    expected = run_scenario(crm, "services")
    assert expected[2] == [(60, 0, 0), (1, 42, 18), (0, 0, 61)]
    Opportunity.objects.all().delete()
    # when the same scenario runs through the bulk path
    actual = run_scenario(crm, path)
    # then deals, history rows and counts are identical
    assert actual[2] == expected[2]
    assert actual[0] == expected[0]
    assert actual[1] == expected[1]


def test_history_timestamps_are_the_import_time(crm):
    before = dt.datetime.now(dt.UTC)
    import_good(crm)
    times = set(OpportunityHistory.objects.values_list("changed_at", flat=True))
    assert len(times) == 1 and next(iter(times)) >= before


@pytest.mark.parametrize(
    "path", ["services", "bulk", pytest.param("copy", marks=pytest.mark.postgres)]
)
def test_every_import_path_leaves_the_rollups_a_full_rebuild_would(
    crm, path, django_capture_on_commit_callbacks
):
    """The services queue each changed deal (its cells are recomputed), the bulk paths
    queue whole months; either way the incremental update must give the rollups a full
    rebuild gives."""
    from apps.kpis import services as kpi_services
    from tests.factories import ExchangeRateFactory
    from tests.kpis.test_kpis_incremental import snapshot

    ExchangeRateFactory(rate_date=dt.date(2020, 1, 1))  # the scenario has EUR deals
    kpi_services.rollups_rebuild()
    for version in (1, 2):
        with django_capture_on_commit_callbacks(execute=True):
            report = rows_import(
                kind="opportunities",
                rows=scenario_rows(crm, version),
                user=crm.admin,
                opportunity_path=path,
            )
        assert report.ok
        kpi_services.rollups_update()  # what the queued task runs
    updated = snapshot()
    kpi_services.rollups_rebuild()
    assert updated == snapshot()
    assert any(updated.values())
