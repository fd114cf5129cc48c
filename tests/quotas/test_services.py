"""Quota planning services: saving the grid, validation, audit, workflow, copy and spread."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from apps.core.errors import ApplicationError
from apps.crm.services import opportunity_create
from apps.kpis.models import DirtyMonth, QuotaRollup
from apps.kpis.services import rollups_rebuild
from apps.quotas import services
from apps.quotas.models import Quota, QuotaChange, QuotaPlan
from tests.factories import AccountFactory, ProductFactory, StageFactory

pytestmark = pytest.mark.django_db

D = Decimal
Q1 = "2025-Q1"


def cells(rep_or_team, **months: str) -> dict[str, str]:
    """Grid values for one row: cells(anna, jan="100") -> {"r7:2025-01": "100"}."""
    prefix = "t" if hasattr(rep_or_team, "kind") else "r"
    names = {"jan": "2025-01", "feb": "2025-02", "mar": "2025-03"}
    return {f"{prefix}{rep_or_team.pk}:{names[m]}": v for m, v in months.items()}


def amounts(**filters) -> dict[str, Decimal]:
    return {
        q.period.name: q.amount for q in Quota.objects.filter(**filters).select_related("period")
    }


def save(org, user, values, reason="", period=Q1, team=None):
    return services.quota_plan_save(
        team=team or org.dach, period=org.period(period), user=user, values=values, reason=reason
    )


# --- saving the grid ---------------------------------------------------------------------------
def test_saving_the_grid_costs_the_same_queries_for_two_cells_and_for_nine(
    org, django_capture_on_commit_callbacks
):
    """The grid is written through quotas_set_bulk in one go: the number of queries does not
    grow with the number of changed cells (rollup marks are queued after the commit)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(values) -> int:
        with CaptureQueriesContext(connection) as ctx:
            written = save(org, org.max, values)
        assert written == len(values)
        return len(ctx.captured_queries)

    save(org, org.max, cells(org.anna, jan="0"))  # the plan exists from here on
    # one changed and one new quota, then two changed and seven new: the same statements
    two = queries({**cells(org.anna, jan="1"), **cells(org.ben, jan="1")})
    nine = queries(
        {
            **cells(org.anna, jan="2", feb="2", mar="2"),
            **cells(org.ben, jan="2", feb="2", mar="2"),
            **cells(org.dach, jan="2", feb="2", mar="2"),
        }
    )
    assert two == nine
    assert Quota.objects.count() == 9


def test_manager_saves_the_grid_and_every_change_is_audited(org):
    # given an empty plan
    values = {
        **cells(org.anna, jan="10,000", feb="10000.50", mar=""),
        **cells(org.ben, jan="8000"),
        **cells(org.dach, jan="20000"),
    }
    # when the manager saves the grid
    written = save(org, org.max, values)
    # then the quotas exist in the base currency, set by the manager
    assert written == 4
    assert amounts(rep=org.anna) == {"2025-01": D("10000.00"), "2025-02": D("10000.50")}
    assert amounts(team=org.dach) == {"2025-01": D("20000.00")}
    assert set(Quota.objects.values_list("set_by", "currency")) == {(org.max.pk, "USD")}
    # and each one has an audit entry: who, when, old value (none), new value
    change = QuotaChange.objects.get(rep=org.anna, month__name="2025-02")
    assert (change.old_value, change.new_value, change.changed_by) == ("", "10000.50", org.max)
    assert change.plan == QuotaPlan.objects.get(team=org.dach, period__name=Q1)
    assert QuotaChange.objects.filter(field="amount").count() == 4

    # when the manager changes one value and saves the same values again
    values[f"r{org.anna.pk}:2025-01"] = "12000"
    assert save(org, org.max, values, reason="New territory") == 1
    # then only the changed quota is written, and its old and new values are kept
    latest = QuotaChange.objects.filter(rep=org.anna, month__name="2025-01").first()
    assert (latest.old_value, latest.new_value, latest.reason) == (
        "10000.00",
        "12000.00",
        "New territory",
    )
    assert QuotaChange.objects.filter(field="amount").count() == 5


def test_saving_updates_the_kpi_rollups_at_once(org, django_capture_on_commit_callbacks):
    # when a quota is saved and the transaction commits (tasks run in process in tests)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        save(org, org.max, cells(org.anna, feb="500"))
    # then the incremental KPI update ran for that month: the quota rollup has it
    assert len(callbacks) >= 1
    rollup = QuotaRollup.objects.get(rep_id=org.anna.pk, month=date(2025, 2, 1))
    assert rollup.amount == D("500.00")
    assert not DirtyMonth.objects.exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("anna:jan", "-1", "cannot be negative"),
        ("anna:jan", "ten", "not a number"),
        ("anna:jan", "1.005", "two decimal places"),
        ("carl:jan", "100", "is not a rep or team"),  # Carl is in Nordics, not DACH
        ("anna:2025-04", "100", "not a fiscal month of 2025-Q1"),
        ("anna:2024-13", "100", "not a fiscal month"),
        ("x99:jan", "100", "is not a rep or team"),
    ],
)
def test_bad_values_are_field_errors_and_nothing_is_saved(org, key, value, message):
    row, _, month = key.partition(":")
    month = {"jan": "2025-01"}.get(month, month)
    row_key = {"anna": f"r{org.anna.pk}", "carl": f"r{org.carl.pk}"}.get(row, row)
    bad = f"{row_key}:{month}"
    # given a grid with good values and one bad value
    values = {**cells(org.ben, jan="100", feb="200"), bad: value}
    # when it is saved
    with pytest.raises(services.QuotaValidationError) as caught:
        save(org, org.max, values)
    # then the error names the cell and says why, and nothing was written
    assert list(caught.value.errors) == [bad]
    assert message in caught.value.errors[bad][0]
    assert not Quota.objects.exists()
    assert not QuotaChange.objects.exists()
    assert not QuotaPlan.objects.exists()


def test_every_bad_cell_is_reported_at_once(org):
    values = {**cells(org.anna, jan="-1", feb="x"), **cells(org.ben, mar="1.001")}
    with pytest.raises(services.QuotaValidationError) as caught:
        save(org, org.max, values)
    assert len(caught.value.errors) == 3


def test_clearing_a_set_quota_asks_for_zero(org):
    save(org, org.max, cells(org.anna, jan="100"))
    with pytest.raises(services.QuotaValidationError, match="nothing was saved") as caught:
        save(org, org.max, cells(org.anna, jan="", feb="5"))
    assert "enter 0" in caught.value.errors[f"r{org.anna.pk}:2025-01"][0]
    assert amounts(rep=org.anna) == {"2025-01": D("100.00")}


def test_a_manager_cannot_plan_a_team_outside_their_subtree(org):
    with pytest.raises(services.QuotaPermissionError):
        save(org, org.nora, cells(org.anna, jan="100"))
    with pytest.raises(services.QuotaPermissionError):
        save(org, org.anna, cells(org.anna, jan="100"))  # a rep
    with pytest.raises(services.QuotaPermissionError):
        save(org, org.ops, cells(org.anna, jan="100"))  # RevOps reads only
    assert not Quota.objects.exists()


def test_the_region_plan_has_child_teams_as_rows(org):
    # Rita plans EMEA: its rows are the DACH and Nordics team targets
    frame = services.plan_frame(team=org.emea, period=org.period(Q1))
    assert frame.row_keys() == [f"t{org.dach.pk}", f"t{org.nordics.pk}", f"t{org.emea.pk}"]
    save(
        org,
        org.rita,
        {**cells(org.dach, jan="30000"), **cells(org.emea, jan="50000")},
        team=org.emea,
    )
    assert amounts(team=org.dach) == {"2025-01": D("30000.00")}


def test_plans_must_be_a_quarter_or_year_and_not_overlap(org):
    with pytest.raises(ApplicationError, match="quarter or year"):
        save(org, org.max, {}, period="2025-01")
    save(org, org.max, cells(org.anna, jan="1"))
    with pytest.raises(ApplicationError, match="overlaps"):
        save(org, org.max, {}, period="FY2025")


# --- workflow ------------------------------------------------------------------------------------
def submit(org, user=None):
    return services.quota_plan_submit(team=org.dach, period=org.period(Q1), user=user or org.max)


def test_draft_submitted_approved_locked(org):
    save(org, org.max, cells(org.anna, jan="100"))
    plan = submit(org)
    assert (plan.status, plan.submitted_by) == ("submitted", org.max)
    plan = services.quota_plan_approve(plan=plan, user=org.rita)
    assert (plan.status, plan.approved_by) == ("approved", org.rita)
    plan = services.quota_plan_lock(plan=plan, user=org.cso)
    assert (plan.status, plan.locked_by) == ("locked", org.cso)
    transitions = list(
        QuotaChange.objects.filter(field="status")
        .order_by("changed_at", "id")
        .values_list("old_value", "new_value", "changed_by")
    )
    assert transitions == [
        ("draft", "submitted", org.max.pk),
        ("submitted", "approved", org.rita.pk),
        ("approved", "locked", org.cso.pk),
    ]


def test_illegal_transitions_are_refused_and_change_nothing(org):
    plan = submit(org)
    with pytest.raises(ApplicationError, match="Only a draft plan can be submitted"):
        submit(org)
    with pytest.raises(ApplicationError, match="Only an executive"):
        services.quota_plan_lock(plan=plan, user=org.rita)
    with pytest.raises(ApplicationError, match="Only a approved plan can be locked"):
        services.quota_plan_lock(plan=plan, user=org.cso)
    # the team's own manager cannot approve their own quota; nor a sibling manager
    for user in (org.max, org.nora, org.anna, org.ops):
        with pytest.raises(services.QuotaPermissionError):
            services.quota_plan_approve(plan=plan, user=user)
    plan.refresh_from_db()
    assert plan.status == "submitted"
    assert QuotaChange.objects.filter(field="status").count() == 1
    services.quota_plan_approve(plan=plan, user=org.cso)
    with pytest.raises(ApplicationError, match="Only a submitted plan can be approved"):
        services.quota_plan_approve(plan=plan, user=org.rita)


def test_submitted_plans_are_read_only_until_sent_back(org):
    save(org, org.max, cells(org.anna, jan="100"))
    plan = submit(org)
    with pytest.raises(ApplicationError, match="is submitted"):
        save(org, org.max, cells(org.anna, jan="200"))
    with pytest.raises(ApplicationError, match="Say why"):
        services.quota_plan_return(plan=plan, user=org.rita, reason=" ")
    with pytest.raises(services.QuotaPermissionError):
        services.quota_plan_return(plan=plan, user=org.max, reason="I changed my mind")
    plan = services.quota_plan_return(plan=plan, user=org.rita, reason="Anna is too low")
    assert (plan.status, plan.submitted_at) == ("draft", None)
    assert QuotaChange.objects.filter(field="status").first().reason == "Anna is too low"
    save(org, org.max, cells(org.anna, jan="200"))
    assert amounts(rep=org.anna) == {"2025-01": D("200.00")}


def test_a_locked_plan_changes_only_by_an_executive_with_a_reason(org):
    save(org, org.max, cells(org.anna, jan="100"))
    plan = services.quota_plan_approve(plan=submit(org), user=org.rita)
    services.quota_plan_lock(plan=plan, user=org.cso)
    with pytest.raises(services.QuotaPermissionError):
        save(org, org.max, cells(org.anna, jan="200"), reason="please")
    with pytest.raises(services.QuotaPermissionError):
        save(org, org.rita, cells(org.anna, jan="200"), reason="please")
    with pytest.raises(ApplicationError, match="give a reason"):
        save(org, org.cso, cells(org.anna, jan="200"))
    assert amounts(rep=org.anna) == {"2025-01": D("100.00")}
    save(org, org.cso, cells(org.anna, jan="200"), reason="Territory moved to Anna")
    change = QuotaChange.objects.filter(rep=org.anna).first()
    assert (change.old_value, change.new_value, change.reason, change.changed_by) == (
        "100.00",
        "200.00",
        "Territory moved to Anna",
        org.cso,
    )


def test_quota_set_outside_the_grid_respects_the_lock(org):
    # the admin writes through quota_set: a locked month needs an executive and a reason
    save(org, org.max, cells(org.anna, jan="100"))
    services.quota_plan_lock(
        plan=services.quota_plan_approve(plan=submit(org), user=org.rita), user=org.cso
    )
    month = org.period("2025-01")
    with pytest.raises(services.QuotaPermissionError):
        services.quota_set(period=month, amount=D("5"), set_by=org.max, rep=org.anna)
    with pytest.raises(ApplicationError, match="reason"):
        services.quota_set(period=month, amount=D("5"), set_by=org.cso, rep=org.anna)
    services.quota_set(period=month, amount=D("5"), set_by=org.cso, rep=org.anna, reason="fix")
    # a month outside the locked plan is free
    services.quota_set(period=org.period("2025-04"), amount=D("5"), set_by=org.max, rep=org.anna)


# --- copy and spread -------------------------------------------------------------------------
def test_copy_from_the_previous_period_with_growth(org):
    # given quotas in 2024-Q4 (Oct, Nov, Dec)
    for month, amount in (("2024-10", "1000"), ("2024-11", "2000"), ("2024-12", "333.33")):
        services.quota_set(period=org.period(month), amount=D(amount), set_by=org.max, rep=org.anna)
    services.quota_set(
        period=org.period("2024-10"), amount=D("9000"), set_by=org.cso, team=org.dach
    )
    # a rep who has left DACH is not copied back in
    services.quota_set(period=org.period("2024-10"), amount=D("7"), set_by=org.cso, rep=org.carl)
    # when the manager copies them into 2025-Q1 with 10 % growth
    written = services.quota_plan_copy_previous(
        team=org.dach, period=org.period(Q1), user=org.max, growth_pct=D("10")
    )
    # then month 1 maps to month 1 ..., each grown and rounded to cents
    assert written == 4
    assert amounts(rep=org.anna, period__start_date__year=2025) == {
        "2025-01": D("1100.00"),
        "2025-02": D("2200.00"),
        "2025-03": D("366.66"),
    }
    assert amounts(team=org.dach, period__start_date__year=2025) == {"2025-01": D("9900.00")}
    assert not Quota.objects.filter(rep=org.carl, period__start_date__year=2025).exists()


def test_copy_refuses_bad_growth_and_an_empty_previous_period(org):
    with pytest.raises(services.QuotaValidationError, match="between"):
        services.quota_plan_copy_previous(
            team=org.dach, period=org.period(Q1), user=org.max, growth_pct=D("-150")
        )
    with pytest.raises(ApplicationError, match="no quotas in 2024-Q4"):
        services.quota_plan_copy_previous(team=org.dach, period=org.period(Q1), user=org.max)
    assert not Quota.objects.exists()


def spread(org, row, method, amount="1000.00", quarter=Q1, period=Q1):
    return services.quota_plan_spread(
        team=org.dach,
        period=org.period(period),
        user=org.max,
        row=row,
        quarter=org.period(quarter),
        amount=D(amount),
        method=method,
    )


def test_spread_a_quarter_evenly(org):
    assert spread(org, f"r{org.anna.pk}", "even") == 3
    assert amounts(rep=org.anna) == {
        "2025-01": D("333.34"),
        "2025-02": D("333.33"),
        "2025-03": D("333.33"),
    }


def test_spread_a_quarter_of_a_year_plan(org):
    spread(org, f"t{org.dach.pk}", "even", amount="90", quarter="2025-Q2", period="FY2025")
    assert amounts(team=org.dach) == {
        "2025-04": D("30.00"),
        "2025-05": D("30.00"),
        "2025-06": D("30.00"),
    }


def won_deal(owner, close: date, amount: str) -> None:
    opportunity_create(
        external_id=f"W-{owner.pk}-{close}-{amount}",
        name="Won deal",
        account=AccountFactory(),
        owner=owner,
        product=ProductFactory(),
        amount=D(amount),
        currency="USD",
        stage=StageFactory(won=True),
        created_date=date(2023, 10, 1),
        close_date=close,
    )


def test_spread_by_last_years_seasonality(org):
    # given Anna booked 1,000 in Jan 2024, nothing in Feb and 3,000 in Mar 2024
    won_deal(org.anna, date(2024, 1, 15), "1000")
    won_deal(org.anna, date(2024, 3, 10), "3000")
    rollups_rebuild()
    # when 2025-Q1's 10,000 is spread by seasonality
    spread(org, f"r{org.anna.pk}", "seasonality", amount="10000")
    # then the months follow last year's bookings: 25 %, 0 %, 75 %
    assert amounts(rep=org.anna) == {
        "2025-01": D("2500.00"),
        "2025-02": D("0.00"),
        "2025-03": D("7500.00"),
    }


def test_seasonality_without_bookings_last_year_is_refused(org):
    with pytest.raises(ApplicationError, match="spread evenly instead"):
        spread(org, f"r{org.anna.pk}", "seasonality")
    assert not Quota.objects.exists()


@pytest.mark.parametrize(
    ("row", "quarter", "method", "field"),
    [
        ("carl", Q1, "even", "row"),
        ("anna", "2025-Q2", "even", "quarter"),
        ("anna", Q1, "random", "method"),
    ],
)
def test_spread_refuses_bad_choices(org, row, quarter, method, field):
    key = f"r{getattr(org, row).pk}"
    with pytest.raises(services.QuotaValidationError) as caught:
        spread(org, key, method, quarter=quarter)
    assert field in caught.value.errors
    assert not Quota.objects.exists()
