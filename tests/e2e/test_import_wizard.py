"""A RevOps admin walks the import wizard in a browser: upload, columns, values, preview,
import; the preview page is saved as docs/screenshots/import-wizard.png."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.crm.models import Account, Opportunity, Product, Stage
from apps.imports.models import ImportJob
from apps.org.models import Role, Team, User
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "Correct-Horse-42"
EXPORT = (
    "Deal ID,Deal Name,Account Name,Owner Email,Product,Amount,Currency,Sales Stage,"
    "Created On,Close Date\n"
    "CRM-1001,Northwind platform,Northwind,mia@example.com,Platform,24000,USD,Closed Won,"
    "2025-01-06,2025-02-14\n"
    "CRM-1002,Contoso analytics,Contoso,mia@example.com,Analytics,9500.50,EUR,Negotiation,"
    "2025-02-03,2025-05-30\n"
    "CRM-1003,Fabrikam renewal,Fabrikam,mia@example.com,Platform,18000,USD,Qualification,"
    "2025-03-01,2025-06-30\n"
)


@pytest.fixture
def setup_data(tmp_path):
    company = Team.objects.create(name="Acme Cloud", kind=Team.Kind.COMPANY)
    team = Team.objects.create(name="Enterprise East", parent=company)
    User.objects.create_user(
        username="ops",
        password=PASSWORD,
        first_name="Omar",
        last_name="Haddad",
        email="ops@example.com",
        role=Role.REVOPS_ADMIN,
    )
    User.objects.create_user(
        username="mia",
        password=PASSWORD,
        first_name="Mia",
        last_name="Schulz",
        email="mia@example.com",
        role=Role.REP,
        team=team,
    )
    Stage.objects.create(name="Qualification", order=1, probability=Decimal("20"))
    Stage.objects.create(name="Negotiation", order=2, probability=Decimal("60"))
    Stage.objects.create(name="Won", order=3, outcome="won", probability=Decimal("100"))
    Stage.objects.create(name="Lost", order=4, outcome="lost", probability=Decimal("0"))
    for n, name in enumerate(["Northwind", "Contoso", "Fabrikam"]):
        Account.objects.create(external_id=f"ACC-{n}", name=name)
    Product.objects.create(external_id="P-1", name="Platform")
    Product.objects.create(external_id="P-2", name="Analytics")
    path = tmp_path / "crm-export.csv"
    path.write_text(EXPORT)
    return path


def test_revops_admin_imports_a_crm_export(page, live_server, setup_data, screenshot):
    # given a RevOps admin with a CRM export whose won stage is called "Closed Won"
    login(page, live_server.url, "ops", PASSWORD)
    page.wait_for_selector(".usermenu")
    page.goto(f"{live_server.url}/imports/")
    # when they upload it as opportunities
    page.select_option("#id_kind", "opportunities")
    page.set_input_files("#id_file", str(setup_data))
    page.click("#upload-form button[type=submit]")
    # then the columns are suggested from the headers
    page.wait_for_selector("#columns-form")
    assert page.input_value("#id_col_external_id") == "Deal ID"
    assert page.input_value("#id_col_owner") == "Owner Email"
    assert page.input_value("#id_col_created_date") == "Created On"
    page.click("#columns-form button[type=submit]")
    # and every distinct stage is listed once, the unknown one flagged
    page.wait_for_selector("#values-form")
    stage_row = page.locator("tr", has_text="Closed Won")
    assert "not one of ours" in stage_row.inner_text()
    stage_row.locator("select").select_option("Won")
    page.click("#values-form button[type=submit]")
    # the preview checks every row and offers the import
    page.wait_for_selector("#preview-summary")
    assert "Ready: 3 rows check out." in page.inner_text("#preview-summary")
    assert "create 3" in page.inner_text("#preview-summary")
    screenshot(page, "import-wizard")
    page.click("#commit-form button[type=submit]")
    # the job page shows the result
    page.wait_for_selector("#import-progress")
    assert "Committed" in page.inner_text("#import-progress")
    assert "Created 3" in page.inner_text("#import-progress")
    assert page.console_errors == []
    won = Opportunity.objects.get(external_id="CRM-1001")
    assert won.stage.name == "Won" and won.forecast_category == "closed"
    assert ImportJob.objects.get().status == "committed"


def test_the_job_page_follows_a_background_import(page, live_server, setup_data):
    # given a large import queued for the worker
    ops = User.objects.get(username="ops")
    job = ImportJob.objects.create(
        kind="opportunities",
        file_name="big.csv",
        uploaded_by=ops,
        status="validating",
        row_count=250000,
        progress=40,
    )
    login(page, live_server.url, "ops", PASSWORD)
    page.wait_for_selector(".usermenu")
    page.goto(f"{live_server.url}/imports/{job.pk}/")
    # the page shows the progress so far
    assert page.get_attribute("[role=progressbar]", "aria-valuenow") == "40"
    assert "Validating" in page.inner_text("#import-progress")
    # when the worker finishes, the page notices on its own and shows the result
    ImportJob.objects.filter(pk=job.pk).update(status="committed", progress=100, created=250000)
    page.wait_for_selector("text=Created 250000", timeout=10000)
    assert page.get_attribute("[role=progressbar]", "aria-valuenow") == "100"
    assert page.console_errors == []
