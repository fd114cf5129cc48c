"""The planning pages: every action as every role, in and out of scope. Out of scope is a
404, in scope but not allowed a 403, and neither changes anything."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.quotas import services
from apps.quotas.models import Quota, QuotaChange, QuotaPlan

pytestmark = pytest.mark.django_db

D = Decimal
Q1 = "2025-Q1"


def url(org, name="plan", team=None, **kwargs):
    return reverse(f"quotas:{name}", args=[(team or org.dach).pk, Q1], kwargs=kwargs or None)


def cell(row, month="2025-01") -> str:
    prefix = "t" if hasattr(row, "kind") else "r"
    return f"cell-{prefix}{row.pk}:{month}"


def state() -> tuple:
    """Everything an action could change."""
    return (
        sorted(Quota.objects.values_list("id", "amount")),
        QuotaChange.objects.count(),
        sorted(QuotaPlan.objects.values_list("id", "status")),
    )


# --- who sees the page -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "status", "editable"),
    [
        ("cso", 200, True),
        ("ops", 200, False),
        ("rita", 200, True),
        ("max", 200, True),
        ("nora", 404, False),
        ("anna", 404, False),
    ],
)
def test_plan_page_by_role(org, client_for, who, status, editable):
    response = client_for(getattr(org, who)).get(url(org))
    assert response.status_code == status
    if status == 200:
        assert (cell(org.anna).encode() in response.content) is editable
        assert b"Anna Test" in response.content


def test_unknown_team_or_period_is_a_404(org, client_for):
    client = client_for(org.cso)
    assert client.get(reverse("quotas:plan", args=[9999, Q1])).status_code == 404
    assert client.get(reverse("quotas:plan", args=[org.dach.pk, "2030-Q9"])).status_code == 404
    assert client.get(reverse("quotas:plan", args=[org.dach.pk, "2025-01"])).status_code == 404


def test_the_grid_shows_totals_gap_and_last_period(org, client_for):
    # given last quarter's quota for Anna and this quarter's plan with a top-down gap
    services.quota_set(period=org.period("2024-11"), amount=D("700"), set_by=org.max, rep=org.anna)
    from apps.kpis.services import rollups_rebuild

    rollups_rebuild()
    services.quota_plan_save(
        team=org.dach,
        period=org.period(Q1),
        user=org.max,
        values={
            f"r{org.anna.pk}:2025-01": "1000",
            f"r{org.anna.pk}:2025-02": "1000",
            f"r{org.ben.pk}:2025-01": "500",
            f"t{org.dach.pk}:2025-01": "2000",
        },
    )
    response = client_for(org.max).get(url(org))
    grid = response.context["grid"]
    # row and column totals
    assert [row.total for row in grid.rows] == [D("2000.00"), D("500.00")]
    assert grid.column_totals == [D("1500.00"), D("1000.00"), D("0.00")]
    # the team's own quota beside the bottom-up sum, with the gap
    assert grid.gaps == [D("500.00"), None, None]
    assert grid.total_gap == D("500.00")  # only months with a team target have a gap
    assert b'class="num qp-gap"' in response.content
    # last period's quota and bookings come from the KPI selectors
    assert grid.previous_name == "2024-Q4"
    assert grid.rows[0].reference.quota == D("700.00")
    assert grid.rows[0].reference.bookings == D("0.00")


def test_the_plan_page_costs_a_bounded_number_of_queries(
    org, client_for, django_assert_max_num_queries
):
    client = client_for(org.max)
    with django_assert_max_num_queries(120):
        assert client.get(url(org)).status_code == 200


# --- saving ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "status"),
    [("cso", 302), ("rita", 302), ("max", 302), ("ops", 403), ("nora", 404), ("anna", 404)],
)
def test_saving_the_grid_by_role(org, client_for, who, status):
    before = state()
    response = client_for(getattr(org, who)).post(url(org), {cell(org.anna): "1234.50"})
    assert response.status_code == status
    if status == 302:
        assert Quota.objects.get(rep=org.anna).amount == D("1234.50")
    else:
        assert state() == before


def test_bad_cells_are_shown_in_place_and_nothing_is_saved(org, client_for):
    response = client_for(org.max).post(
        url(org), {cell(org.anna): "-3", cell(org.ben): "12", cell(org.anna, "2025-02"): "x"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "A quota cannot be negative." in html
    assert "is not a number" in html
    assert 'value="-3"' in html  # what was typed stays in the cell
    assert "nothing was saved" in html
    assert state() == ([], 0, [])


def test_a_cell_of_someone_outside_the_team_is_refused(org, client_for):
    response = client_for(org.max).post(url(org), {cell(org.carl): "100"})
    assert response.status_code == 400
    assert not Quota.objects.exists()


# --- workflow through the pages --------------------------------------------------------------
def post(client, path, data=None):
    return client.post(path, data or {})


@pytest.mark.parametrize(
    ("who", "status", "final"),
    [
        ("max", 302, "submitted"),
        ("rita", 302, "submitted"),
        ("cso", 302, "submitted"),
        ("ops", 403, None),
        ("nora", 404, None),
        ("anna", 404, None),
    ],
)
def test_submit_by_role(org, client_for, who, status, final):
    response = post(client_for(getattr(org, who)), url(org, "submit"))
    assert response.status_code == status
    assert (
        QuotaPlan.objects.filter(status=final).exists() if final else not QuotaPlan.objects.exists()
    )


@pytest.mark.parametrize(
    ("who", "status", "final"),
    [
        ("cso", 302, "approved"),
        ("rita", 302, "approved"),
        ("max", 403, "submitted"),  # cannot approve their own team's quota
        ("ops", 403, "submitted"),
        ("nora", 404, "submitted"),
        ("anna", 404, "submitted"),
    ],
)
def test_approve_by_role(org, client_for, who, status, final):
    services.quota_plan_submit(team=org.dach, period=org.period(Q1), user=org.max)
    response = post(client_for(getattr(org, who)), url(org, "approve"))
    assert response.status_code == status
    assert QuotaPlan.objects.get().status == final


@pytest.mark.parametrize(
    ("who", "status", "final"),
    [
        ("cso", 302, "locked"),
        ("rita", 403, "approved"),
        ("max", 403, "approved"),
        ("anna", 404, "approved"),
    ],
)
def test_lock_by_role(org, client_for, who, status, final):
    plan = services.quota_plan_submit(team=org.dach, period=org.period(Q1), user=org.max)
    services.quota_plan_approve(plan=plan, user=org.rita)
    response = post(client_for(getattr(org, who)), url(org, "lock"))
    assert response.status_code == status
    assert QuotaPlan.objects.get().status == final


def test_illegal_transition_through_the_page_is_a_message(org, client_for):
    client = client_for(org.cso)
    response = client.post(url(org, "approve"), follow=True)
    assert "not been submitted" in response.content.decode()
    assert not QuotaPlan.objects.exists()
    response = client.post(url(org, "lock"), follow=True)
    assert not QuotaPlan.objects.exists()


def test_send_back_needs_a_reason(org, client_for):
    plan = services.quota_plan_submit(team=org.dach, period=org.period(Q1), user=org.max)
    client = client_for(org.rita)
    response = client.post(url(org, "return"), {"reason": ""}, follow=True)
    assert "Say why" in response.content.decode()
    plan.refresh_from_db()
    assert plan.status == "submitted"
    client.post(url(org, "return"), {"reason": "Too low"})
    plan.refresh_from_db()
    assert plan.status == "draft"
    assert post(client_for(org.max), url(org, "return"), {"reason": "x"}).status_code in (302, 403)


def test_history_is_shown_on_the_page(org, client_for):
    client = client_for(org.max)
    client.post(url(org), {cell(org.anna): "100"})
    client.post(url(org), {cell(org.anna): "150", "reason": "Bigger patch"})
    html = client.get(url(org)).content.decode()
    assert "Bigger patch" in html
    assert "100.00" in html and "150.00" in html


# --- copy, spread, upload, downloads --------------------------------------------------------
def test_copy_and_spread_through_the_page(org, client_for):
    services.quota_set(period=org.period("2024-10"), amount=D("100"), set_by=org.max, rep=org.anna)
    client = client_for(org.max)
    assert client.post(url(org, "copy"), {"growth_pct": "50"}).status_code == 302
    assert Quota.objects.get(rep=org.anna, period__name="2025-01").amount == D("150.00")
    response = client.post(
        url(org, "spread"),
        {"row": f"r{org.ben.pk}", "quarter": Q1, "amount": "300", "method": "even"},
    )
    assert response.status_code == 302
    assert (
        sorted(Quota.objects.filter(rep=org.ben).values_list("amount", flat=True))
        == [D("100.00")] * 3
    )
    # out of scope and read-only users change nothing
    before = state()
    assert client_for(org.nora).post(url(org, "copy"), {"growth_pct": "1"}).status_code == 404
    assert client_for(org.ops).post(url(org, "copy"), {"growth_pct": "1"}).status_code == 403
    assert (
        client_for(org.anna)
        .post(
            url(org, "spread"),
            {"row": f"r{org.ben.pk}", "quarter": Q1, "amount": "9", "method": "even"},
        )
        .status_code
        == 404
    )
    assert state() == before


def test_bad_copy_and_spread_input_is_shown(org, client_for):
    client = client_for(org.max)
    response = client.post(url(org, "copy"), {"growth_pct": "5000"})
    assert response.status_code == 400
    assert "less than or equal to 1000" in response.content.decode()
    response = client.post(
        url(org, "spread"), {"row": "r0", "quarter": Q1, "amount": "-1", "method": "even"}
    )
    assert response.status_code == 400
    assert not Quota.objects.exists()


def test_upload_good_and_bad_files_through_the_page(org, client_for):
    client = client_for(org.max)
    bad = SimpleUploadedFile(
        "q.csv", b"rep_email,month,amount\nanna@example.com,2025-01,x\ncarl@example.com,2025-01,1\n"
    )
    response = client.post(url(org, "upload"), {"file": bad})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Line 2: amount: &#x27;x&#x27; is not a number." in html
    assert "Line 3: carl@example.com is not a rep of DACH" in html
    assert not Quota.objects.exists()
    good = SimpleUploadedFile("q.csv", b"rep_email,month,amount\nanna@example.com,2025-01,7\n")
    assert client.post(url(org, "upload"), {"file": good}).status_code == 302
    assert Quota.objects.get().amount == D("7.00")


def test_template_and_exports(org, client_for):
    services.quota_set(period=org.period("2025-01"), amount=D("10"), set_by=org.max, rep=org.anna)
    client = client_for(org.max)
    response = client.get(url(org, "template"))
    assert response["Content-Disposition"].endswith('-template.csv"')
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["rep_email", "team", "month", "amount"]
    assert ["anna@example.com", "", "2025-01", "10.00"] in rows
    assert ["", "DACH", "2025-03", ""] in rows
    # the template uploads back as it is: same amounts, so nothing is written
    changes = QuotaChange.objects.count()
    back = SimpleUploadedFile("t.csv", response.content)
    assert client.post(url(org, "upload"), {"file": back}).status_code == 302
    assert QuotaChange.objects.count() == changes
    response = client.get(reverse("quotas:export", args=[org.dach.pk, Q1, "xlsx"]))
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(response.content)).active
    values = list(sheet.values)
    assert values[0][:5] == ("rep_email", "team", "name", "month", "amount")
    assert ("anna@example.com", None, "Anna Test", "2025-01", 10) in [v[:5] for v in values]
    assert client.get(reverse("quotas:export", args=[org.dach.pk, Q1, "pdf"])).status_code == 404
    assert client_for(org.nora).get(url(org, "template")).status_code == 404
    assert (
        client_for(org.anna)
        .get(reverse("quotas:export", args=[org.dach.pk, Q1, "csv"]))
        .status_code
        == 404
    )


# --- the index -------------------------------------------------------------------------------
def test_index_lists_plans_by_role(org, client_for):
    services.quota_plan_submit(team=org.dach, period=org.period(Q1), user=org.max)
    response = client_for(org.rita).get(reverse("quotas:index"), {"period": Q1})
    teams = [team.name for team, _plan in response.context["rows"]]
    assert teams == ["DACH", "EMEA", "Nordics"]
    assert [p.team for p in response.context["awaiting"]] == [org.dach]
    # Max sees his team but DACH's plan is not his to approve
    response = client_for(org.max).get(reverse("quotas:index"), {"period": Q1})
    assert [team.name for team, _plan in response.context["rows"]] == ["DACH"]
    assert response.context["awaiting"] == []


def test_a_rep_reads_only_their_own_quotas(org, client_for):
    services.quota_set(period=org.period("2025-01"), amount=D("11"), set_by=org.max, rep=org.anna)
    services.quota_set(period=org.period("2025-01"), amount=D("22"), set_by=org.max, rep=org.ben)
    response = client_for(org.anna).get(reverse("quotas:index"))
    assert [q.amount for q in response.context["quotas"]] == [D("11.00")]
    assert b"22.00" not in response.content


def test_a_period_whose_months_are_missing_is_explained(org, client_for):
    from apps.quotas.models import FiscalPeriod

    FiscalPeriod.objects.filter(name="2025-02").delete()
    client = client_for(org.max)
    response = client.get(url(org))
    assert response.status_code == 400
    assert "have not been generated" in response.content.decode()
    response = client.post(
        url(org, "spread"),
        {"row": f"r{org.anna.pk}", "quarter": Q1, "amount": "3", "method": "even"},
    )
    assert response.status_code == 400
    assert not Quota.objects.exists()
