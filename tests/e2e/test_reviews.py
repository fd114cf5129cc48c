"""A manager writes and submits a review with the rep's numbers beside it; the rep reads
and acknowledges it (real browser)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from apps.kpis.services import rollups_rebuild
from apps.performance.models import PerformanceReview
from apps.quotas import fiscal
from apps.quotas.models import FiscalPeriod
from apps.quotas.services import quota_set
from tests.e2e.conftest import login
from tests.factories import OpportunityFactory, StageFactory
from tests.quotas.orgchart import PASSWORD, build_org

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_manager_submits_a_review_and_the_rep_acknowledges(page, live_server, screenshot):
    org = build_org()
    # Anna's last ended quarter: 24,000 won of a 30,000 quota, one deal lost
    quarter = fiscal.previous(
        fiscal.period_containing(timezone.localdate(), "quarter", settings.FISCAL_YEAR_START_MONTH),
        settings.FISCAL_YEAR_START_MONTH,
    )
    won, lost = StageFactory(won=True), StageFactory(lost=True)
    for n, (amount, stage) in enumerate(((10000, won), (14000, won), (5000, lost))):
        OpportunityFactory(
            owner=org.anna,
            amount=Decimal(amount),
            stage=stage,
            created_date=quarter.start - timedelta(days=30),
            close_date=quarter.start + timedelta(days=10 + n),
        )
    quota_set(
        period=FiscalPeriod.objects.get(start_date=quarter.start, kind="month"),
        amount=Decimal("30000"),
        set_by=org.max,
        rep=org.anna,
    )
    rollups_rebuild()

    # given the DACH manager with reviews due
    login(page, live_server.url, "max", PASSWORD)
    page.wait_for_selector("text=Log out")
    page.goto(f"{live_server.url}/reviews/")
    row = page.locator("#due-reviews tr", has_text="Anna Test").first
    # when he starts Anna's review
    row.locator("button").click()
    page.wait_for_selector("#review-form")
    period = page.inner_text("h1").split("·")[-1].strip()
    # the rep's KPIs for the period are shown beside the form
    kpis = page.inner_text("#review-kpis").lower()
    assert "bookings\n24,000" in kpis
    assert "quota attainment\n80 %" in kpis
    assert "win rate\n67 %" in kpis
    # submitting an empty review lists what is missing and keeps the draft
    page.click("#submit-review")
    page.wait_for_selector("text=The review is not complete; it stays a draft.")
    assert page.locator(".field-error").count() >= 6
    # (the refused form answers 400, which the browser reports on its console)
    assert page.console_errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    page.console_errors.clear()

    # when he rates every competency, writes the review and submits it
    for select in page.locator(".rv-ratings select").all():
        select.select_option("4")
    page.fill("#id_strengths", "Excellent discovery calls; strong pipeline hygiene.")
    page.fill("#id_areas_to_grow", "Multi-threading in enterprise accounts.")
    page.fill("#id_goals", "Two new enterprise logos next quarter.")
    page.click("#save-review")
    page.wait_for_selector("text=Draft saved.")
    assert page.input_value("#id_goals") == "Two new enterprise logos next quarter."
    assert page.locator(".field-error").count() == 0
    screenshot(page, "reviews")
    page.click("#submit-review")
    page.wait_for_selector("text=Review submitted; the rep can now acknowledge it.")
    assert page.inner_text("#review-status") == "Submitted"
    assert page.locator("#review-form").count() == 0  # read-only, amendments only
    assert page.locator("#amend-form").count() == 1
    assert page.console_errors == []
    page.click("text=Log out")

    # then Anna sees it, reads it and acknowledges it with a response
    login(page, live_server.url, "anna", PASSWORD)
    page.wait_for_selector("text=Log out")
    page.goto(f"{live_server.url}/reviews/")
    page.click(f"#my-reviews >> text={period}")
    assert "Excellent discovery calls" in page.inner_text("main")
    page.fill("#id_rep_response", "Thanks - agreed on the goals.")
    page.click("#acknowledge-review")
    page.wait_for_selector("text=Review acknowledged.")
    assert page.inner_text("#review-status") == "Acknowledged"
    assert page.inner_text("#rep-response") == "Thanks - agreed on the goals."
    review = PerformanceReview.objects.get(rep=org.anna)
    assert (review.status, review.reviewer) == ("acknowledged", org.max)
    assert page.console_errors == []
