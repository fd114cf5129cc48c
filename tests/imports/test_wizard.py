"""The import wizard, page by page, through the Django test client."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse

from apps.core.models import JobRun
from apps.crm.models import Opportunity
from apps.imports.models import ImportJob, SavedMapping
from tests.factories import ExecutiveFactory, ManagerFactory, RepFactory
from tests.imports.conftest import GOOD, table_state

pytestmark = pytest.mark.django_db

CRM_EXPORT = (
    "Deal ID,Deal Name,Account Name,Owner Email,Product,Value,Currency,Sales Stage,"
    "Created On,Close Date\n"
    "X-1,First deal,Acme Corp,ada@example.com,Platfrom,1000,USD,Closed Won,01/02/2025,15/02/2025\n"
    "X-2,Second deal,ACC-2,bob@example.com,Analytics,2500.5,USD,Qualify,03/02/2025,30/04/2025\n"
    "X-3,Third deal,Globex,Bob Stone,,700,USD,Qualify,05/02/2025,30/05/2025\n"
)


def upload(client: Client, kind: str, name: str, content: bytes, **extra):
    return client.post(
        reverse("imports:index"),
        {"kind": kind, "file": SimpleUploadedFile(name, content), **extra},
    )


@pytest.fixture
def ops_client(crm) -> Client:
    client = Client()
    client.force_login(crm.admin)
    return client


def test_full_walk_with_column_and_value_mapping(crm, ops_client):
    # given an export from another CRM with its own headers, stage names and a misspelt product
    response = upload(ops_client, "opportunities", "export.csv", CRM_EXPORT.encode())
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("imports:columns", args=[job.pk])
    assert job.row_count == 3 and job.status == "draft"
    # the column step suggests columns from the headers
    page = ops_client.get(reverse("imports:columns", args=[job.pk]))
    form = page.context["form"]
    assert form["col_external_id"].initial == "Deal ID"
    assert form["col_owner"].initial == "Owner Email"
    assert form["col_amount"].initial == "Value"
    assert form["col_created_date"].initial == "Created On"
    # when the columns are confirmed with a day-first date format
    post = {f"col_{r['name']}": r["column"].initial or "" for r in form.field_rows}
    post.update({"date_format": "%d/%m/%Y", "decimal_separator": ".", "encoding": "utf-8"})
    response = ops_client.post(reverse("imports:columns", args=[job.pk]), post)
    assert response.status_code == 302, response.context["form"].errors
    # then the value step lists every distinct stage and product once
    page = ops_client.get(reverse("imports:values", args=[job.pk]))
    groups = {g["field"].name: g for g in page.context["form"].groups}
    assert [r["source"] for r in groups["stage"]["rows"]] == ["Closed Won", "Qualify"]
    assert [r["count"] for r in groups["stage"]["rows"]] == [1, 2]
    assert [r["source"] for r in groups["product"]["rows"]] == ["Platfrom", "Analytics"]
    values = {}
    for index, group in enumerate(page.context["form"].groups):
        for row_index, row in enumerate(group["rows"]):
            target = {"Closed Won": "Won", "Qualify": "Prospecting", "Platfrom": "Platform"}
            values[f"v_{index}_{row_index}"] = target.get(row["source"], "")
    response = ops_client.post(reverse("imports:values", args=[job.pk]), values)
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.mapping["values"]["stage"] == {"Closed Won": "Won", "Qualify": "Prospecting"}
    # the preview checks every row and writes nothing
    before = table_state()
    page = ops_client.get(reverse("imports:preview", args=[job.pk]))
    report = page.context["report"]
    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)
    assert page.context["rows"][0]["cells"][7] == "Won"
    assert table_state() == before
    # saving the mapping makes it reusable and downloadable
    ops_client.post(
        reverse("imports:preview", args=[job.pk]), {"save_mapping": "1", "name": "Other CRM"}
    )
    saved = SavedMapping.objects.get(name="Other CRM")
    download = ops_client.get(reverse("imports:mapping-download", args=[saved.pk]))
    assert download["Content-Type"] == "application/json"
    assert json.loads(download.content)["values"]["product"] == {"Platfrom": "Platform"}
    # when committed (small file: in the request)
    response = ops_client.post(reverse("imports:preview", args=[job.pk]), {"commit": "1"})
    assert response["Location"] == reverse("imports:job", args=[job.pk])
    job.refresh_from_db()
    assert job.status == "committed" and (job.created, job.error_count) == (3, 0)
    assert job.file_data in (b"", memoryview(b"")) or bytes(job.file_data) == b""
    won = Opportunity.objects.get(external_id="X-1")
    assert (won.stage, won.product, won.forecast_category) == (crm.won, crm.platform, "closed")
    assert str(won.created_date) == "2025-02-01"
    assert JobRun.objects.filter(kind="imports.file_import", status="succeeded").count() == 1
    # the job page shows the result and the saved mapping is offered on the next upload
    page = ops_client.get(reverse("imports:job", args=[job.pk]))
    assert b"Created <strong>3</strong>" in page.content


def test_a_saved_mapping_is_reused_on_upload(crm, ops_client):
    mapping = {
        "kind": "opportunities",
        "columns": {
            "external_id": "Deal ID",
            "name": "Deal Name",
            "account": "Account Name",
            "owner": "Owner Email",
            "product": "Product",
            "amount": "Value",
            "stage": "Sales Stage",
            "created_date": "Created On",
            "close_date": "Close Date",
        },
        "values": {
            "stage": {"Closed Won": "Won", "Qualify": "Prospecting"},
            "product": {"Platfrom": "Platform"},
        },
        "date_format": "%d/%m/%Y",
    }
    saved = SavedMapping.objects.create(name="CRM", kind="opportunities", document=mapping)
    upload(ops_client, "opportunities", "export.csv", CRM_EXPORT.encode(), saved_mapping=saved.pk)
    job = ImportJob.objects.get()
    page = ops_client.get(reverse("imports:preview", args=[job.pk]))
    assert page.context["report"].ok, page.context["report"].errors


def test_preview_lists_every_error_and_commit_is_refused(crm, ops_client):
    bad = (
        (GOOD / "opportunities.csv")
        .read_text()
        .replace("12000.50", "-1")
        .replace("Globex new logo,Globex,Bob Stone", "Globex new logo,Globex,Nobody Here")
    )
    upload(ops_client, "opportunities", "bad.csv", bad.encode())
    job = ImportJob.objects.get()
    page = ops_client.get(reverse("imports:preview", args=[job.pk]))
    errors = page.context["errors"]
    assert [(e.line, e.field) for e in errors] == [(2, "amount"), (3, "owner")]
    assert b"disabled" in page.content
    csv = ops_client.get(reverse("imports:errors-csv", args=[job.pk]))
    assert csv.content.decode("utf-8-sig").splitlines()[1].startswith("2,amount,")
    before = table_state()
    ops_client.post(reverse("imports:preview", args=[job.pk]), {"commit": "1"})
    job.refresh_from_db()
    assert job.status == "failed" and job.error_count == 2
    assert table_state() == before


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("deals.pdf", b"%PDF-1.4", "neither a .csv nor a .xlsx"),
        ("deals.xlsx", b"external_id\nX\n", "is not an XLSX workbook"),
        ("deals.csv", b"", "The submitted file is empty."),
        ("deals.csv", "name\nCaf\xe9\n".encode("latin-1"), "file is not UTF-8"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason(crm, ops_client, name, content, message):
    response = upload(ops_client, "opportunities", name, content)
    assert response.status_code == 400
    assert message in str(response.context["form"].errors)
    assert not ImportJob.objects.exists()


@override_settings(IMPORT_MAX_UPLOAD_BYTES=100)
def test_uploads_over_the_size_limit_are_refused(crm, ops_client):
    response = upload(ops_client, "opportunities", "big.csv", b"external_id\n" + b"X-1\n" * 50)
    assert response.status_code == 400
    assert "the limit is 0 MB" in str(response.context["form"].errors)
    assert not ImportJob.objects.exists()


@pytest.mark.parametrize("factory", [RepFactory, ManagerFactory])
def test_only_importers_reach_the_wizard(crm, factory):
    client = Client()
    client.force_login(factory())
    assert client.get(reverse("imports:index")).status_code == 403
    job = ImportJob.objects.create(kind="stages", file_name="x.csv", uploaded_by=crm.admin)
    for name in ("columns", "values", "preview", "job", "progress", "errors-csv", "job-mapping"):
        assert client.get(reverse(f"imports:{name}", args=[job.pk])).status_code == 403, name


def test_executives_may_import(crm):
    client = Client()
    client.force_login(ExecutiveFactory())
    assert client.get(reverse("imports:index")).status_code == 200


def test_progress_endpoint(crm, ops_client):
    path = GOOD / "stages.csv"
    upload(ops_client, "stages", "stages.csv", path.read_bytes())
    job = ImportJob.objects.get()
    data = ops_client.get(reverse("imports:progress", args=[job.pk])).json()
    assert (data["status"], data["finished"], data["rows"]) == ("draft", False, 3)
    ops_client.post(reverse("imports:preview", args=[job.pk]), {"commit": "1"})
    data = ops_client.get(reverse("imports:progress", args=[job.pk])).json()
    assert (data["status"], data["finished"], data["percent"], data["created"]) == (
        "committed",
        True,
        100,
        2,
    )


def test_a_started_job_cannot_be_committed_twice(crm, ops_client):
    upload(ops_client, "stages", "stages.csv", (GOOD / "stages.csv").read_bytes())
    job = ImportJob.objects.get()
    ops_client.post(reverse("imports:preview", args=[job.pk]), {"commit": "1"})
    response = ops_client.post(reverse("imports:preview", args=[job.pk]), {"commit": "1"})
    assert response["Location"] == reverse("imports:job", args=[job.pk])
    assert ImportJob.objects.get().created == 2


@override_settings(IMPORT_TASK_ROW_THRESHOLD=2)
def test_a_large_file_is_checked_by_a_task_before_the_preview(
    crm, ops_client, django_capture_on_commit_callbacks
):
    # given a file above the in-request threshold, with one bad row
    bad = (GOOD / "opportunities.csv").read_text().replace("12000.50", "-1")
    upload(ops_client, "opportunities", "big.csv", bad.encode())
    job = ImportJob.objects.get()
    url = reverse("imports:preview", args=[job.pk])
    progress = reverse("imports:progress", args=[job.pk])
    before = table_state()
    # when the preview is opened, the check is queued and the page waits for it
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        page = ops_client.get(url)
    assert callbacks, "the check is queued on commit"
    assert b"Checking every row" in page.content
    assert b'data-done="preview_ready"' in page.content
    # then, once the task has run, the progress answer says so and the preview shows
    # the stored dry run, every error included, with nothing written
    assert ops_client.get(progress).json()["preview_ready"] is True
    page = ops_client.get(url)
    assert page.context["runs_as_task"] is True
    assert (page.context["report"].created, page.context["error_count"]) == (3, 1)
    assert [(e.line, e.field) for e in page.context["errors"]] == [(2, "amount")]
    csv = ops_client.get(reverse("imports:errors-csv", args=[job.pk]))
    assert csv.content.decode("utf-8-sig").splitlines()[1].startswith("2,amount,")
    assert table_state() == before
    # and a changed mapping makes the stored check stale
    job.refresh_from_db()
    mapping = {**job.mapping, "defaults": {"deal_type": "renewal"}}
    ImportJob.objects.filter(pk=job.pk).update(mapping=mapping)
    assert ops_client.get(progress).json()["preview_ready"] is False
    with django_capture_on_commit_callbacks(execute=True):
        assert b"Checking every row" in ops_client.get(url).content
    assert ops_client.get(progress).json()["preview_ready"] is True
