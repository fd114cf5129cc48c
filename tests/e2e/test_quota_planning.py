"""A manager fills the quota grid and submits it; the CSO approves it (real browser)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.quotas.models import Quota, QuotaPlan
from apps.quotas.services import quota_set
from tests.e2e.conftest import login
from tests.quotas.orgchart import PASSWORD, build_org

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_manager_plans_and_submits_then_the_cso_approves(page, live_server, screenshot):
    org = build_org()
    # last quarter's quota, shown for reference beside the grid
    quota_set(period=org.period("2024-10"), amount=Decimal("9000"), set_by=org.max, rep=org.anna)
    plan_url = f"{live_server.url}/quotas/plan/{org.dach.pk}/2025-Q1/"

    # given the DACH manager on the planning page
    login(page, live_server.url, "max", PASSWORD)
    page.wait_for_selector("text=Log out")
    page.goto(plan_url)
    assert page.inner_text("#plan-status") == "Draft"

    def cell(row: str, month: str) -> str:
        return f'input[name="cell-{row}:{month}"]'

    anna, ben, team = f"r{org.anna.pk}", f"r{org.ben.pk}", f"t{org.dach.pk}"
    # when he types a value that is not a number, the cell is flagged while typing
    page.fill(cell(anna, "2025-01"), "12abc")
    assert "qp-invalid" in (page.get_attribute(cell(anna, "2025-01"), "class") or "")
    # and fills the grid; the totals and the gap follow as he types
    for row, values in ((anna, ("10000", "10000", "12000")), (ben, ("8000", "8000", "9000"))):
        for month, value in zip(("2025-01", "2025-02", "2025-03"), values, strict=True):
            page.fill(cell(row, month), value)
    page.fill(cell(team, "2025-01"), "20000")
    row_total = page.locator(f'tr[data-row="{anna}"] [data-row-total]')
    assert row_total.inner_text() == "32,000.00"
    assert page.inner_text('[data-col-total="0"]') == "18,000.00"
    assert page.inner_text('[data-gap="0"]') == "2,000.00"
    assert "qp-gap" in (page.get_attribute('[data-gap="0"]', "class") or "")
    assert page.inner_text("[data-gap-total]") == "2,000.00"  # months with a team target

    # and saves: the server keeps the same numbers
    page.click("#save-grid")
    page.wait_for_selector("text=Saved 7 quota(s).")
    assert Quota.objects.filter(rep=org.anna, period__name="2025-03").get().amount == Decimal(
        "12000.00"
    )
    assert page.inner_text("[data-grand-total]") == "57,000.00"
    assert "quota 2024-q4" in page.inner_text(".qp-grid thead").lower()
    assert "9,000.00" in page.inner_text(f'tr[data-row="{anna}"]')
    screenshot(page, "quota-planning")

    # and submits it for approval
    page.click("#submit-plan")
    page.wait_for_selector("text=Plan submitted for approval.")
    assert page.inner_text("#plan-status") == "Submitted"
    assert page.locator("input.qp-input").count() == 0  # read-only now
    assert page.locator("#approve-plan").count() == 0  # not his to approve
    assert page.console_errors == []
    page.click("text=Log out")

    # then the CSO finds it waiting for approval and approves it
    login(page, live_server.url, "cso", PASSWORD)
    page.wait_for_selector("text=Log out")
    page.goto(f"{live_server.url}/quotas/?period=2025-Q1")
    page.click("text=DACH · 2025-Q1")
    page.click("#approve-plan")
    page.wait_for_selector("text=Plan approved.")
    assert page.inner_text("#plan-status") == "Approved"
    assert "Approved by Cleo Test" in page.inner_text(".qp-steps")
    assert "submitted" in page.inner_text(".qp-history")
    plan = QuotaPlan.objects.get(team=org.dach, period__name="2025-Q1")
    assert (plan.status, plan.submitted_by, plan.approved_by) == ("approved", org.max, org.cso)
    assert page.console_errors == []
