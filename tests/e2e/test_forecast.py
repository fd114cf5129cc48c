"""The Forecast page in a real browser, on the demo company (small scale) with forecasts
computed by the real engine and the demo's synthesised calls: the CSO sees every section
render without JavaScript errors and tries a what-if; a manager submits a call through the
form and finds it in the history; a rep's edited URL to a team is refused."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.utils import timezone

from apps.demo.generator import DEMO_PASSWORD
from apps.demo.services import demo_seed
from apps.forecasting.demo import forecast_demo_seed
from apps.forecasting.models import ForecastCall
from apps.forecasting.services import forecasts_recompute
from apps.kpis.services import rollups_rebuild
from apps.org.models import Team
from apps.quotas import fiscal
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(transactional_db) -> dict[str, str]:
    today = timezone.localdate()
    result = demo_seed(scale=1500, as_of=today)
    rollups_rebuild()
    forecasts_recompute(as_of=today)
    forecast_demo_seed(as_of=today, seed=7)
    return {role: username for role, username, _ in result.logins}


def _charts_rendered(page) -> int:
    count = page.locator("[data-chart]").count()
    page.wait_for_function(
        "n => document.querySelectorAll('[data-rendered=\"1\"]').length === n", arg=count
    )
    return count


def test_forecast_page_for_each_role(page, live_server, demo, screenshot):
    """One demo load (the expensive part) for the three roles, one after the other."""
    _cso_sees_the_forecast_and_tries_a_what_if(page, live_server, demo, screenshot)
    _manager_submits_a_call(page, live_server, demo)
    _rep_edited_url_is_refused(page, live_server, demo)


def _cso_sees_the_forecast_and_tries_a_what_if(page, live_server, demo, screenshot):
    login(page, live_server.url, demo["executive"], DEMO_PASSWORD)
    page.goto(f"{live_server.url}/forecast/")
    assert page.locator("h1").inner_text() == "Forecast"
    # forecast vs quota, calls history, outlook
    assert _charts_rendered(page) == 3
    assert page.locator("[data-tile=monte_carlo]").is_visible()
    assert page.locator("[data-testid=accuracy] tbody tr").count() >= 4
    assert page.locator("[data-testid=deals] tbody tr").count() == 25
    # Scores were stored by the recompute; the page only reads them
    assert page.locator("[data-testid=deals-scored]").is_visible()
    assert page.locator("[data-testid=deals] [data-testid=not-scored]").count() == 0
    assert page.locator("[data-testid=call-history] tbody tr").count() >= 1
    screenshot(page, "forecast")
    baseline = page.locator("[data-testid=outlook-years] tbody tr td").nth(1).inner_text()
    page.fill("#id_growth", "15")
    page.click("[data-testid=scenario-form] button")
    page.wait_for_selector("[data-testid=outlook-years]")
    _charts_rendered(page)
    assert page.locator("[data-testid=outlook-years] tbody tr td").nth(1).inner_text() != baseline
    page.locator("#outlook").screenshot(path=str(_path("forecast-outlook")))
    # Scores are stored per quarter: a month's deals show the stage probability, marked
    month = fiscal.period_containing(
        timezone.localdate(), "month", settings.FISCAL_YEAR_START_MONTH
    ).name
    page.goto(f"{live_server.url}/forecast/?period={month}#deals")
    rows = page.locator("[data-testid=deals] tbody tr").count()
    assert rows >= 1
    assert page.locator("[data-testid=deals] [data-testid=not-scored]").count() == rows
    assert page.locator("[data-testid=deals-unscored]").is_visible()
    page.locator("#deals").screenshot(path=str(_path("forecast-deals-not-scored")))
    assert page.console_errors == []


def _path(name: str):
    from tests.e2e.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def _manager_submits_a_call(page, live_server, demo):
    page.context.clear_cookies()
    login(page, live_server.url, demo["manager"], DEMO_PASSWORD)
    page.goto(f"{live_server.url}/forecast/")
    form = page.locator("[data-testid=call-form]")
    assert form.is_visible()
    before = ForecastCall.objects.count()
    page.fill("#id_commit", "123456.00")
    page.fill("#id_best_case", "150000.00")
    assert "adjustment" in form.locator("[data-adjust=commit]").inner_text()
    page.fill("#id_comment", "Browser test call")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("[data-testid=call-history]")
    assert ForecastCall.objects.count() == before + 1
    first_row = page.locator("[data-testid=call-history] tbody tr").first
    assert "Browser test call" in first_row.inner_text()
    assert "$123,456.00" in first_row.inner_text()
    page.locator("#calls").screenshot(path=str(_path("forecast-calls")))
    assert page.console_errors == []


def _rep_edited_url_is_refused(page, live_server, demo):
    page.context.clear_cookies()
    login(page, live_server.url, demo["rep"], DEMO_PASSWORD)
    page.goto(f"{live_server.url}/forecast/")
    assert page.locator("[data-testid=call-form]").count() == 0
    team = Team.objects.filter(parent__isnull=True).get()
    response = page.goto(f"{live_server.url}/forecast/?team={team.pk}")
    assert response.status == 404
